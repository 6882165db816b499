"""``evc-rvm`` (``inference_robust_video_matting.py``): soft alpha masks with Robust Video Matting."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..image_io import MASK_EXTENSIONS
from ..models.rvm.checkpoints import DEFAULT_VARIANT, VARIANTS
from ..overlap import refuse_overlap
from . import (
    HelpFormatter,
    Outcome,
    add_dataset_args,
    add_decode_arg,
    add_device_args,
    add_run_args,
    batch_or_auto,
    decode_mode,
    discover_layout,
    matting_summary,
    prepare_device,
    ratio_or_auto,
    run_main,
    with_preview,
)
from .flags import ToolParser, extension

__all__ = ["build_parser", "main"]

TOOL = "evc-rvm"  # its one name in usage, errors, progress and summary


def build_parser() -> argparse.ArgumentParser:
    """The flags of the RVM tool (EasyVolcap's names and defaults, plus additions)."""
    parser = ToolParser(
        prog=TOOL, formatter_class=HelpFormatter,
        description="Robust Video Matting: each camera's frames, in order, are one video; "
                    "writes <data_root>/<mask_dir>/<camera>/<frame><mask_ext>.")
    add_dataset_args(parser)
    parser.add_argument("--mask_dir", "--masks_dir", dest="mask_dir", default="rvm",
                        help="output folder of alpha masks, relative to --data_root")
    parser.add_argument("--mask_ext", default=".jpg", type=extension(*MASK_EXTENSIONS), metavar="jpg|png",
                        help="mask file type written (the dot is optional)")
    parser.add_argument("--fgr_dir", default=None,
                        help="also write the predicted foreground RGB (.jpg) to this folder")
    parser.add_argument("--batch_size", type=batch_or_auto, default="auto", metavar="auto|N",
                        help="frames of one camera per forward pass; auto: chosen from the image size, the model, "
                             "the device and the machine's total memory")
    parser.add_argument("--variant", default=None, choices=tuple(VARIANTS),
                        help=f"RVM backbone (default: recognised from --chkpt_path's weights; {DEFAULT_VARIANT} "
                             "without one)")
    parser.add_argument("--chkpt_path", default=None,
                        help="checkpoint file (default: the official file in the torch hub cache, "
                             "downloaded when missing)")
    parser.add_argument("--downsample_ratio", type=ratio_or_auto, default="auto", metavar="auto|R",
                        help="internal resolution ratio in (0, 1]; auto = min(512 / max(H, W), 1)")
    add_device_args(parser)
    add_decode_arg(parser)
    add_run_args(parser)
    return parser


def run(args: argparse.Namespace) -> Outcome:
    """Compute every mask the flags ask for; returns the layout and the runner's report."""
    from ..pretrained import rvm
    from ..runners.rvm import RvmOptions, run_rvm

    refuse_overlap(args, ("mask_dir", "fgr_dir"), ("image_dir",))
    layout = discover_layout(args, TOOL)
    device, dtype = prepare_device(args, TOOL)
    model = rvm(args.variant, checkpoint=args.chkpt_path, device=device, dtype=dtype)
    options = RvmOptions(mask_dir=args.mask_dir, mask_ext=args.mask_ext, fgr_dir=args.fgr_dir,
                         batch_size=args.batch_size, downsample_ratio=args.downsample_ratio,
                         quality=args.quality, overwrite=args.overwrite, workers=args.workers,
                         decode=decode_mode(args, device), cuda_graphs=args.cuda_graphs)
    report = run_rvm(layout, model, device, dtype, options, progress=None)
    report.model = model.variant
    return Outcome(layout, report)


def finish(args: argparse.Namespace, outcome: Outcome) -> str:
    """Write the preview and return the summary line."""
    from ..preview import mask_rows, write_preview

    layout, report = outcome.layout, outcome.report
    preview = None if args.no_preview else write_preview(layout, args.mask_dir,
                                                          mask_rows(layout, args.mask_dir, args.mask_ext), TOOL)
    return with_preview(matting_summary(TOOL, report, layout.root / args.mask_dir, report.model), preview)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``inference_robust_video_matting.py`` and ``evc-rvm``."""
    return run_main(sys.modules[__name__], argv)
