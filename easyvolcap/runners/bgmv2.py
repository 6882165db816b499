"""Background Matting V2 over a multi-view dataset, with one captured background per camera.

Each camera's frames go through the network in fixed batches of ``batch_size`` frames, never mixed
with another camera's. A batch whose outputs all exist is skipped; any other batch is computed
whole. A camera's files are therefore byte-identical whether the run was interrupted and resumed,
sharded over machines or split over devices.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
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
from ..graphs import GraphedForward, graph_backend
from ..image_io import read_rgb
from ..inference import exhausted_memory, input_memory_format, to_device_batch
from ..layout import DatasetLayout
from ..models.bgmv2.checkpoints import DEFAULT_BACKBONE_SCALE, PASS_COSTS, refine_settings
from .common import Item, clear_stale_outputs, plan_batches
from .matting import MattingOptions, matte_outputs, run_matting
from .report import MattingReport

__all__ = ["Bgmv2Options", "Bgmv2Report", "background_candidates", "run_bgmv2"]


@dataclass(frozen=True)
class Bgmv2Options(MattingOptions):
    """What to write, how to batch, and the refiner's settings."""

    mask_dir: str = "bgmtv2"
    bkgd_dir: str = "bkgd"
    chunk_size: int = 64  # images held at once: half decoded ahead, half queued for writing
    backbone_scale: float | None = DEFAULT_BACKBONE_SCALE  # None: auto, 0.25 up to 2K and 0.125 above
    refine_mode: str = "sampling"
    refine_sample_pixels: int = 80_000  # at 1080p when backbone_scale is auto
    refine_threshold: float = 0.1
    resize_bkgd: bool = False


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


class _Bgmv2Pass:
    """BGMv2 as the matting loop runs it: each frame against its camera's background, with the refine settings
    of its image size.

    On CUDA the model's :meth:`coarse` replays CUDA graphs (:mod:`easyvolcap.graphs`), one per batch shape and
    scale; its :meth:`refine`, which selects blocks by value, runs eagerly on the graph's outputs within the same
    pass (they are the graph's buffers, overwritten by its next replay: nothing keeps them); a refine that runs out
    of device memory drops the graphs, as a coarse pass that does. Without graphs (the CPU, ``--no_cuda_graphs``)
    the pass is one call of the model, the same computation."""

    def __init__(self, model: nn.Module, options: Bgmv2Options, backgrounds: dict[str, np.ndarray],
                 device: torch.device, dtype: torch.dtype, report: Bgmv2Report) -> None:
        self.model, self.options, self.backgrounds, self.report = model, options, backgrounds, report
        self.device, self.dtype = device, dtype
        self.bgr: tuple[tuple[str, ...], torch.Tensor | None] = ((), None)  # the last batch's backgrounds, by camera
        self.coarse = GraphedForward(self._coarse, graph_backend(device, options.cuda_graphs),
                                     warn=lambda message: tqdm.write(f"evc-bgmv2: warning: {message}", file=sys.stderr))

    def _coarse(self, src: torch.Tensor, bgr: torch.Tensor, *, scale: float) -> Sequence[torch.Tensor]:
        """``model.coarse``'s outputs (:class:`~easyvolcap.models.bgmv2.model.CoarseOutputs`)."""
        return self.model.coarse(src, bgr, backbone_scale=scale)

    def _background_batch(self, items: list[Item]) -> torch.Tensor:
        """The backgrounds of ``items``, as a padded batch on the device; reused while the cameras do not change."""
        cameras = tuple(camera.name for camera, _ in items)
        if self.bgr[0] != cameras:
            self.bgr = ((), None)  # free the previous batch first
            self.bgr = cameras, _pad(to_device_batch([self.backgrounds[name] for name in cameras], self.device,
                                                     self.dtype, input_memory_format(self.device)))
        return self.bgr[1]

    def forward(self, items: list[Item], src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        size = tuple(src.shape[-2:])
        scale, pixels = self.report.settings.setdefault(size, refine_settings(
            size, self.options.backbone_scale, self.options.refine_sample_pixels))
        src, bgr = _pad(src), self._background_batch(items)
        refine = {"refine_mode": self.options.refine_mode, "sample_pixels": pixels,
                  "threshold": self.options.refine_threshold}
        if self.coarse.backend is None:  # the whole pass, as one call of the model
            pha, fgr = self.model(src, bgr, backbone_scale=scale, **refine)[:2]
        else:
            coarse = self.coarse(src, bgr, scale=scale)  # a graph's buffers where it replays: consumed here
            try:
                pha, fgr = self.model.refine(src, bgr, coarse, **refine)[:2]  # new tensors, not the graph's
            except RuntimeError as error:
                if exhausted_memory(error) == "device":
                    self.coarse.release()  # the back-off's smaller batch finds the graphs' memory free
                raise
        height, width = size
        return pha[:, 0, :height, :width], fgr[..., :height, :width] if self.options.fgr_dir else None

    def commit(self) -> None:
        pass  # nothing flows from one batch to the next


def run_bgmv2(layout: DatasetLayout, model: nn.Module, device: torch.device, dtype: torch.dtype,
              options: Bgmv2Options, progress: bool | None = None) -> Bgmv2Report:
    """Write an alpha mask (and optionally the foreground) for every frame, against its camera's background.

    Args:
        layout: the dataset's cameras and frames.
        model: a BGMv2 ``MattingRefine`` in eval mode, on ``device`` in ``dtype``; each pass gets its scale and
            refiner settings from ``options``.
        device: where the model runs.
        dtype: ``float32``, or ``float16`` on CUDA.
        options: folders, batching, refiner settings, resume behaviour.
        progress: ``None``: a bar when stderr is a terminal, else a line every few seconds; ``False``: none.

    Raises:
        EvcError: a background is missing or of the wrong size, an image is unreadable, the backbone is unknown.
    """
    start = time.perf_counter()
    report = Bgmv2Report(backbone=getattr(model, "backbone_name", ""))
    if report.backbone not in PASS_COSTS:
        raise EvcError(f"BGMv2 backbone {report.backbone!r}: unknown; one of {', '.join(PASS_COSTS)} was expected")
    sizes = {camera.name: camera.size() for camera in layout.cameras}
    report.batch_mode = "auto" if options.batch_size is None else "set"
    report.batch_sizes = plan_camera_batches(
        "evc-bgmv2", options.batch_size, PASS_COSTS[report.backbone], sizes, device, dtype,
        lambda size: refine_settings(size, options.backbone_scale, options.refine_sample_pixels)[0],
        held_frames=lambda batch: max(options.chunk_size, 2 * batch) + 1, hint="a smaller --backbone_scale",
        model=f"bgmv2 {report.backbone}")
    outputs = partial(matte_outputs, layout, options)
    batches = plan_batches(layout, report.batch_sizes, outputs, options.overwrite, report)
    busy = {batch[0][0].name for batch in batches}
    backgrounds = {name: _load_background(layout, options, name, sizes[name]) for name in sorted(busy)}
    clear_stale_outputs(layout, [options.mask_dir, options.fgr_dir])
    batch_size = max(report.batch_sizes.values(), default=1)
    ahead = max(options.chunk_size // 2, batch_size)  # decoded ahead, and as many queued for writing
    matte = _Bgmv2Pass(model, options, backgrounds, device, dtype, report)
    run_matting("evc-bgmv2", layout, model, matte, device, dtype, options, report, batches, sizes, ahead=ahead,
                write_ahead=ahead, progress=progress)
    report.seconds = time.perf_counter() - start
    return report
