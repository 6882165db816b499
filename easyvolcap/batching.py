"""Images per forward pass: the ``--batch_size auto`` rule and the CPU's memory check, shared by every tool.

The rule depends only on the model's declared pass cost (:class:`~easyvolcap.models._checkpoint.PassCost`, kept
next to each model family), its internal scale at an image size, the device kind, the precision and the machine's
fixed facts (its total host memory, or the CUDA device's total memory), never on the memory free at the moment:
a resumed, sharded or multi-device run plans the same batches as an uninterrupted one and writes the same bytes.
What the rule cannot foresee, the out-of-memory back-off (:func:`easyvolcap.inference.run_with_backoff`) handles.
This module names no model: a runner hands it the cost and the scale rule of the model it runs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import EvcError
from .models._checkpoint import PassCost

__all__ = ["BatchPlan", "PassCost", "auto_batch_size", "estimate_peak_bytes", "pass_bytes", "plan_batch_size",
           "plan_camera_batches", "total_memory"]

CPU_PASS_BUDGET = 1.2e9  # bytes of pass memory the CPU rule aims at: beyond it, larger batches only cost memory
CUDA_FRACTION = 0.25  # of the device's total memory that the auto batch's passes may take
CUDA_MAX_BATCH = 16  # more images per pass no longer make a GPU faster, only the back-off slower
# A CUDA pass takes more than the CPU's measured activations (cuDNN workspaces, the caching allocator's rounding):
# on an H200, RVM resnet50 at 4K, ratio 0.25, 16 images per pass peaked at 39.6 GB where the CPU constants give
# 22.1 GB, 1.79x (issue 22's measurement; bench/steady_state.py and bench/cuda_check.py print the peak again).
CUDA_SAFETY = 1.8
HOST_FRACTION = 0.8  # of the machine's total memory that a CPU run's estimated peak may take


@dataclass(frozen=True)
class BatchPlan:
    """The batch of one image size: what is used, and why."""

    batch: int
    auto: bool  # chosen by the rule (``--batch_size auto``)
    requested: int | None = None  # an explicit ``--batch_size`` that did not fit the memory and was lowered


def pass_bytes(cost: PassCost, size: tuple[int, int], scale: float, dtype: torch.dtype = torch.float32) -> float:
    """Estimated memory of one image's share of a forward pass (input and activations), in bytes, for images of
    ``size`` (height, width) at the model's internal ``scale``."""
    pixels = size[0] * size[1]
    low = pixels * scale * scale  # pixels at the internal scale
    per_image = cost.full * pixels + cost.low * low + cost.fixed
    return per_image * (0.5 if dtype in (torch.float16, torch.bfloat16) else 1.0)


CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")  # v2, v1


def total_memory(device: torch.device, limit_files: tuple[str, ...] = CGROUP_LIMITS) -> int:
    """The machine's fixed memory for ``device``: the CUDA device's total memory, or the host's total memory
    (lowered to the control group's limit, the first of ``limit_files`` that exists, when one is set). Never the
    memory free at the moment."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 16 * 2**30  # no sysconf: assume a 16 GB machine
    for limit_file in limit_files:
        try:
            text = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < total:
            total = int(text)
        break
    return total


def _power_of_two_at_most(value: float, cap: int) -> int:
    batch = 1
    while batch * 2 <= min(value, cap):
        batch *= 2
    return batch


def auto_batch_size(cost: PassCost, size: tuple[int, int], scale: float, device: torch.device,
                    dtype: torch.dtype = torch.float32) -> int:
    """Images per forward pass for ``--batch_size auto``: a power of two, from fixed facts only.

    CPU: the largest batch whose pass memory stays within ``CPU_PASS_BUDGET`` (1.2 GB: on the CPU a pass
    gains nothing from more images once each convolution has a few hundred MB to work on, and loses
    to cache misses and page faults; ``bench/batch_sweep.py`` shows it), at most the model's ``cpu_max``.
    CUDA: the largest batch whose estimated pass memory stays within ``CUDA_FRACTION`` of the device's
    total memory, at most ``CUDA_MAX_BATCH``.
    """
    per_image = pass_bytes(cost, size, scale, dtype)
    if device.type == "cuda":
        budget = CUDA_FRACTION * total_memory(device) / CUDA_SAFETY
        return _power_of_two_at_most(budget / per_image, CUDA_MAX_BATCH)
    return _power_of_two_at_most(CPU_PASS_BUDGET / per_image, cost.cpu_max)


def estimate_peak_bytes(cost: PassCost, size: tuple[int, int], scale: float, batch: int, held_frames: int = 0,
                        dtype: torch.dtype = torch.float32) -> float:
    """Estimated peak memory of a CPU run: the process, ``batch`` images' pass and ``held_frames`` decoded
    8-bit frames (read ahead or waiting to be written)."""
    return cost.base + batch * pass_bytes(cost, size, scale, dtype) + held_frames * size[0] * size[1] * 3


def plan_batch_size(requested: int | None, cost: PassCost, size: tuple[int, int], scale: float,
                    device: torch.device, dtype: torch.dtype = torch.float32,
                    held_frames=lambda batch: 0, hint: str = "", model: str = "the model") -> BatchPlan:
    """The batch for images of ``size``: ``requested`` (``None``: :func:`auto_batch_size`), on the CPU lowered
    until the run's estimated peak memory fits in ``HOST_FRACTION`` of the machine's total memory.

    ``held_frames(batch)`` is how many decoded frames the run holds besides the pass. ``hint`` says what to
    change when even one image does not fit (e.g. ``"a smaller --downsample_ratio"``); ``model`` names the
    model in that message.

    Raises:
        EvcError: on the CPU, one image per pass does not fit in the machine's memory.
    """
    batch = auto_batch_size(cost, size, scale, device, dtype) if requested is None else requested
    if device.type != "cpu":
        return BatchPlan(batch, requested is None)
    budget = HOST_FRACTION * total_memory(device)
    fitted = batch
    while fitted > 1 and estimate_peak_bytes(cost, size, scale, fitted, held_frames(fitted), dtype) > budget:
        fitted //= 2
    need = estimate_peak_bytes(cost, size, scale, fitted, held_frames(fitted), dtype)
    if need > budget:
        change = f"; use {hint}" if hint else ""
        raise EvcError(f"{size[1]}x{size[0]} images: one image per forward pass of {model} needs about "
                       f"{need / 2**30:.1f} GB, more than {HOST_FRACTION:.0%} of this machine's "
                       f"{total_memory(device) / 2**30:.1f} GB{change}, or a machine with more memory")
    return BatchPlan(fitted, requested is None, None if fitted == batch or requested is None else requested)


def plan_camera_batches(tool: str, requested: int | None, cost: PassCost, sizes: dict[str, tuple[int, int]],
                        device: torch.device, dtype: torch.dtype, scale: Callable[[tuple[int, int]], float],
                        held_frames: Callable[[int], int] = lambda batch: 0, hint: str = "",
                        model: str = "the model") -> dict[str, int]:
    """Each camera's batch (by its image size, see :func:`plan_batch_size`), warning once per size on
    stderr where an explicit ``--batch_size`` was lowered to fit the machine's memory.

    ``scale(size)`` is the model's internal scale at an image size (the rule its family declares).

    Raises:
        EvcError: one image of some size does not fit in the machine's memory.
    """
    plans: dict[tuple[int, int], BatchPlan] = {}
    for size in sorted(set(sizes.values())):
        ratio = scale(size)
        plan = plan_batch_size(requested, cost, size, ratio, device, dtype, held_frames, hint, model)
        if plan.requested is not None:
            need = estimate_peak_bytes(cost, size, ratio, plan.requested, held_frames(plan.requested), dtype)
            print(f"{tool}: warning: --batch_size {plan.requested} at {size[1]}x{size[0]} would need about "
                  f"{need / 2**30:.1f} GB; using {plan.batch} images per pass to fit this machine's "
                  f"{total_memory(device) / 2**30:.1f} GB", file=sys.stderr)
        plans[size] = plan
    return {camera: plans[size].batch for camera, size in sizes.items()}
