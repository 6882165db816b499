"""Robust Video Matting over a multi-view dataset: every camera is one video.

Cameras of the same image size are batched together, frame by frame as EasyVolcap does, and
several frames of each camera go through one forward pass when the cameras alone do not fill the
batch. Each camera keeps its own recurrent state, so the result for a camera does not depend on
which other cameras share its batches.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..image_io import write_image
from ..inference import BatchLimit, run_with_backoff, to_device_batch
from ..layout import Camera, DatasetLayout
from ..parallel import BackgroundWriter, prefetch_map
from .common import clear_stale_outputs, group_by_size, image_size, read_frame

__all__ = ["RvmOptions", "RvmReport", "auto_downsample_ratio", "plan_steps", "run_rvm"]

State = list[torch.Tensor]  # r1..r4 of one camera, each (1, C, h, w)


@dataclass(frozen=True)
class RvmOptions:
    """What to write and how to batch."""

    mask_dir: str = "rvm"
    mask_ext: str = ".jpg"
    fgr_dir: str | None = None
    batch_size: int = 64  # images per forward pass
    downsample_ratio: float | None = None  # None: auto, min(512 / max(H, W), 1)
    quality: int = 85
    overwrite: bool = False
    workers: int = 4  # decode / encode threads


@dataclass
class RvmReport:
    """What a run did."""

    masks_written: int = 0
    fgr_written: int = 0
    frames_processed: int = 0
    cameras_processed: list[str] = field(default_factory=list)
    cameras_complete: list[str] = field(default_factory=list)  # skipped: outputs already there
    empty_frames: list[tuple[str, str]] = field(default_factory=list)  # (camera, frame stem)
    seconds: float = 0.0


@dataclass(frozen=True)
class Step:
    """One forward pass: frames ``t0 .. t0 + length - 1`` of each camera in ``cameras``."""

    cameras: tuple[Camera, ...]
    t0: int
    length: int

    def frames(self) -> Iterator[tuple[Camera, int]]:
        for camera in self.cameras:
            for t in range(self.t0, self.t0 + self.length):
                yield camera, t


def auto_downsample_ratio(height: int, width: int) -> float:
    """RVM's internal resolution: at most 512 pixels on the long side, never upsampled."""
    return min(512 / max(height, width), 1.0)


def plan_steps(cameras: list[Camera], batch_size: int) -> Iterator[Step]:
    """Forward passes for cameras of one size, in time order, at most ``batch_size`` images each.

    All active cameras of a frame share a pass; when they are fewer than ``batch_size``, each
    contributes several consecutive frames. A camera with fewer frames drops out when it ends.
    """
    t = 0
    while active := [camera for camera in cameras if len(camera) > t]:
        length = max(1, batch_size // len(active))
        length = min(length, min(len(camera) - t for camera in active))
        per_pass = max(1, batch_size // length)
        for i in range(0, len(active), per_pass):
            yield Step(tuple(active[i:i + per_pass]), t, length)
        t += length


class _Matting:
    """The state of one run: model, per-camera recurrent states, writer and report."""

    def __init__(self, layout: DatasetLayout, model: nn.Module, device: torch.device,
                 dtype: torch.dtype, options: RvmOptions, writer: BackgroundWriter,
                 report: RvmReport, bar: tqdm) -> None:
        self.layout, self.model, self.device, self.dtype = layout, model, device, dtype
        self.options, self.writer, self.report, self.bar = options, writer, report, bar
        self.limit = BatchLimit(options.batch_size)
        self.states: dict[str, State] = {}

    def run_step(self, step: Step, images: list[np.ndarray], ratio: float) -> None:
        """Run ``step`` (images camera-major), in pieces small enough for the current batch limit."""
        run_with_backoff((step, images), size=lambda work: len(work[0].cameras) * work[0].length,
                         split=_split_work, forward=lambda work: self._emit(work[0], *self._forward(*work, ratio)),
                         limit=self.limit, warn=lambda message: tqdm.write(f"rvm: warning: {message}", file=sys.stderr))

    def _forward(self, piece: Step, images: list[np.ndarray], ratio: float):
        src = to_device_batch(images, self.device, self.dtype)
        src = src.unflatten(0, (len(piece.cameras), piece.length))  # (B, T, 3, H, W)
        if piece.t0 == 0:
            rec: list[torch.Tensor | None] = [None] * 4
        else:
            rec = [torch.cat([self.states[c.name][i] for c in piece.cameras]) for i in range(4)]
        with torch.inference_mode():
            fgr, pha, *rec_out = self.model(src, *rec, downsample_ratio=ratio)
            alpha = pha.float().mul(255).round_().to(torch.uint8)[:, :, 0]  # (B, T, H, W)
            empty = ~(pha > 0.5).flatten(2).any(-1)  # (B, T)
            fgr_u8 = None
            if self.options.fgr_dir:
                fgr_u8 = fgr.float().mul(255).round_().to(torch.uint8).permute(0, 1, 3, 4, 2)
        for b, camera in enumerate(piece.cameras):
            self.states[camera.name] = [r[b:b + 1] for r in rec_out]
        return alpha.cpu().numpy(), empty.cpu().numpy(), None if fgr_u8 is None else fgr_u8.cpu().numpy()

    def _emit(self, piece: Step, alpha: np.ndarray, empty: np.ndarray, fgr: np.ndarray | None) -> None:
        options, layout = self.options, self.layout
        for b, camera in enumerate(piece.cameras):
            for dt in range(piece.length):
                frame = camera.frames[piece.t0 + dt]
                if empty[b, dt]:
                    self.report.empty_frames.append((camera.name, frame.stem))
                mask_path = layout.output_path(options.mask_dir, camera.name, frame, options.mask_ext)
                if options.overwrite or not mask_path.exists():
                    self.writer.submit(write_image, mask_path, alpha[b, dt], options.quality)
                    self.report.masks_written += 1
                if fgr is not None:
                    fgr_path = layout.output_path(options.fgr_dir, camera.name, frame, ".jpg")
                    if options.overwrite or not fgr_path.exists():
                        self.writer.submit(write_image, fgr_path, fgr[b, dt], options.quality)
                        self.report.fgr_written += 1
        self.report.frames_processed += len(piece.cameras) * piece.length
        self.bar.update(len(piece.cameras) * piece.length)


def _split(step: Step, limit: int) -> Iterator[Step]:
    """``step`` cut into pieces of at most ``limit`` images, cameras first, then time."""
    if len(step.cameras) * step.length <= limit:
        yield step
        return
    if step.length <= limit:
        per_pass = limit // step.length
        for i in range(0, len(step.cameras), per_pass):
            yield Step(step.cameras[i:i + per_pass], step.t0, step.length)
        return
    for camera in step.cameras:  # time pieces of one camera run in order: states flow through
        for t in range(step.t0, step.t0 + step.length, limit):
            yield Step((camera,), t, min(limit, step.t0 + step.length - t))


def _split_work(work: tuple[Step, list[np.ndarray]], limit: int) -> Iterator[tuple[Step, list[np.ndarray]]]:
    step, images = work
    for piece in _split(step, limit):
        yield piece, _select(step, piece, images)


def _select(step: Step, piece: Step, images: list[np.ndarray]) -> list[np.ndarray]:
    """The images of ``piece`` among the images of ``step`` (camera-major, as ``Step.frames``)."""
    first, shift = step.cameras.index(piece.cameras[0]), piece.t0 - step.t0
    return [images[(first + i) * step.length + shift + dt]
            for i in range(len(piece.cameras)) for dt in range(piece.length)]


def _complete(layout: DatasetLayout, camera: Camera, options: RvmOptions) -> bool:
    """Whether every output of ``camera`` exists already."""
    dirs = [(options.mask_dir, options.mask_ext)] + ([(options.fgr_dir, ".jpg")] if options.fgr_dir else [])
    return all(layout.output_path(out_dir, camera.name, frame, ext).exists()
               for out_dir, ext in dirs for frame in camera.frames)


def run_rvm(layout: DatasetLayout, model: nn.Module, device: torch.device, dtype: torch.dtype,
            options: RvmOptions, progress: bool | None = None) -> RvmReport:
    """Write a soft alpha mask (and optionally the foreground) for every frame of every camera.

    Args:
        layout: the dataset's cameras and frames.
        model: an RVM ``MattingNetwork`` in eval mode, already on ``device`` in ``dtype``.
        device: where the model runs.
        dtype: ``float32``, or ``float16`` on CUDA.
        options: output folders, batch size, downsample ratio, resume behaviour.
        progress: show a tqdm bar over frames (``None``: only when stderr is a terminal).

    Cameras whose outputs all exist are skipped unless ``options.overwrite``; a partly done camera
    is replayed from its first frame (the recurrence needs it) and only missing files are written.
    Kernels round differently for different batch shapes, so a partly done camera is replayed with
    every camera of its batch group, in the same batches as an uninterrupted run: resumed outputs
    are then byte-identical to those of an uninterrupted run with the same flags.
    """
    start = time.perf_counter()
    report = RvmReport()
    sizes = {camera.name: image_size(camera.frames[0]) for camera in layout.cameras}
    groups = []
    for size, cameras in group_by_size(list(layout.cameras), sizes):
        complete = {c.name for c in cameras if not options.overwrite and _complete(layout, c, options)}
        report.cameras_complete += [c.name for c in cameras if c.name in complete]
        report.cameras_processed += [c.name for c in cameras if c.name not in complete]
        if len(complete) < len(cameras):  # replay the whole group: same batches, bit-identical results
            groups.append((size, cameras))
    clear_stale_outputs(layout, [options.mask_dir, options.fgr_dir])
    steps = [(step, options.downsample_ratio or auto_downsample_ratio(*size))
             for size, cameras in groups for step in plan_steps(cameras, options.batch_size)]
    frames = [item for step, _ in steps for item in step.frames()]
    def read(item: tuple[Camera, int]) -> np.ndarray:
        camera, t = item
        return read_frame(camera, camera.frames[t], sizes[camera.name])

    ahead = options.batch_size + 2 * options.workers
    with closing(prefetch_map(read, frames, options.workers, ahead)) as reader, \
            BackgroundWriter(options.workers, capacity=2 * options.batch_size) as writer, \
            tqdm(total=len(frames), disable=None if progress is None else not progress,
                 unit="img", desc="rvm") as bar:
        matting = _Matting(layout, model, device, dtype, options, writer, report, bar)
        for step, ratio in steps:
            images = [next(reader) for _ in range(len(step.cameras) * step.length)]
            matting.run_step(step, images, ratio)
            for camera in step.cameras:
                if step.t0 + step.length == len(camera):
                    matting.states.pop(camera.name, None)
    report.seconds = time.perf_counter() - start
    return report
