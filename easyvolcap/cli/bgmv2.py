"""``evc-bgmv2`` (``inference_bkgdmattev2.py``): alpha masks with Background Matting V2 and per-camera backgrounds."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..image_io import MASK_EXTENSIONS
from ..models.bgmv2.checkpoints import REFINE_MODES
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
    fraction_or_auto,
    matting_summary,
    number_in,
    positive_int,
    prepare_device,
    run_main,
    with_preview,
)
from .flags import ToolParser, extension

__all__ = ["build_parser", "main"]

TOOL = "evc-bgmv2"  # its one name in usage, errors, progress and summary


def build_parser() -> argparse.ArgumentParser:
    """The flags of the BGMv2 tool (EasyVolcap's names and defaults, plus additions)."""
    parser = ToolParser(
        prog=TOOL, formatter_class=HelpFormatter,
        description="Background Matting V2 against each camera's captured background; "
                    "writes <data_root>/<mask_dir>/<camera>/<frame><mask_ext>.")
    parser.add_argument("--chkpt_path", default=None,
                        help="official BGMv2 checkpoint: pytorch_<backbone>.pth or "
                             "torchscript_<backbone>_fp32|fp16.pth "
                             "(default: torchscript_resnet101_fp32.pth in the torch hub cache); "
                             "the backbone is recognised from the file")
    add_dataset_args(parser)
    parser.add_argument("--mask_dir", "--masks_dir", dest="mask_dir", default="bgmtv2",
                        help="output folder of alpha masks")
    parser.add_argument("--bkgd_dir", default="bkgd",
                        help="backgrounds: <camera>.jpg|png or <camera>/000000.jpg|png (RGBA uses its RGB)")
    parser.add_argument("--mask_ext", default=".jpg", type=extension(*MASK_EXTENSIONS), metavar="jpg|png",
                        help="mask file type written (the dot is optional)")
    parser.add_argument("--fgr_dir", default=None, help="also write the foreground RGB (.jpg) to this folder")
    parser.add_argument("--chunk_size", type=positive_int, default=64,
                        help="images held at once: half decoded ahead of the model, half queued for writing")
    parser.add_argument("--batch_size", type=batch_or_auto, default="auto", metavar="auto|N",
                        help="images per forward pass; auto: chosen from the image size, the model, the device and "
                             "the machine's total memory (EasyVolcap's script used 8)")
    parser.add_argument("--backbone_scale", type=fraction_or_auto(0.5), default="0.25", metavar="auto|S",
                        help="scale of the coarse pass, in (0, 0.5]; auto: 0.25 up to 2K, 0.125 above, "
                             "with --refine_sample_pixels scaled to the image area")
    parser.add_argument("--refine_mode", default="sampling", choices=REFINE_MODES, help="which pixels to refine")
    parser.add_argument("--refine_sample_pixels", type=positive_int, default=80_000,
                        help="pixels refined per image in sampling mode (at 1080p with --backbone_scale auto)")
    parser.add_argument("--refine_threshold", type=number_in(0, 1, closed_low=True, closed_high=True), default=0.1,
                        help="error threshold of thresholding mode")
    parser.add_argument("--resize_bkgd", action="store_true",
                        help="resize a background of another size to its camera's images (default: error)")
    add_device_args(parser)
    add_decode_arg(parser)
    add_run_args(parser)
    return parser


def run(args: argparse.Namespace) -> Outcome:
    """Compute every mask the flags ask for; returns the layout and the runner's report."""
    from ..pretrained import bgmv2
    from ..runners.bgmv2 import Bgmv2Options, run_bgmv2

    refuse_overlap(args, ("mask_dir", "fgr_dir"), ("image_dir", "bkgd_dir"))
    layout = discover_layout(args, TOOL)
    device, dtype = prepare_device(args, TOOL)
    model = bgmv2(checkpoint=args.chkpt_path, device=device, dtype=dtype)
    options = Bgmv2Options(mask_dir=args.mask_dir, mask_ext=args.mask_ext, bkgd_dir=args.bkgd_dir,
                           fgr_dir=args.fgr_dir, chunk_size=args.chunk_size, batch_size=args.batch_size,
                           backbone_scale=args.backbone_scale, refine_mode=args.refine_mode,
                           refine_sample_pixels=args.refine_sample_pixels, refine_threshold=args.refine_threshold,
                           resize_bkgd=args.resize_bkgd, quality=args.quality, overwrite=args.overwrite,
                           workers=args.workers, decode=decode_mode(args, device),
                           cuda_graphs=args.cuda_graphs)
    return Outcome(layout, run_bgmv2(layout, model, device, dtype, options))


def finish(args: argparse.Namespace, outcome: Outcome) -> str:
    """Write the preview and return the summary line."""
    from ..preview import mask_rows, write_preview

    layout, report = outcome.layout, outcome.report
    preview = None if args.no_preview else write_preview(layout, args.mask_dir,
                                                          mask_rows(layout, args.mask_dir, args.mask_ext), TOOL)
    line = matting_summary(TOOL, report, layout.root / args.mask_dir, f"{report.backbone}, {args.refine_mode}")
    return with_preview(line, preview)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``inference_bkgdmattev2.py`` and ``evc-bgmv2``."""
    return run_main(sys.modules[__name__], argv)
