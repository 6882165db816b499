"""``evc-invert`` (``invert_mask.py``): background masks, ``255 - binary(mask)``, for every mask of a folder."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..layout import MASK_TYPES
from ..overlap import refuse_overlap
from . import HelpFormatter, Outcome, add_run_args, run_main, with_preview
from .flags import ToolParser, add_mask_reading_args
from .mask_folders import add_mask_dataset_args, discover_masks

__all__ = ["build_parser", "main"]

TOOL = "evc-invert"  # its one name in usage, errors, progress and summary


def build_parser() -> argparse.ArgumentParser:
    """The flags of the invert tool (EasyVolcap's names and defaults, plus additions)."""
    parser = ToolParser(
        prog=TOOL, formatter_class=HelpFormatter,
        description="Invert masks: writes 255 - binary(mask) (EasyVolcap's reading: above 128 once scaled to "
                    "the mask's maximum) to <data_root>/<inv_masks_dir>/<camera>/<frame stem>, in the "
                    "mask's own file type.")
    add_mask_dataset_args(parser)
    parser.add_argument("--masks_dir", "--mask_dir", dest="masks_dir", default="merged_mask",
                        help="masks <camera>/<frame stem>.jpg|.png (default: the merge's output)")
    add_mask_reading_args(parser)
    parser.add_argument("--inv_masks_dir", default="inv_maskes",
                        help="output folder (EasyVolcap's default name, typo included)")
    add_run_args(parser, workers_help="masks inverted at once")
    return parser


def run(args: argparse.Namespace) -> Outcome:
    """Invert every mask the flags ask for; returns the layout and the runner's report."""
    from ..runners.invert import InvertOptions, run_invert

    refuse_overlap(args, ("inv_masks_dir",), ("masks_dir", "image_dir"))
    types = (args.mask_ext,) if args.mask_ext else MASK_TYPES
    layout = discover_masks(args, TOOL, args.masks_dir, "--masks_dir", types)
    options = InvertOptions(inv_masks_dir=args.inv_masks_dir, threshold=args.threshold, overwrite=args.overwrite,
                            workers=args.workers, quality=args.quality)
    return Outcome(layout, run_invert(layout, options))


def finish(args: argparse.Namespace, outcome: Outcome) -> str:
    """Write the preview and return the summary line."""
    from ..preview import mask_file_rows, write_preview

    layout, report = outcome.layout, outcome.report
    line = (f"{TOOL}: wrote {report.written} inverted masks to {layout.root / args.inv_masks_dir} "
            f"({len(report.cameras)} cameras) in {report.seconds:.1f} s")
    if report.complete:
        line += f"; {report.complete} already there (--overwrite redoes them)"
    preview = None if args.no_preview else write_preview(
        layout, args.inv_masks_dir, mask_file_rows(
            layout, lambda camera, frame: layout.output_path(args.inv_masks_dir, camera.name, frame, frame.suffix),
            args.image_dir), TOOL)
    return with_preview(line, preview)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``invert_mask.py`` and ``evc-invert``."""
    return run_main(sys.modules[__name__], argv)
