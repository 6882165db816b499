"""Running a tool: devices, the dataset's layout, shards, worker processes and the error-to-exit-code policy."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..errors import EvcError

if TYPE_CHECKING:
    from ..layout import DatasetLayout
    from ..runners.report import Report

__all__ = ["Outcome", "Tool", "decode_mode", "discover_layout", "prepare_device", "resolve_shard", "run_main"]


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


def prepare_device(args: argparse.Namespace, tool: str):
    """``(device, dtype)`` from ``--device`` and ``--fp16``, warning when half precision is not possible.

    cuDNN autotuning stays off: it times candidate algorithms in each process and may pick others in another
    process, so a resumed, sharded or multi-device run could write other bytes than one run on the same GPU
    model; without it cuDNN's choice depends only on the shapes and the GPU."""
    import torch

    from ..inference import pick_device, pick_dtype

    device = pick_device(args.device)
    dtype, warning = pick_dtype(device, args.fp16)
    if warning:
        print(f"{tool}: warning: {warning}", file=sys.stderr)
    torch.backends.cudnn.benchmark = False
    return device, dtype


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


def decode_mode(args: argparse.Namespace, device) -> str:
    """The runner's decode mode (``auto``, ``host`` or ``device``) for ``--decode`` on ``device`` (the runner checks
    that the device can decode).

    Raises:
        EvcError: ``--decode gpu`` without a CUDA device.
    """
    if args.decode != "gpu":
        return {"auto": "auto", "cpu": "host"}[args.decode]
    if device.type != "cuda":
        raise EvcError(f"--decode gpu needs a CUDA --device, not {device}")
    return "device"


def run_main(tool: Tool, argv: Sequence[str] | None) -> int:
    """Parse ``argv``, run the tool (in one worker per device for a device list), print its summary.

    Expected faults become one line on stderr. Exit codes: 0 success, 1 an expected fault
    (:class:`EvcError`), 2 bad flags (argparse), 130 interrupted. Unexpected exceptions are bugs and keep
    their traceback.
    """
    args = tool.build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        from .workers import run_workers, split_devices

        devices = split_devices(getattr(args, "device", None))
        outcome = run_workers(tool, args, devices, resolve_shard(args)) if len(devices) > 1 else tool.run(args)
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
