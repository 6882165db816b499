"""Command-line front ends. Shared flags, validation and the error-to-exit-code policy live here."""

from __future__ import annotations

import argparse
import os
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..errors import EvcError

if TYPE_CHECKING:
    from ..layout import DatasetLayout
    from ..runners.report import Report

__all__ = [
    "HelpFormatter",
    "Outcome",
    "Tool",
    "add_dataset_args",
    "add_device_args",
    "add_run_args",
    "batch_or_auto",
    "batch_summary",
    "discover_layout",
    "examples",
    "matting_summary",
    "number_in",
    "positive_int",
    "ratio_or_auto",
    "resolve_shard",
    "run_main",
    "shard_spec",
    "with_preview",
]


@dataclass
class Outcome:
    """What a tool's ``run`` hands to its ``finish``: the layout it discovered and the runner's report."""

    layout: DatasetLayout
    report: Report

    def merge(self, other: Outcome) -> Outcome:
        """This outcome and that of a worker that ran beside it over other cameras of the dataset."""
        return Outcome(self.layout.merge(other.layout), self.report.merge(other.report))


class Tool(Protocol):
    """A command-line tool: a module under ``easyvolcap.cli`` with these four names (see :func:`run_main`)."""

    TOOL: str  # its name in messages and summary lines

    def build_parser(self) -> argparse.ArgumentParser:
        """Its flags (parsing them imports no torch, so ``--help`` answers at once)."""
        ...

    def run(self, args: argparse.Namespace) -> Outcome:
        """Does the work the flags ask for (in a worker process per device when there are several)."""
        ...

    def finish(self, args: argparse.Namespace, outcome: Outcome) -> str:
        """Writes the preview from what the run found and returns the one-line summary."""
        ...


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each meaningful default next to its help text."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False) or "default" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def batch_or_auto(text: str) -> int | None:
    """An argparse type: ``auto`` (``None``: the rule of :mod:`easyvolcap.batching`) or an integer of at least 1."""
    return None if text == "auto" else positive_int(text)


def batch_summary(report) -> str:
    """How many images went through the model per pass: ``batch 8 (auto)``, ``batch 2-16 (auto, by image
    size)``, with the out-of-memory back-off's lower limit when it struck."""
    sizes = sorted(set(report.batch_sizes.values()))
    if not sizes:
        return "nothing to batch"
    text = f"batch {sizes[0]}" if len(sizes) == 1 else f"batch {sizes[0]}-{sizes[-1]}"
    if report.batch_mode == "auto":
        text += " (auto)" if len(sizes) == 1 else " (auto, by image size)"
    if report.batch_lowered:
        text += f", lowered to {min(report.batch_lowered.values())} after running out of memory"
    return text


def number_in(low: float, high: float, *, closed_low: bool = False, closed_high: bool = False
              ) -> Callable[[str], float]:
    """An argparse type: a number in the interval from ``low`` to ``high`` (open ends unless ``closed_*``),
    e.g. ``number_in(0, 1)`` for (0, 1) and ``number_in(0, math.inf)`` for a finite positive number."""
    interval = f"{'[' if closed_low else '('}{low:g}, {high:g}{']' if closed_high else ')'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        above = value >= low if closed_low else value > low
        below = value <= high if closed_high else value < high
        if not (above and below):
            raise argparse.ArgumentTypeError(f"{value} must be in {interval}")
        return value
    return parse


def fraction_or_auto(upper: float) -> Callable[[str], float | None]:
    """An argparse type: ``auto`` (``None``) or a number in (0, ``upper``]."""
    def parse(text: str) -> float | None:
        if text == "auto":
            return None
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is neither 'auto' nor a number") from None
        if not 0 < value <= upper:
            raise argparse.ArgumentTypeError(f"{value} must be in (0, {upper:g}]")
        return value
    return parse


ratio_or_auto = fraction_or_auto(1.0)


def prepare_device(args: argparse.Namespace, tool: str):
    """``(device, dtype)`` from ``--device`` and ``--fp16``, warning when half precision is not possible;
    turns cuDNN autotuning on for CUDA."""
    import torch

    from ..inference import pick_device, pick_dtype

    device = pick_device(args.device)
    dtype, warning = pick_dtype(device, args.fp16)
    if warning:
        print(f"{tool}: warning: {warning}", file=sys.stderr)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return device, dtype


def quality(text: str) -> int:
    """An argparse type: a JPEG quality in [1, 100]."""
    value = positive_int(text)
    if value > 100:
        raise argparse.ArgumentTypeError(f"{value} must be at most 100")
    return value


def shard_spec(text: str) -> tuple[int, int]:
    """An argparse type: ``I/N``, part I (from 0) of N."""
    match = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not match or int(match[2]) < 1 or int(match[1]) >= int(match[2]):
        raise argparse.ArgumentTypeError(f"{text!r} is not I/N with 0 <= I < N (e.g. 0/4)")
    return int(match[1]), int(match[2])


def resolve_shard(args: argparse.Namespace) -> tuple[int, int] | None:
    """``--shard``, else SLURM's array task (``SLURM_ARRAY_TASK_ID`` of ``SLURM_ARRAY_TASK_COUNT``).

    Raises:
        EvcError: the SLURM variables do not describe a valid part.
    """
    if args.shard is not None:
        return args.shard
    task, count = os.environ.get("SLURM_ARRAY_TASK_ID"), os.environ.get("SLURM_ARRAY_TASK_COUNT")
    if task is None or count is None:
        return None
    try:
        index = int(task) - int(os.environ.get("SLURM_ARRAY_TASK_MIN", "0"))
        shard = index, int(count)
    except ValueError:
        raise EvcError(f"SLURM_ARRAY_TASK_ID={task}, SLURM_ARRAY_TASK_COUNT={count}: not integers") from None
    if not 0 <= shard[0] < shard[1]:
        raise EvcError(f"SLURM array task {task} (min {os.environ.get('SLURM_ARRAY_TASK_MIN', '0')}) is not "
                       f"one of {count} parts; pass --shard I/N")
    return shard


def discover_layout(args: argparse.Namespace, tool: str, extensions: tuple[str, ...] | None = None):
    """The dataset layout the flags describe (root, image folder, cameras, shard), warning about
    cameras without images and image files of types that are not read."""
    from ..layout import IMAGE_EXTENSIONS, DatasetLayout

    shard = resolve_shard(args)
    layout = DatasetLayout.discover(args.data_root, args.image_dir, args.only, extensions or IMAGE_EXTENSIONS, shard)
    for camera in layout.skipped:
        print(f"{tool}: warning: camera {camera} has no images; skipped", file=sys.stderr)
    if layout.unread:
        kinds = ", ".join(f"{count} {kind}" for kind, count in layout.unread)
        print(f"{tool}: warning: {sum(count for _, count in layout.unread)} image files of types not read in the "
              f"camera folders ({kinds}); only {'/'.join(extensions or IMAGE_EXTENSIONS)} frames are used",
              file=sys.stderr)
    if shard is not None and not layout.cameras:
        print(f"{tool}: warning: shard {shard[0]}/{shard[1]} has no cameras", file=sys.stderr)
    return layout


def add_dataset_args(parser: argparse.ArgumentParser, unit: str = "camera") -> None:
    """``--data_root``, ``--image_dir``, ``--only`` and ``--shard`` (over cameras, or over frames: ``unit``)."""
    parser.add_argument("--data_root", required=True,
                        help="dataset root holding <image_dir>/<camera>/<frame>.jpg|png")
    parser.add_argument("--image_dir", "--images_dir", dest="image_dir", default="images",
                        help="folder of camera folders, relative to --data_root")
    parser.add_argument("--only", nargs="+", metavar="CAM", default=None,
                        help="process only these cameras")
    parser.add_argument("--shard", type=shard_spec, default=None, metavar="I/N",
                        help=f"process part I (from 0) of N: every N-th {unit} from the I-th "
                             "(default: SLURM_ARRAY_TASK_ID of SLURM_ARRAY_TASK_COUNT when set, else all)")


def add_device_args(parser: argparse.ArgumentParser) -> None:
    """``--device`` and ``--fp16``."""
    parser.add_argument("--device", default=None,
                        help="cpu, cuda or cuda:N (default: cuda when available, else cpu)")
    parser.add_argument("--fp16", action="store_true", help="compute in half precision (CUDA only)")


def add_decode_arg(parser: argparse.ArgumentParser) -> None:
    """``--decode``: where JPEG frames are decoded."""
    parser.add_argument("--decode", default="cpu", choices=("cpu", "gpu"),
                        help="where JPEG frames are decoded: cpu = the --workers threads; gpu = on the CUDA "
                             "device (nvJPEG), for runs whose reader threads cannot keep up (4K, few CPU cores); "
                             "videos and PNG frames are always decoded on the CPU")


def decode_mode(args: argparse.Namespace, device) -> str:
    """The runner's decode mode (``host`` or ``device``) for ``--decode`` on ``device``.

    Raises:
        EvcError: ``--decode gpu`` without a CUDA device, or torchvision cannot decode JPEG on it.
    """
    if args.decode == "cpu":
        return "host"
    from ..runners.frame_source import device_decode_works

    if device.type != "cuda":
        raise EvcError(f"--decode gpu needs a CUDA --device, not {device}")
    if not device_decode_works(device):
        raise EvcError(f"--decode gpu: this torchvision cannot decode JPEG on {device}; use --decode cpu")
    return "device"


def add_run_args(parser: argparse.ArgumentParser, jpeg_quality: int = 85,
                 workers_help: str = "threads decoding input and encoding output") -> None:
    """``--quality``, ``--workers``, ``--overwrite`` and ``--debug``."""
    parser.add_argument("--quality", type=quality, default=jpeg_quality, help="JPEG quality of written images")
    parser.add_argument("--workers", type=positive_int, default=4, help=workers_help)
    parser.add_argument("--overwrite", action="store_true",
                        help="redo everything (default: keep finished outputs and do the rest)")
    parser.add_argument("--no_preview", action="store_true",
                        help="do not write the contact sheet <data_root>/preview/<output folder>.jpg")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of expected errors")


def with_preview(line: str, path: Path | None) -> str:
    """The summary line, naming the preview contact sheet when one was written."""
    return f"{line}; preview {path}" if path else line


def examples(items: Sequence, count: int = 5) -> str:
    """The first ``count`` items for a summary line, ``camera/frame`` for ``(camera, frame)`` pairs, joined by
    commas, then `` ...`` when there are more."""
    shown = ", ".join(item if isinstance(item, str) else "/".join(item) for item in items[:count])
    return shown + (" ..." if len(items) > count else "")


def matting_summary(tool: str, report, mask_root: Path, model: str) -> str:
    """The one-line summary of a matting run (a ``MattingReport``)."""
    rate = report.frames_processed / report.seconds if report.seconds else 0.0
    line = (f"{tool}: wrote {report.masks_written} masks to {mask_root} ({len(report.cameras_processed)} cameras "
            f"processed, {len(report.cameras_complete)} already complete; {model}, {batch_summary(report)}) "
            f"in {report.seconds:.1f} s ({rate:.1f} img/s)")
    if report.fgr_written:
        line += f"; {report.fgr_written} foregrounds"
    if report.empty_frames:
        empty = report.empty_frames
        line += f"; WARNING {len(empty)} empty masks (no pixel above 0.5): {examples(empty)}"
    else:
        line += "; no empty masks"
    return line


def run_main(tool: Tool, argv: Sequence[str] | None) -> int:
    """Parse ``argv``, run the tool (in one worker per device for a device list), print its summary.

    Expected faults become one line on stderr. Exit codes: 0 success, 1 an expected fault
    (:class:`EvcError`), 2 bad flags (argparse), 130 interrupted. Unexpected exceptions are bugs and keep
    their traceback.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = tool.build_parser().parse_args(argv)
    try:
        from .workers import run_workers, split_devices

        devices = split_devices(getattr(args, "device", None))
        outcome = run_workers(tool, argv, devices, resolve_shard(args)) if len(devices) > 1 else tool.run(args)
        print(tool.finish(args, outcome))
        return 0
    except EvcError as error:
        if args.debug:
            traceback.print_exc()
        print(f"{tool.TOOL}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        from ..progress import last_progress

        done = last_progress()  # counted as outputs were written, shown or not
        where = f" after {done[0]} of {done[1]} {done[2]}" if done else ""
        print(f"{tool.TOOL}: interrupted{where}; finished outputs are kept, run the same command to resume",
              file=sys.stderr)
        return 130
