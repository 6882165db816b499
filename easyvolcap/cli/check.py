"""``evc-check`` (``check_masks.py``): every mask checked against the other calibrated cameras and in time."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence

from ..overlap import refuse_overlap
from . import (
    HelpFormatter,
    Outcome,
    positive_int,
    quality,
    resolve_shard,
    run_main,
    shard_spec,
    with_preview,
)
from .flags import ToolParser, add_mask_reading_args

__all__ = ["build_parser", "main"]

TOOL = "evc-check"  # its one name in usage, errors, progress and summary


def one_device(text: str) -> str:
    """An argparse type: one device (the vote of a frame needs every camera on it)."""
    if "," in text or text == "all":
        raise argparse.ArgumentTypeError(f"{text!r}: the check runs on one device (split frames with --shard)")
    return text


def build_parser() -> argparse.ArgumentParser:
    """The flags of the mask check."""
    parser = ToolParser(
        prog=TOOL, formatter_class=HelpFormatter,
        description="Check every mask against the consensus of the other calibrated cameras (intri.yml, "
                    "extri.yml) and against its neighbours in time: writes <data_root>/check/<masks_dir>.csv, "
                    "the picture <data_root>/preview/check_<masks_dir>.jpg and, with --repair_dir, repaired masks.")
    # no --image_dir: the check reads masks and the calibration only (a flag it would ignore is not offered)
    parser.add_argument("--data_root", required=True, help="dataset root holding <masks_dir>, intri.yml, extri.yml")
    parser.add_argument("--only", nargs="+", metavar="CAM", default=None, help="check only these cameras")
    parser.add_argument("--shard", type=shard_spec, default=None, metavar="I/N",
                        help="process part I (from 0) of N: every N-th frame from the I-th "
                             "(default: SLURM_ARRAY_TASK_ID of SLURM_ARRAY_TASK_COUNT when set, else all)")
    parser.add_argument("--masks_dir", "--mask_dir", dest="masks_dir", default="rvm",
                        help="folder of masks <camera>/<frame stem>.jpg|png to check (default: RVM's output)")
    add_mask_reading_args(parser, scaled=False)
    parser.add_argument("--repair_dir", default=None,
                        help="write a complete mask folder here: flagged masks repaired from the consensus, "
                             "the others copied unchanged (same names and type)")
    parser.add_argument("--work_size", type=positive_int, default=240,
                        help="long side in pixels (at least) of the reduced masks the vote uses")
    parser.add_argument("--device", type=one_device, default=None,
                        help="cpu, cuda or cuda:N for the vote (default: cuda when available, else cpu)")
    parser.add_argument("--quality", type=quality, default=85, help="JPEG quality of repaired .jpg masks")
    parser.add_argument("--workers", type=positive_int, default=4,
                        help="frames checked at once (threads: each reads, votes, repairs and stores a frame)")
    parser.add_argument("--overwrite", action="store_true",
                        help="redo every frame (default: keep finished per-frame results and do the rest)")
    parser.add_argument("--no_preview", action="store_true",
                        help="do not write the picture <data_root>/preview/check_<masks_dir>.jpg")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of expected errors")
    return parser


def run(args: argparse.Namespace) -> Outcome:
    """Check the masks the flags name; returns the layout of the mask folders and the runner's report."""
    from ..runners.check import CheckOptions, run_check

    refuse_overlap(args, ("repair_dir",), ("masks_dir",))
    options = CheckOptions(masks_dir=args.masks_dir, mask_ext=args.mask_ext, threshold=args.threshold,
                           repair_dir=args.repair_dir, device=args.device, workers=args.workers,
                           overwrite=args.overwrite, quality=args.quality, work_size=args.work_size,
                           only=tuple(args.only) if args.only else None, shard=resolve_shard(args),
                           preview=not args.no_preview)
    return Outcome(*run_check(args.data_root, options, TOOL))


def finish(args: argparse.Namespace, outcome: Outcome) -> str:
    """The summary line (the picture is written by the run, which holds the per-frame votes)."""
    report = outcome.report
    rate = report.masks_checked / report.seconds if report.seconds else 0.0
    line = (f"{TOOL}: checked {report.masks_checked} masks of {report.frames_checked} frames in {report.seconds:.1f} s "
            f"({rate:.1f} masks/s; {'multi-view and temporal' if report.calibrated else 'temporal only'})")
    if report.frames_resumed:
        line += f"; {report.frames_resumed} frames already done"
    if report.frames_fewer_cameras:
        line += f"; {report.frames_fewer_cameras} frames had fewer cameras"
    if report.frames_too_few_views:
        from ..multiview import MIN_VIEWS

        line += f" ({report.frames_too_few_views} with fewer than {MIN_VIEWS} calibrated views: temporal check only)"
    if report.repaired or report.copied:
        line += f"; repaired {report.repaired}, copied {report.copied} masks to {args.repair_dir}"
    if report.csv is None:
        return line + f"; {report.frames_total} frames in all, the report waits for the rest (other shards)"
    flagged = Counter(row["flag"] for row in report.rows if row["flag"])
    if report.rows_kept:
        line += f"; {report.rows_kept} rows of other cameras kept from the last report"
    if report.rows and not any(float(row["area"] or 0) for row in report.rows):
        line += "; every mask is empty (all zero): nothing was checked"
    if flagged:
        from ..runners.check import FLAGS

        kinds = ", ".join(f"{flagged[flag]} {flag}" for flag in FLAGS if flagged[flag])
        per_camera = Counter(row["camera"] for row in report.rows if row["flag"])
        worst = ", ".join(f"{camera} ({count})" for camera, count in per_camera.most_common(3))
        line += f"; flagged {sum(flagged.values())} of {len(report.rows)} ({kinds}); worst cameras {worst}"
    else:
        line += f"; no mask flagged of {len(report.rows)}"
    return with_preview(line + f"; report {report.csv}", report.preview)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``check_masks.py`` and ``evc-check``."""
    return run_main(sys.modules[__name__], argv)
