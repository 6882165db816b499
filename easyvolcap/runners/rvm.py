"""Robust Video Matting over a multi-view dataset: every camera is one video.

Each forward pass takes up to ``batch_size`` consecutive frames of one camera (a ``[1, T, 3, H, W]``
clip) and carries the camera's recurrent state to its next pass. Passes never mix cameras: kernels
round differently for different batch shapes, so mixing would make a camera's masks depend on which
other cameras share a run. Kept apart, a camera's files are byte-identical whether the run was
interrupted and resumed, sharded over machines or split over devices.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..batching import plan_camera_batches
from ..inference import BatchLimit, alpha_to_uint8, empty_masks, inference_session, run_with_backoff
from ..layout import Camera, DatasetLayout
from ..parallel import BackgroundWriter, prefetch_map
from ..progress import progress_bar
from .common import clear_stale_outputs, emit_mattes, matte_outputs, plan_batches
from .frame_source import FrameSource
from .report import MattingReport

__all__ = ["Clip", "RvmOptions", "RvmReport", "auto_downsample_ratio", "plan_clips", "run_rvm"]


@dataclass(frozen=True)
class RvmOptions:
    """What to write and how to batch."""

    mask_dir: str = "rvm"
    mask_ext: str = ".jpg"
    fgr_dir: str | None = None
    batch_size: int | None = None  # frames per forward pass; None: auto (easyvolcap.batching)
    downsample_ratio: float | None = None  # None: auto, min(512 / max(H, W), 1)
    quality: int = 85
    overwrite: bool = False
    workers: int = 4  # decode / encode threads
    decode: str = "host"  # host, or device: JPEG frames decoded on the model's device (see frame_source)


RvmReport = MattingReport  # what an RVM run did


@dataclass(frozen=True)
class Clip:
    """One forward pass: frames ``t0 .. t0 + length - 1`` of ``camera``."""

    camera: Camera
    t0: int
    length: int


def auto_downsample_ratio(height: int, width: int) -> float:
    """RVM's internal resolution: at most 512 pixels on the long side, never upsampled."""
    return min(512 / max(height, width), 1.0)


def plan_clips(camera: Camera, batch_size: int) -> list[Clip]:
    """A camera's frames in order, cut into clips of ``batch_size`` frames (the last may be shorter)."""
    return [Clip(camera, t0, min(batch_size, len(camera) - t0)) for t0 in range(0, len(camera), batch_size)]


def _split(work: tuple[Clip, list], limit: int) -> Iterator[tuple[Clip, list]]:
    """A clip cut into shorter clips, in time order (the recurrent state flows through them)."""
    clip, images = work
    for start in range(0, clip.length, limit):
        yield Clip(clip.camera, clip.t0 + start, min(limit, clip.length - start)), images[start:start + limit]


class _Matting:
    """The state of one run: model, the current camera's recurrent state, writer and report."""

    def __init__(self, layout: DatasetLayout, model: nn.Module, device: torch.device, dtype: torch.dtype,
                 options: RvmOptions, writer: BackgroundWriter, report: RvmReport, bar, source: FrameSource,
                 memory_format: torch.memory_format = torch.contiguous_format, batch_size: int | None = None) -> None:
        self.layout, self.model, self.device, self.dtype, self.source = layout, model, device, dtype, source
        self.memory_format = memory_format  # of input batches
        self.options, self.writer, self.report, self.bar = options, writer, report, bar
        self.limit = BatchLimit(batch_size or options.batch_size or 1)
        self.state: list[torch.Tensor | None] = [None] * 4

    def run_clip(self, clip: Clip, images: list, ratio: float) -> None:
        """Matte one clip, in shorter clips if the device runs out of memory."""
        if clip.t0 == 0:
            self.state = [None] * 4
        run_with_backoff((clip, images), size=lambda work: work[0].length, split=_split,
                         forward=lambda work: self._emit(work[0], *self._forward(*work, ratio)), limit=self.limit,
                         warn=lambda message: tqdm.write(f"evc-rvm: warning: {message}", file=sys.stderr))

    def _forward(self, clip: Clip, images: list, ratio: float):
        items = [(clip.camera, clip.t0 + dt) for dt in range(clip.length)]
        src = self.source.batch(items, images, self.dtype, self.memory_format)[None]  # (1, T, 3, H, W)
        with torch.inference_mode():
            fgr, pha, *state = self.model(src, *self.state, downsample_ratio=ratio)
            alpha = alpha_to_uint8(pha[0, :, 0])  # (T, H, W)
            empty = empty_masks(alpha, pha[0, :, 0])  # (T,)
            fgr_u8 = fgr[0].float().mul(255).round_().to(torch.uint8).permute(0, 2, 3, 1) if self.options.fgr_dir \
                else None
        self.state = state  # only after the whole pass succeeded: an OOM retry starts from the same state
        return alpha.cpu().numpy(), empty.cpu().numpy(), None if fgr_u8 is None else fgr_u8.cpu().numpy()

    def _emit(self, clip: Clip, alpha: np.ndarray, empty: np.ndarray, fgr: np.ndarray | None) -> None:
        items = [(clip.camera, clip.t0 + dt) for dt in range(clip.length)]
        emit_mattes(self.layout, self.options, self.writer, self.report, items, alpha, empty, fgr)  # counts progress


def run_rvm(layout: DatasetLayout, model: nn.Module, device: torch.device, dtype: torch.dtype,
            options: RvmOptions, progress: bool | None = None) -> RvmReport:
    """Write a soft alpha mask (and optionally the foreground) for every frame of every camera.

    Args:
        layout: the dataset's cameras and frames.
        model: an RVM ``MattingNetwork`` in eval mode, already on ``device`` in ``dtype``.
        device: where the model runs.
        dtype: ``float32``, or ``float16`` on CUDA.
        options: output folders, batch size, downsample ratio, resume behaviour.
        progress: ``None``: a bar when stderr is a terminal, else a line every few seconds; ``False``: none.

    Cameras whose outputs all exist are skipped unless ``options.overwrite``; a partly done camera
    is replayed from its first frame (the recurrence needs it), in the same clips as before, and
    only its missing files are written.
    """
    start = time.perf_counter()
    report = RvmReport()
    outputs = partial(matte_outputs, layout, options)
    todo = [batch[0][0] for batch in plan_batches(layout, None, outputs, options.overwrite, report)]  # whole cameras
    clear_stale_outputs(layout, [options.mask_dir, options.fgr_dir])
    sizes = {camera.name: camera.size() for camera in todo}
    report.batch_mode = "auto" if options.batch_size is None else "set"
    report.batch_sizes = plan_camera_batches(
        "evc-rvm", options.batch_size, f"rvm:{getattr(model, 'variant', 'resnet50')}", sizes, device, dtype,
        lambda size: options.downsample_ratio or auto_downsample_ratio(*size),
        held_frames=lambda batch: 3 * batch + 2 * options.workers,
        hint="a smaller --downsample_ratio or --variant mobilenetv3")
    clips = [clip for camera in todo for clip in plan_clips(camera, report.batch_sizes[camera.name])]
    batch_size = max(report.batch_sizes.values(), default=1)

    source = FrameSource(device, sizes, options.decode)
    frames = [(camera, t) for camera in todo for t in range(len(camera))]
    ahead = batch_size + 2 * options.workers
    with progress_bar(len(frames), "evc-rvm", progress) as bar, \
            closing(prefetch_map(source.load, frames, options.workers, ahead)) as reader, \
            BackgroundWriter(options.workers, capacity=2 * batch_size, progress=bar) as writer, \
            inference_session(model, device) as memory_format:
        matting = _Matting(layout, model, device, dtype, options, writer, report, bar, source, memory_format,
                           batch_size)
        for clip in clips:
            ratio = options.downsample_ratio or auto_downsample_ratio(*sizes[clip.camera.name])
            matting.run_clip(clip, [next(reader) for _ in range(clip.length)], ratio)
        if matting.limit.announced:
            report.batch_lowered = {str(device): matting.limit.value}
    report.seconds = time.perf_counter() - start
    return report
