"""``evc-visualize`` (``visualize_masked_images.py``): one H.264 video of every camera's masked images."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import EvcError
from ..layout import DatasetLayout
from ..overlap import refuse_overlap
from . import HelpFormatter, Outcome, examples, number_in, positive_int, run_main
from .flags import ToolParser, add_mask_reading_args

__all__ = ["build_parser", "main"]

TOOL = "evc-visualize"  # its one name in usage, errors, progress and summary


def build_parser() -> argparse.ArgumentParser:
    """The flags of the video tool (EasyVolcap's names and defaults, plus additions)."""
    parser = ToolParser(
        prog=TOOL, formatter_class=HelpFormatter,
        description="Review masks: per frame, every camera's image multiplied by its mask, tiled in a grid, "
                    "written as an H.264 .mp4 (needs the video extra). One file: a rerun writes it again "
                    "(no resume, no shards); it replaces the old file only once complete.")
    parser.add_argument("--data_root", required=True,
                        help="dataset root holding <image_dir>/<camera>/<frame>.jpg|png")
    parser.add_argument("--image_dir", "--images_dir", dest="image_dir", default="images",
                        help="folder of camera folders, relative to --data_root")
    parser.add_argument("--masks_dir", "--mask_dir", dest="masks_dir", default="rvm",
                        help="masks <camera>/<frame stem>.jpg|.png (a frame without its mask shows black; default: "
                             "RVM's output)")
    add_mask_reading_args(parser)
    parser.add_argument("--output", default="masked.mp4", help="the video, relative to --data_root")
    parser.add_argument("--fps", type=number_in(0, math.inf), default=30.0, help="frames per second")
    parser.add_argument("--ratio", type=number_in(0, math.inf), default=1.0,
                        help="scale of each tile (of the first camera's image size; other cameras are scaled "
                             "to that tile size)")
    parser.add_argument("--max_length", type=positive_int, default=None, help="write at most N frames")
    parser.add_argument("--only", nargs="+", metavar="CAM", default=None, help="show only these cameras")
    parser.add_argument("--label", dest="label", action="store_true", default=True,
                        help="write each camera's name on its tiles (default)")
    parser.add_argument("--no_label", dest="label", action="store_false", help="tiles without camera names")
    parser.add_argument("--no_visualize", dest="visualize", action="store_false",
                        help="accepted for EasyVolcap's commands; no window is ever opened")
    parser.add_argument("--no_store", dest="store", action="store_false",
                        help="refused: without the video there is nothing to do")
    parser.add_argument("--workers", type=positive_int, default=4, help="threads composing frames")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of expected errors")
    return parser


def run(args: argparse.Namespace) -> Outcome:
    """Write the video the flags ask for; returns the layout and the runner\'s report."""
    from ..runners.visualize import VideoOptions, require_ffmpeg, run_visualize

    if not args.store:
        raise EvcError("--no_store: the video is all this tool makes (no window is ever opened); drop the flag")
    output = Path(args.data_root) / args.output
    if output.suffix.lower() != ".mp4":
        raise EvcError(f"--output {args.output}: the video is H.264 in an .mp4 file; give a name ending in .mp4")
    refuse_overlap(args, ("output",), ("image_dir", "masks_dir"))
    require_ffmpeg()
    layout = DatasetLayout.discover(args.data_root, args.image_dir, args.only)  # one file: never sharded
    for camera in layout.skipped:
        print(f"{TOOL}: warning: camera {camera} has no images; skipped", file=sys.stderr)
    if not (layout.root / args.masks_dir).is_dir():
        raise EvcError(f"{layout.root / args.masks_dir}: mask folder not found (set --masks_dir)")
    options = VideoOptions(output=output, mask_dir=args.masks_dir, mask_ext=args.mask_ext, threshold=args.threshold,
                           fps=args.fps, ratio=args.ratio,
                           max_length=args.max_length, label=args.label, workers=args.workers)
    return Outcome(layout, run_visualize(layout, options))


def finish(args: argparse.Namespace, outcome: Outcome) -> str:
    """The summary line."""
    report = outcome.report
    (rows, columns), (tile_h, tile_w), (height, width) = report.grid, report.tile, report.size
    rate = report.frames / report.seconds if report.seconds else 0.0
    line = (f"{TOOL}: wrote {report.frames} frames to {report.path} ({report.cameras} cameras in {rows} x {columns} "
            f"tiles of {tile_w}x{tile_h}, {width}x{height} H.264 at {args.fps:g} fps) "
            f"in {report.seconds:.1f} s ({rate:.1f} frames/s)")
    if report.black_tiles:
        line += f"; {report.black_tiles} black tiles (a camera without that frame or its mask)"
    if report.missing_masks:
        missing = report.missing_masks
        line += f"; {len(missing)} frames without a mask in {args.masks_dir}: {examples(missing, 3)}"
    return line


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``visualize_masked_images.py`` and ``evc-visualize``."""
    return run_main(sys.modules[__name__], argv)
