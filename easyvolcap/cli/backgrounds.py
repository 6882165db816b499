"""``evc-bkgd`` (``extract_backgrounds.py``): a static background image per camera from frames and masks."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence

from ..image_io import MASK_EXTENSIONS
from ..layout import IMAGE_EXTENSIONS
from ..overlap import refuse_overlap
from ..runners.backgrounds import METHODS
from . import (
    HelpFormatter,
    Outcome,
    add_dataset_args,
    add_run_args,
    discover_layout,
    positive_int,
    run_main,
    with_preview,
)
from .flags import ToolParser, add_mask_reading_args, extension

__all__ = ["build_parser", "main"]

TOOL = "evc-bkgd"  # its one name in usage, errors, progress and summary
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def memory_size(text: str) -> int:
    """An argparse type: bytes, with an optional K/M/G/T suffix (``2G``, ``512MiB``)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", text.lower())
    if not match or float(match[1]) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a memory size such as 2G or 512M")
    return int(float(match[1]) * _UNITS[match[2]])


def non_negative_int(text: str) -> int:
    """An argparse type: an integer of at least 0."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= 0")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    """The flags of the background tool (EasyVolcap's names and defaults, plus additions)."""
    parser = ToolParser(
        prog=TOOL, formatter_class=HelpFormatter,
        description="Per-camera static background from frames and foreground masks: "
                    "writes <data_root>/<bkgd_dir>/<camera><ext>.")
    add_dataset_args(parser)
    parser.add_argument("--masks_dir", "--mask_dir", dest="masks_dir", default="rvm",
                        help="folder of foreground masks <camera>/<frame stem>.jpg|.png (default: RVM's output)")
    parser.add_argument("--bkgd_dir", default="bkgd", help="output folder of backgrounds")
    parser.add_argument("--image_ext", default=None, type=extension(*IMAGE_EXTENSIONS), metavar="jpg|jpeg|png",
                        help="use only images of this type (default: every .jpg/.jpeg/.png)")
    add_mask_reading_args(parser)
    parser.add_argument("--ext", default=".png", type=extension(*MASK_EXTENSIONS), metavar="png|jpg",
                        help="background file type; .png is RGBA with alpha 0 where no frame saw background")
    parser.add_argument("--jump", type=positive_int, default=10, help="use every N-th frame")
    parser.add_argument("--dilation", type=non_negative_int, default=20,
                        help="grow the foreground by an N x N square before use (0: none)")
    parser.add_argument("--method", default="mean", choices=METHODS,
                        help="mean: EasyVolcap's weighted average; median: exact per-pixel median")
    parser.add_argument("--max_memory", type=memory_size, default="2G",
                        help="memory budget of the median's frame stack; larger stacks go band by band")
    parser.add_argument("--fill_holes", action="store_true",
                        help="inpaint pixels that no frame saw as background (and make them opaque)")
    add_run_args(parser, jpeg_quality=95, workers_help="cameras processed at once")
    return parser


def run(args: argparse.Namespace) -> Outcome:
    """Build every background the flags ask for; returns the layout and the runner's report."""
    from ..runners.backgrounds import BackgroundOptions, run_backgrounds

    extensions = (args.image_ext,) if args.image_ext else IMAGE_EXTENSIONS
    refuse_overlap(args, ("bkgd_dir",), ("image_dir", "masks_dir"))
    layout = discover_layout(args, TOOL, extensions)
    options = BackgroundOptions(masks_dir=args.masks_dir, bkgd_dir=args.bkgd_dir, mask_ext=args.mask_ext,
                                threshold=args.threshold, ext=args.ext, jump=args.jump, dilation=args.dilation,
                                method=args.method, max_memory=args.max_memory, fill_holes=args.fill_holes,
                                overwrite=args.overwrite, workers=args.workers, quality=args.quality)
    return Outcome(layout, run_backgrounds(layout, options))


def finish(args: argparse.Namespace, outcome: Outcome) -> str:
    """Write the preview and return the summary line."""
    from ..preview import background_rows, write_preview

    layout, report = outcome.layout, outcome.report
    holes = ", ".join(f"{camera} {100 * fraction:.1f}%" for camera, fraction in report.hole_fraction.items())
    line = (f"{TOOL}: wrote {len(report.written)} backgrounds ({args.method} of {report.frames_used} frames) "
            f"to {layout.root / args.bkgd_dir} in {report.seconds:.1f} s")
    if report.complete:
        line += f"; {len(report.complete)} already there (--overwrite redoes them)"
    if holes:
        line += f"; never seen as background{' (filled)' if args.fill_holes else ''}: {holes}"
    preview = None if args.no_preview else write_preview(layout, args.bkgd_dir,
                                                          background_rows(layout, args.bkgd_dir, args.ext), TOOL)
    return with_preview(line, preview)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``extract_backgrounds.py`` and ``evc-bkgd``."""
    return run_main(sys.modules[__name__], argv)
