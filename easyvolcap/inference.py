"""What every inference loop shares: device choice, precision, host-to-device batches, OOM back-off."""

from __future__ import annotations

import ctypes
import functools
import gc
import platform
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import cv2
import numpy as np
import torch
from torch import nn

from .errors import EvcError

__all__ = [
    "BatchLimit",
    "alpha_to_uint8",
    "device_empty_masks",
    "empty_masks",
    "exhausted_memory",
    "inference_session",
    "input_memory_format",
    "is_out_of_memory",
    "keep_freed_memory",
    "pick_device",
    "pick_dtype",
    "pinned_stack",
    "run_with_backoff",
    "split_list",
    "to_device_batch",
    "with_index",
]

W = TypeVar("W")


def pick_device(spec: str | None = None) -> torch.device:
    """``spec`` as a device (default: ``cuda`` when available, else ``cpu``); a CUDA device always with its index
    (``cuda`` is the current device, ``cuda:0`` unless set otherwise), as CUDA's memory controls need.

    Raises:
        EvcError: the device string is malformed or names a CUDA device that is not there.
    """
    if spec is None or spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(spec)
    except RuntimeError as error:
        raise EvcError(f"--device {spec}: not a device (use cpu, cuda or cuda:N)") from error
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise EvcError(f"--device {spec}: CUDA is not available on this machine; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise EvcError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) here")
        return with_index(device, torch.cuda.current_device)
    elif device.type != "cpu":
        raise EvcError(f"--device {spec}: unsupported device type (use cpu or cuda)")
    return device


def with_index(device: torch.device, current: Callable[[], int]) -> torch.device:
    """``device`` with an index: ``current()`` (the current device's) where it has none. CUDA's memory controls
    (``set_per_process_memory_fraction``) refuse a device without one."""
    return device if device.index is not None else torch.device(device.type, current())


def pick_dtype(device: torch.device, fp16: bool) -> tuple[torch.dtype, str | None]:
    """The compute dtype, and a warning when ``--fp16`` cannot be honoured (CPU: fp32 is faster)."""
    if not fp16:
        return torch.float32, None
    if device.type != "cuda":
        return torch.float32, "--fp16 needs CUDA; computing in float32 on the CPU"
    return torch.float16, None


def input_memory_format(device: torch.device) -> torch.memory_format:
    """The layout of input batches during :func:`inference_session` on ``device``: channels-last on the CPU."""
    return torch.channels_last if device.type == "cpu" else torch.contiguous_format


@contextmanager
def inference_session(model: nn.Module, device: torch.device) -> Iterator[torch.memory_format]:
    """Set the process up for fast inference of ``model`` on ``device``; yields the input batches' layout.

    On the CPU, until the block ends:

    - the model's weights are in channels-last (NHWC) layout, and so should input batches be (pass the
      yielded format to :func:`to_device_batch`): oneDNN's convolutions and the ops between them are
      faster in it. Results change only by float rounding.
    - :func:`keep_freed_memory` is in force: a pass's large activations reuse the memory of the
      previous pass instead of being faulted in page by page.

    On exit the weights go back to NCHW if they were. Sessions nest (an inner one changes nothing).
    On CUDA nothing changes and the layout is NCHW.
    """
    if device.type != "cpu":
        yield input_memory_format(device)
        return
    was_nchw = any(not p.is_contiguous(memory_format=torch.channels_last) for p in model.parameters() if p.dim() == 4)
    model.to(memory_format=torch.channels_last)
    try:
        with keep_freed_memory():
            yield input_memory_format(device)
    finally:
        if was_nchw:
            model.to(memory_format=torch.contiguous_format)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, from glibc's malloc.h
_KEEP = 2**31 - 1  # the largest value: no block is unmapped when freed, the heap is never trimmed
_SETTLED = {_M_MMAP_THRESHOLD: 32 * 2**20, _M_TRIM_THRESHOLD: 64 * 2**20}  # where glibc's own adjustment tops out
_kept = 0  # depth of nested keep_freed_memory blocks
_kept_lock = threading.Lock()


@contextmanager
def keep_freed_memory() -> Iterator[None]:
    """Make glibc's ``malloc`` keep freed memory for reuse, for the duration of the block (nests).

    By default glibc maps every block over 32 MB (and smaller ones, until its threshold has adapted)
    fresh from the system and unmaps it when freed, so an inference loop faults its large activations
    in page by page at every pass; on the 2-core virtual machine of ``bench/matting.py`` that costs
    as much as the convolutions (RVM and BGMv2 run about 2x faster at 1080p without it). Inside the
    block such blocks come from the heap and are reused; the peak memory is about the same, but it
    is held until the block ends. On exit the thresholds are set to where glibc's own dynamic
    adjustment tops out (32 MB, and 64 MB for trimming), and the next ``free`` returns the heap's
    free top to the system. Elsewhere than glibc this does nothing.
    """
    global _kept
    libc = _glibc()
    if libc is None:
        yield
        return
    with _kept_lock:
        _kept += 1
        if _kept == 1:
            libc.mallopt(_M_MMAP_THRESHOLD, _KEEP)
            libc.mallopt(_M_TRIM_THRESHOLD, _KEEP)
    try:
        yield
    finally:
        with _kept_lock:
            _kept -= 1
            if _kept == 0:
                for parameter, value in _SETTLED.items():
                    libc.mallopt(parameter, value)


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (whose ``mallopt`` :func:`keep_freed_memory` sets), else ``None``."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


def to_device_batch(images: list[np.ndarray], device: torch.device, dtype: torch.dtype,
                    memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
    """Stack ``(H, W, 3)`` uint8 RGB arrays into a ``(N, 3, H, W)`` tensor in [0, 1] on ``device``.

    On CUDA the frames are copied once, into one pinned uint8 batch, which crosses to the device without
    blocking the host (the copy is queued behind the passes already running) and is converted there.
    On the CPU each image is converted by a 256-entry table straight into the batch (``x / 255``
    exactly, several times faster than torch's conversion of the interleaved layout). The result is
    NCHW by default, or ``memory_format``.
    """
    first = images[0]
    if device.type == "cpu" and dtype == torch.float32 and all(
            i.dtype == np.uint8 and i.shape == first.shape for i in images) and first.ndim == 3 and first.shape[2] == 3:
        height, width = first.shape[:2]
        out = np.empty((len(images), height, width, 3), np.float32)
        for index, image in enumerate(images):
            cv2.LUT(image, _UNIT_TABLE, dst=out[index])
        return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous(memory_format=memory_format)
    if device.type == "cuda":
        batch = pinned_stack(images).to(device, non_blocking=True)
    else:
        batch = torch.from_numpy(np.stack(images))
    return batch.permute(0, 3, 1, 2).to(dtype, memory_format=memory_format).div_(255)


def pinned_stack(images: list[np.ndarray]) -> torch.Tensor:
    """``images`` (all of one shape and dtype) stacked into one page-locked host tensor: one copy per image."""
    first = images[0]
    if any(image.shape != first.shape or image.dtype != first.dtype for image in images):
        raise ValueError("images of one batch must have the same shape and dtype")
    out = torch.empty((len(images), *first.shape), dtype=torch.from_numpy(first[:0]).dtype,
                      pin_memory=torch.cuda.is_available())
    target = out.numpy()
    for index, image in enumerate(images):
        target[index] = image
    return out


_UNIT_TABLE = (np.arange(256, dtype=np.float32) / np.float32(255)).reshape(1, 256)  # uint8 -> [0, 1], as x / 255


def alpha_to_uint8(pha: torch.Tensor) -> torch.Tensor:
    """8-bit masks ``round(pha * 255)`` (half to even) of ``(N, H, W)`` alphas in [0, 1], on ``pha``'s device.

    On the CPU OpenCV converts each float32 matte in one pass (about 10x faster than torch's
    multiply, round and cast; the same values).
    """
    if pha.device.type != "cpu" or pha.dtype != torch.float32:
        return pha.float().mul(255).round_().to(torch.uint8)
    src = pha.contiguous().numpy()
    out = np.empty(src.shape, np.uint8)
    for index, matte in enumerate(src):
        cv2.convertScaleAbs(matte, dst=out[index], alpha=255)
    return torch.from_numpy(out)


def empty_masks(alpha: torch.Tensor, pha: torch.Tensor) -> torch.Tensor:
    """Which of ``N`` mattes have no pixel above 0.5: an ``(N,)`` bool tensor.

    ``pha`` is the float alpha ``(N, ...)`` and ``alpha`` its 8-bit masks ``round(pha * 255)``. The
    answer is read from the masks' maxima, which are cheap: a maximum of 127 or less means every
    pixel is below 0.5, one of 129 or more that some pixel is above. Only a maximum of exactly 128
    (which 0.5 itself gives) is decided on ``pha``.
    """
    if pha.device.type != "cpu":
        return device_empty_masks(pha)
    top = alpha.flatten(1).amax(1)
    empty = top < 128
    unsure = top == 128
    if unsure.any():
        empty[unsure] = ~(pha[unsure] > 0.5).flatten(1).any(-1)
    return empty


def device_empty_masks(pha: torch.Tensor) -> torch.Tensor:
    """:func:`empty_masks` without waiting for the device: one comparison over ``pha``, left on its device (on a GPU
    the whole matte costs less than the host reading one number back)."""
    return ~(pha > 0.5).flatten(1).any(1)


def exhausted_memory(error: BaseException) -> str | None:
    """Which memory ``error`` says ran out: ``"device"`` (CUDA), ``"host"`` (the CPU allocator, or
    Python's and NumPy's ``MemoryError``), or ``None`` when it is another error."""
    if isinstance(error, MemoryError):
        return "host"
    if not isinstance(error, RuntimeError):
        return None
    text = str(error)
    if "DefaultCPUAllocator" in text or "can't allocate memory" in text:
        return "host"
    if isinstance(error, torch.OutOfMemoryError) or "out of memory" in text.lower():
        return "device"
    return None


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is an out-of-memory error, of the device or of the host."""
    return exhausted_memory(error) is not None


class BatchLimit:
    """The number of items (``unit``, e.g. images per forward pass) per pass; halved on out-of-memory,
    announced once."""

    def __init__(self, value: int, unit: str = "images per forward pass", flag: str = "--batch_size") -> None:
        if value < 1:
            raise EvcError(f"{flag} {value}: must be at least 1")
        self.value, self.unit = value, unit
        self.announced = False

    def halve(self, memory: str = "device") -> str | None:
        """Halve the limit after running out of ``memory`` (``device`` or ``host``); returns a message
        the first time, raises at 1.

        Raises:
            EvcError: one item per pass already runs out of memory.
        """
        if self.value <= 1:
            one = self.unit.replace("s per ", " per ", 1)
            hint = "use another device, or --device cpu" if memory == "device" else \
                "free memory, or use a machine with more"
            raise EvcError(f"out of {memory} memory with one {one}; {hint}")
        self.value = max(1, self.value // 2)
        if self.announced:
            return None
        self.announced = True
        return f"out of {memory} memory: lowering the batch to {self.value} {self.unit}"


def split_list(work: list, size: int) -> Iterator[list]:
    """``work`` in consecutive pieces of at most ``size`` items."""
    return (work[start:start + size] for start in range(0, len(work), size))


def run_with_backoff(work: W, size: Callable[[W], int], split: Callable[[W, int], Iterable[W]],
                     forward: Callable[[W], None], limit: BatchLimit, warn: Callable[[str], None]) -> None:
    """Run ``forward(work)`` in pieces of at most ``limit.value`` items, halving the limit on out-of-memory.

    ``split(work, n)`` cuts ``work`` into pieces of at most ``n`` items, in the order they must run.
    After an out-of-memory error of the device or of the host (the CPU allocator) the same piece is
    retried under the lower limit; ``warn`` gets the announcement once. The retry starts only after
    the failed attempt is gone: its exception and traceback (which hold every local of the failed
    pass, its activations among them) are dropped, reference cycles collected and CUDA's cached
    blocks released, so the smaller pass does not compete with the dead one for memory.
    """
    if size(work) > limit.value:
        for piece in split(work, limit.value):
            run_with_backoff(piece, size, split, forward, limit, warn)
        return
    memory = _attempt(forward, work)
    if memory is None:
        return
    _release_memory()  # outside the except block: nothing holds the failed attempt any more
    message = limit.halve(memory)
    if message:
        warn(message)
    run_with_backoff(work, size, split, forward, limit, warn)


def _attempt(forward: Callable[[W], None], work: W) -> str | None:
    """``forward(work)``; returns which memory ran out (see :func:`exhausted_memory`), or ``None`` on
    success. Other errors propagate. Leaving the ``except`` block drops the exception and its traceback."""
    try:
        forward(work)
    except (RuntimeError, MemoryError) as error:
        memory = exhausted_memory(error)
        if memory is None:
            raise
        return memory
    return None


def _release_memory() -> None:
    """Free what a failed pass left: objects kept only by reference cycles, then CUDA's cached blocks."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
