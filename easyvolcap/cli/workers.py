"""Several devices on one machine: one worker process per device over disjoint camera sets.

``--device cuda:0,cuda:1`` (or ``all``; ``cpu,cpu`` runs the same code path on the CPU) starts one
process per device. Worker ``i`` of ``n`` takes shard ``i/n`` of the cameras (composed with the user's
own ``--shard``), reports progress to one combined bar and sends its report back; the parent merges
the reports and prints one summary.
"""

from __future__ import annotations

import argparse
import importlib
import multiprocessing
import os
import queue as queue_module
import traceback
from functools import reduce
from typing import TYPE_CHECKING

from ..errors import EvcError
from ..progress import progress_bar

if TYPE_CHECKING:
    from . import Outcome, Tool

__all__ = ["run_workers", "split_devices"]


def split_devices(spec: str | None) -> list[str | None]:
    """``--device`` as a list: ``cuda:0,cuda:1``, ``all`` (every CUDA device), or one device."""
    if spec is None:
        return [None]
    if spec == "all":
        import torch

        count = torch.cuda.device_count()
        if count == 0:
            raise EvcError("--device all: no CUDA device on this machine; use --device cpu")
        return [f"cuda:{i}" for i in range(count)]
    return [part.strip() for part in spec.split(",") if part.strip()] or [None]


def _worker(module_name: str, args: argparse.Namespace, index: int, count: int, messages) -> None:
    from ..progress import report_progress_to

    try:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // count))
        report_progress_to(messages)
        tool = importlib.import_module(module_name)
        outcome = tool.run(args)
        messages.put(("done", index, outcome))
    except EvcError as error:
        messages.put(("error", index, str(error)))
    except KeyboardInterrupt:
        messages.put(("error", index, "interrupted"))
    except BaseException:  # a bug: hand the traceback to the parent, which shows it
        messages.put(("crash", index, traceback.format_exc()))


def run_workers(tool: Tool, args: argparse.Namespace, devices: list[str], user_shard: tuple[int, int] | None,
                progress: bool | None = None) -> Outcome:
    """Run ``tool.run`` in one process per device, each with the parsed ``args`` but its own ``--device`` and
    ``--shard``, and return the workers' outcomes merged (their cameras and their reports).

    Raises:
        EvcError: a worker met an expected fault (the message names its device).
        RuntimeError: a worker crashed (with its traceback).
    """
    first, step = user_shard or (0, 1)
    count = len(devices)
    context = multiprocessing.get_context("spawn")
    messages = context.Queue()
    processes = [context.Process(target=_worker, daemon=True,
                                 args=(tool.__name__, argparse.Namespace(**{
                                     **vars(args), "device": device, "shard": (first + step * i, step * count)}),
                                       i, count, messages))
                 for i, device in enumerate(devices)]
    for process in processes:
        process.start()
    outcomes: dict[int, Outcome] = {}
    try:
        with progress_bar(0, f"{tool.TOOL} x{count}", progress) as bar:
            while len(outcomes) < count:
                try:
                    kind, *payload = messages.get(timeout=1.0)
                except queue_module.Empty:
                    dead = [i for i, p in enumerate(processes) if not p.is_alive() and i not in outcomes]
                    if dead and messages.empty():
                        raise RuntimeError(f"worker on {devices[dead[0]]} died without a report") from None
                    continue
                if kind == "total":
                    bar.total += payload[0]
                    bar.refresh()
                elif kind == "update":
                    bar.update(payload[0])
                elif kind == "done":
                    outcomes[payload[0]] = payload[1]
                elif kind == "error":
                    raise EvcError(f"[{devices[payload[0]]}] {payload[1]}")
                else:
                    raise RuntimeError(f"worker on {devices[payload[0]]} crashed:\n{payload[1]}")
    finally:
        for process in processes:
            if process.is_alive() and len(outcomes) < count:
                process.terminate()
            process.join()
    return reduce(lambda merged, outcome: merged.merge(outcome), (outcomes[i] for i in range(count)))
