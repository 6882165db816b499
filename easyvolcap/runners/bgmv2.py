"""Background Matting V2 over a multi-view dataset, with one captured background per camera.

Each camera's frames go through the network in fixed batches of ``batch_size`` frames, never mixed
with another camera's. A batch whose outputs all exist is skipped; any other batch is computed
whole. A camera's files are therefore byte-identical whether the run was interrupted and resumed,
sharded over machines or split over devices.
"""

from __future__ import annotations

import sys
import time
from contextlib import closing
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..batching import plan_camera_batches
from ..errors import EvcError
from ..image_io import read_rgb
from ..inference import (
    BatchLimit,
    alpha_to_uint8,
    empty_masks,
    inference_session,
    run_with_backoff,
    split_list,
    to_device_batch,
)
from ..layout import DatasetLayout
from ..parallel import BackgroundWriter, prefetch_map
from ..progress import progress_bar
from .common import Item, clear_stale_outputs, emit_mattes, matte_outputs, plan_batches
from .frame_source import FrameSource
from .report import MattingReport

__all__ = ["Bgmv2Options", "Bgmv2Report", "background_candidates", "refine_settings", "run_bgmv2"]

_HD_PIXELS = 1920 * 1080


@dataclass(frozen=True)
class Bgmv2Options:
    """What to write, how to batch, and the refiner's settings."""

    mask_dir: str = "bgmtv2"
    mask_ext: str = ".jpg"
    bkgd_dir: str = "bkgd"
    fgr_dir: str | None = None
    chunk_size: int = 64  # images held at once: half decoded ahead, half queued for writing
    batch_size: int | None = None  # images per forward pass; None: auto (easyvolcap.batching)
    backbone_scale: float | None = 0.25  # None: auto, 0.25 up to 2K and 0.125 above
    refine_mode: str = "sampling"
    refine_sample_pixels: int = 80_000  # at 1080p when backbone_scale is auto
    refine_threshold: float = 0.1
    resize_bkgd: bool = False
    quality: int = 85
    overwrite: bool = False
    workers: int = 4
    decode: str = "host"  # host, or device: JPEG frames decoded on the model's device (see frame_source)


@dataclass
class Bgmv2Report(MattingReport):
    """What a BGMv2 run did, with the backbone and the refine settings used per image size."""

    settings: dict[tuple[int, int], tuple[float, int]] = field(default_factory=dict)  # size -> (scale, pixels)
    backbone: str = ""

    def merge(self, other: Bgmv2Report) -> Bgmv2Report:
        super().merge(other)
        self.settings.update(other.settings)
        self.backbone = self.backbone or other.backbone
        return self


def refine_settings(options: Bgmv2Options, size: tuple[int, int]) -> tuple[float, int]:
    """``(backbone_scale, refine_sample_pixels)`` for images of ``size``.

    With ``backbone_scale`` auto, 0.25 up to 2K (long side <= 2048) and 0.125 above, and the sample
    pixels scaled with the image area from ``refine_sample_pixels`` at 1080p (80,000 gives 320,000 at
    4K, the BGMv2 authors' advice). Otherwise both are taken as given.
    """
    if options.backbone_scale is not None:
        return options.backbone_scale, options.refine_sample_pixels
    scale = 0.25 if max(size) <= 2048 else 0.125
    return scale, max(16, round(options.refine_sample_pixels * size[0] * size[1] / _HD_PIXELS))


def background_candidates(layout: DatasetLayout, bkgd_dir: str, camera: str) -> list[Path]:
    """Where a camera's background may be, in EasyVolcap's order."""
    folder = layout.root / bkgd_dir
    return [folder / f"{camera}.jpg", folder / f"{camera}.png",
            folder / camera / "000000.jpg", folder / camera / "000000.png"]


def _load_background(layout: DatasetLayout, options: Bgmv2Options, camera: str,
                     size: tuple[int, int]) -> np.ndarray:
    tried = background_candidates(layout, options.bkgd_dir, camera)
    path = next((p for p in tried if p.is_file()), None)
    if path is None:
        raise EvcError(f"camera {camera}: no background image; tried {', '.join(map(str, tried))}")
    image = read_rgb(path)  # an RGBA background (from extract_backgrounds.py) gives its RGB
    if image.shape[:2] != size:
        if not options.resize_bkgd:
            raise EvcError(f"{path}: background is {image.shape[1]}x{image.shape[0]}, camera {camera}'s images "
                           f"are {size[1]}x{size[0]}; pass --resize_bkgd to resize it")
        image = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return image


def _pad(x: torch.Tensor, multiple: int = 4) -> torch.Tensor:
    """Replicate-pad the bottom and right to a multiple of ``multiple`` (the refiner's 4x4 blocks)."""
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x


class _Matting:
    """The state of one run: model, backgrounds on the device, writer and report."""

    def __init__(self, layout: DatasetLayout, model: nn.Module, device: torch.device, dtype: torch.dtype,
                 options: Bgmv2Options, backgrounds: dict[str, np.ndarray], writer: BackgroundWriter,
                 report: Bgmv2Report, bar: tqdm, source: FrameSource,
                 memory_format: torch.memory_format = torch.contiguous_format, batch_size: int | None = None) -> None:
        self.layout, self.model, self.device, self.dtype, self.source = layout, model, device, dtype, source
        self.memory_format = memory_format  # of input batches
        self.options, self.backgrounds, self.writer, self.report, self.bar = options, backgrounds, writer, report, bar
        self.limit = BatchLimit(batch_size or options.batch_size or 1)
        self.bgr: tuple[tuple[str, ...], torch.Tensor | None] = ((), None)  # the last batch's backgrounds, by camera

    def run_batch(self, items: list[Item], images: list) -> None:
        """Matte one batch, in smaller pieces if the device runs out of memory."""
        run_with_backoff(
            list(zip(items, images, strict=True)), size=len,
            split=split_list,
            forward=self._forward, limit=self.limit,
            warn=lambda message: tqdm.write(f"evc-bgmv2: warning: {message}", file=sys.stderr))

    def _background_batch(self, items: list[Item]) -> torch.Tensor:
        """The backgrounds of ``items``, as a batch on the device; reused while the cameras do not change."""
        cameras = tuple(camera.name for camera, _ in items)
        if self.bgr[0] != cameras:
            self.bgr = ((), None)  # free the previous batch first
            self.bgr = cameras, to_device_batch([self.backgrounds[name] for name in cameras], self.device, self.dtype,
                                                self.memory_format)
        return self.bgr[1]

    def _forward(self, work: list[tuple[Item, object]]) -> None:
        items = [item for item, _ in work]
        src = self.source.batch(items, [image for _, image in work], self.dtype, self.memory_format)
        bgr = self._background_batch(items)
        height, width = src.shape[-2:]
        with torch.inference_mode():
            pha, fgr = self.model(_pad(src), _pad(bgr))[:2]
            pha, fgr = pha[..., :height, :width], fgr[..., :height, :width]
            alpha = alpha_to_uint8(pha[:, 0])
            empty = empty_masks(alpha, pha[:, 0]).cpu().numpy()
            alpha = alpha.cpu().numpy()
            fgr_u8 = None
            if self.options.fgr_dir:
                fgr_u8 = fgr.float().mul(255).round_().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        self._emit(items, alpha, empty, fgr_u8)

    def _emit(self, items: list[Item], alpha: np.ndarray, empty: np.ndarray, fgr: np.ndarray | None) -> None:
        emit_mattes(self.layout, self.options, self.writer, self.report, items, alpha, empty, fgr)  # counts progress


def run_bgmv2(layout: DatasetLayout, model: nn.Module, device: torch.device, dtype: torch.dtype,
              options: Bgmv2Options, progress: bool | None = None) -> Bgmv2Report:
    """Write an alpha mask (and optionally the foreground) for every frame, against its camera's background.

    Args:
        layout: the dataset's cameras and frames.
        model: a BGMv2 ``MattingRefine`` in eval mode, on ``device`` in ``dtype``; its scale and
            refiner settings are set here from ``options``.
        device: where the model runs.
        dtype: ``float32``, or ``float16`` on CUDA.
        options: folders, batching, refiner settings, resume behaviour.
        progress: ``None``: a bar when stderr is a terminal, else a line every few seconds; ``False``: none.

    Raises:
        EvcError: a background is missing or of the wrong size, an image is unreadable.
    """
    start = time.perf_counter()
    report = Bgmv2Report(backbone=getattr(model, "backbone_name", ""))
    sizes = {camera.name: camera.size() for camera in layout.cameras}
    model.refiner.mode, model.refiner.threshold = options.refine_mode, options.refine_threshold
    report.batch_mode = "auto" if options.batch_size is None else "set"
    report.batch_sizes = plan_camera_batches(
        "evc-bgmv2", options.batch_size, f"bgmv2:{report.backbone or 'resnet101'}", sizes, device, dtype,
        lambda size: refine_settings(options, size)[0],
        held_frames=lambda batch: max(options.chunk_size, 2 * batch) + 1, hint="a smaller --backbone_scale")
    outputs = partial(matte_outputs, layout, options)
    batches = plan_batches(layout, report.batch_sizes, outputs, options.overwrite, report)
    busy = {batch[0][0].name for batch in batches}
    backgrounds = {name: _load_background(layout, options, name, sizes[name]) for name in sorted(busy)}
    clear_stale_outputs(layout, [options.mask_dir, options.fgr_dir])

    source = FrameSource(device, sizes, options.decode)
    frames = [item for batch in batches for item in batch]
    batch_size = max(report.batch_sizes.values(), default=1)
    ahead = max(options.chunk_size // 2, batch_size)  # decoded ahead, and as many queued for writing
    with progress_bar(len(frames), "evc-bgmv2", progress) as bar, \
            closing(prefetch_map(source.load, frames, options.workers, ahead)) as reader, \
            BackgroundWriter(options.workers, capacity=ahead, progress=bar) as writer, \
            inference_session(model, device) as memory_format:
        matting = _Matting(layout, model, device, dtype, options, backgrounds, writer, report, bar, source,
                           memory_format, batch_size)
        for batch in batches:
            size = sizes[batch[0][0].name]
            scale, pixels = report.settings.setdefault(size, refine_settings(options, size))
            model.backbone_scale, model.refiner.sample_pixels = scale, pixels
            matting.run_batch(batch, [next(reader) for _ in batch])
        if matting.limit.announced:
            report.batch_lowered = {str(device): matting.limit.value}
    report.seconds = time.perf_counter() - start
    return report
