"""``evc-schp`` (``inference_schp.py``): human parsing labels and masks with SCHP (detect, crop, parse, restore)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..detectors import DETECTORS
from ..models.schp.checkpoints import DATASETS
from ..overlap import refuse_overlap
from . import (
    HelpFormatter,
    Outcome,
    add_dataset_args,
    add_device_args,
    add_run_args,
    batch_or_auto,
    batch_summary,
    discover_layout,
    examples,
    positive_int,
    prepare_device,
    run_main,
    with_preview,
)
from .flags import ToolParser

__all__ = ["build_parser", "main"]

TOOL = "evc-schp"  # its one name in usage, errors, progress and summary


def build_parser() -> argparse.ArgumentParser:
    """The flags of the SCHP tool (EasyVolcap's names and defaults, plus additions)."""
    parser = ToolParser(
        prog=TOOL, formatter_class=HelpFormatter,
        description="Self-Correction Human Parsing of every person in every frame: writes a human mask "
                    "<mask_dir>/<camera>/<frame>.png and a palette label map <schp_dir>/<camera>/<frame>.png.")
    add_dataset_args(parser)
    parser.add_argument("--mask_dir", "--masks_dir", dest="mask_dir", default="mask",
                        help="output folder of human masks (0/255 PNG)")
    parser.add_argument("--schp_dir", default="schp", help="output folder of label maps (palette PNG)")
    parser.add_argument("--logits_dir", default=None,
                        help="also write full-frame logits (H x W x C float16 .npy) to this folder")
    parser.add_argument("--dataset", default="cihp", choices=DATASETS,
                        help="label set and checkpoint: cihp (multi-person crops, 20 classes), lip (20), atr (18), "
                             "pascal (7)")
    parser.add_argument("--chkpt_dir", default=None,
                        help="folder holding the official checkpoint files under their names (default: the torch "
                             "hub cache, torch.hub.get_dir()/checkpoints)")
    parser.add_argument("--chkpt_path", default=None, help="the parser checkpoint file (overrides --chkpt_dir)")
    parser.add_argument("--detector", default="torchvision", choices=DETECTORS,
                        help="torchvision: Mask R-CNN (COCO); detectron2: upstream's CIHP Cascade Mask R-CNN "
                             "(needs detectron2); none: the whole frame is one person")
    parser.add_argument("--detector_chkpt_path", default=None,
                        help="detector weights file (default: torchvision's COCO file in the hub cache, downloaded "
                             "when missing; detectron2_maskrcnn_cihp_finetune.pth in --chkpt_dir)")
    parser.add_argument("--restore", default="logits", choices=("logits", "labels"),
                        help="logits: bilinear warp of the logits, then argmax (smooth edges); labels: argmax, then "
                             "nearest warp of the labels (upstream's multi-person pipeline)")
    parser.add_argument("--batch_size", type=batch_or_auto, default="auto", metavar="auto|N",
                        help="person crops per parser pass; auto: chosen from the model, the device and the "
                             "machine's total memory")
    parser.add_argument("--frames_per_batch", type=positive_int, default=4, help="frames per detector pass")
    add_device_args(parser)
    add_run_args(parser)
    return parser


def run(args: argparse.Namespace) -> Outcome:
    """Parse every frame the flags ask for; returns the layout and the runner's report."""
    from ..pretrained import person_detector, schp
    from ..runners.schp import SchpOptions, run_schp

    refuse_overlap(args, ("mask_dir", "schp_dir", "logits_dir"), ("image_dir",))
    layout = discover_layout(args, TOOL)
    device, dtype = prepare_device(args, TOOL)
    parser = schp(args.dataset, checkpoint=args.chkpt_path, checkpoint_dir=args.chkpt_dir, device=device, dtype=dtype)
    detector = person_detector(args.detector, checkpoint=args.detector_chkpt_path, checkpoint_dir=args.chkpt_dir,
                               device=device)
    labels = parser.label_set  # what the checkpoint's dataset declares
    options = SchpOptions(mask_dir=args.mask_dir, schp_dir=args.schp_dir, logits_dir=args.logits_dir,
                          batch_size=args.batch_size, frames_per_batch=args.frames_per_batch,
                          restore=args.restore, overwrite=args.overwrite, workers=args.workers,
                          cuda_graphs=args.cuda_graphs)
    return Outcome(layout, run_schp(layout, detector, parser, labels, device, dtype, options))


def finish(args: argparse.Namespace, outcome: Outcome) -> str:
    """Write the preview and return the summary line."""
    from ..preview import label_rows, write_preview

    layout, report = outcome.layout, outcome.report
    rate = report.frames_processed / report.seconds if report.seconds else 0.0
    line = (f"{TOOL}: wrote {report.frames_written} label maps to {layout.root / args.schp_dir} and masks to "
            f"{layout.root / args.mask_dir} ({len(report.cameras_processed)} cameras processed, "
            f"{len(report.cameras_complete)} already complete; {args.dataset}, detector {args.detector}, "
            f"{batch_summary(report)}) "
            f"in {report.seconds:.1f} s ({rate:.1f} img/s); {report.people} people parsed")
    if report.frames_without_person:
        line += f"; {len(report.frames_without_person)} frames with no person: {examples(report.frames_without_person)}"
    seen: set[int] = set()
    rows = label_rows(layout, args.schp_dir, report.palette, seen)

    def key() -> list[tuple[tuple[int, int, int], str]]:  # the labels shown, in their colours
        return [(tuple(int(v) for v in report.palette[i]), report.label_names[i]) for i in sorted(seen)
                if 0 < i < len(report.label_names)]
    preview = None if args.no_preview else write_preview(layout, args.schp_dir, rows, TOOL, key)
    return with_preview(line, preview)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``inference_schp.py`` and ``evc-schp``."""
    return run_main(sys.modules[__name__], argv)
