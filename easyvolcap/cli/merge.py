"""``evc-merge`` (``merge_schp_rvm_mask.py``): people-only masks, the SCHP mask kept inside the grown RVM mask."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import EvcError
from ..image_io import MASK_EXTENSIONS
from ..layout import MASK_TYPES
from ..overlap import refuse_overlap
from . import HelpFormatter, Outcome, add_run_args, examples, run_main, with_preview
from .backgrounds import non_negative_int
from .flags import ToolParser, extension, fraction
from .mask_folders import add_mask_dataset_args, discover_masks

__all__ = ["build_parser", "main"]

TOOL = "evc-merge"  # its one name in usage, errors, progress and summary


def build_parser() -> argparse.ArgumentParser:
    """The flags of the merge tool (EasyVolcap's names and defaults, plus additions)."""
    parser = ToolParser(
        prog=TOOL, formatter_class=HelpFormatter,
        description="Drop bystanders and props: binarise each RVM mask, grow it by a dilation x dilation "
                    "square and keep the SCHP mask of the same camera and frame only inside it; writes "
                    "<data_root>/<out_dir>/<camera>/<frame stem><out_ext>.")
    add_mask_dataset_args(parser)
    parser.add_argument("--rvm_dir", default="rvm", help="RVM masks <camera>/<frame stem>.jpg|.png; its frames are "
                                                         "the frames merged")
    parser.add_argument("--schp_dir", default="mask", help="SCHP masks <camera>/<frame stem>.jpg|.png")
    parser.add_argument("--rvm_ext", default=None, type=extension(*MASK_TYPES), metavar="jpg|jpeg|png",
                        help="read only RVM masks of this type (default: any mask type)")
    parser.add_argument("--schp_ext", default=None, type=extension(*MASK_TYPES), metavar="jpg|jpeg|png",
                        help="read only SCHP masks of this type (default: any mask type)")
    parser.add_argument("--out_dir", default="merged_mask", help="output folder of merged masks")
    parser.add_argument("--out_ext", default=None, type=extension(*MASK_EXTENSIONS), metavar="jpg|png",
                        help="merged mask file type (default: each RVM mask's own, as EasyVolcap)")
    parser.add_argument("--dilation", type=non_negative_int, default=20,
                        help="grow the binarised RVM mask by an N x N square (0: none)")
    parser.add_argument("--threshold", type=fraction, default=0.5,
                        help="RVM foreground: above this fraction of full scale once the mask is scaled to its "
                             "maximum (0.5: above 128 of 255, EasyVolcap's reading of soft masks)")
    add_run_args(parser, workers_help="frames merged at once")
    return parser


def run(args: argparse.Namespace) -> Outcome:
    """Merge every frame the flags ask for; returns the layout and the runner's report."""
    from ..runners.merge import MergeOptions, run_merge

    refuse_overlap(args, ("out_dir",), ("rvm_dir", "schp_dir", "image_dir"))
    layout = discover_masks(args, TOOL, args.rvm_dir, "--rvm_dir", (args.rvm_ext,) if args.rvm_ext else MASK_TYPES)
    if not (layout.root / args.schp_dir).is_dir():
        raise EvcError(f"{layout.root / args.schp_dir}: mask folder not found (set --schp_dir)")
    options = MergeOptions(schp_dir=args.schp_dir, schp_ext=args.schp_ext, out_dir=args.out_dir,
                           out_ext=args.out_ext, dilation=args.dilation, threshold=args.threshold,
                           overwrite=args.overwrite, workers=args.workers, quality=args.quality)
    return Outcome(layout, run_merge(layout, options))


def finish(args: argparse.Namespace, outcome: Outcome) -> str:
    """Warn once about frames of one input only, write the preview and return the summary line."""
    from ..preview import mask_file_rows, write_preview

    layout, report = outcome.layout, outcome.report
    skipped = len(report.without_schp) + len(report.without_rvm)
    if skipped:
        parts = []
        if report.without_schp:
            parts.append(f"{len(report.without_schp)} RVM masks have no SCHP mask in {layout.root / args.schp_dir} "
                         f"({examples(report.without_schp, 3)}; --schp_ext {args.schp_ext or 'any'})")
        if report.without_rvm:
            parts.append(f"{len(report.without_rvm)} SCHP masks have no RVM mask ({examples(report.without_rvm, 3)}; "
                         f"--rvm_ext {args.rvm_ext or 'any'})")
        print(f"{TOOL}: warning: {'; '.join(parts)}; skipped", file=sys.stderr)
    line = (f"{TOOL}: wrote {report.written} merged masks to {layout.root / args.out_dir} "
            f"({len(report.cameras)} cameras, dilation {args.dilation}, threshold {args.threshold}) "
            f"in {report.seconds:.1f} s")
    if report.complete:
        line += f"; {report.complete} already there (--overwrite redoes them)"
    if skipped:
        line += f"; {skipped} frames in one input only skipped"
    preview = None if args.no_preview else write_preview(
        layout, args.out_dir, mask_file_rows(
            layout, lambda camera, frame: layout.output_path(args.out_dir, camera.name, frame,
                                                             args.out_ext or frame.suffix.lower()),
            args.image_dir), TOOL)
    return with_preview(line, preview)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``merge_schp_rvm_mask.py`` and ``evc-merge``."""
    return run_main(sys.modules[__name__], argv)
