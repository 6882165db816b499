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
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn
from tqdm import tqdm

from ..batching import plan_camera_batches
from ..errors import EvcError
from ..graphs import GraphedForward, graph_backend
from ..layout import Camera, DatasetLayout
from ..models.rvm.checkpoints import VARIANTS, internal_scale
from .common import Item, clear_stale_outputs, plan_batches
from .matting import MattingOptions, matte_outputs, run_matting
from .report import MattingReport

__all__ = ["RvmOptions", "RvmReport", "plan_clips", "run_rvm"]


@dataclass(frozen=True)
class RvmOptions(MattingOptions):
    """What to write, how to batch, and the internal resolution."""

    mask_dir: str = "rvm"
    downsample_ratio: float | None = None  # None: auto (models.rvm.checkpoints.internal_scale)


RvmReport = MattingReport  # what an RVM run did


def plan_clips(camera: Camera, batch_size: int) -> list[list[Item]]:
    """A camera's frames in order, cut into clips of ``batch_size`` frames (the last may be shorter)."""
    return [[(camera, t) for t in range(t0, min(t0 + batch_size, len(camera)))]
            for t0 in range(0, len(camera), batch_size)]


class _RvmPass:
    """RVM as the matting loop runs it: each camera's recurrent state flows from one clip to the next.

    On CUDA the clips replay CUDA graphs (:mod:`easyvolcap.graphs`): a camera's first clip starts from zero
    states (what ``None`` stands for) once their shapes are known, so that it replays the same graph as the
    clips that follow."""

    def __init__(self, model: nn.Module, options: RvmOptions, sizes: dict[str, tuple[int, int]],
                 device: torch.device) -> None:
        self.model, self.options, self.sizes = model, options, sizes
        self.state: list[torch.Tensor | None] = [None] * 4
        self.pending = self.state
        self.zeros: dict[tuple, list[torch.Tensor]] = {}  # by (H, W, ratio): zero states, where graphs replay
        self.graphed = GraphedForward(self._clip, graph_backend(device, options.cuda_graphs), warm_args=1,
                                      warn=lambda message: tqdm.write(f"evc-rvm: warning: {message}", file=sys.stderr))

    def _clip(self, src: torch.Tensor, *state: torch.Tensor | None, ratio: float) -> list[torch.Tensor]:
        return self.model(src[None], *state, downsample_ratio=ratio)

    def forward(self, items: list[Item], src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        camera, t0 = items[0]
        ratio = internal_scale(self.sizes[camera.name], self.options.downsample_ratio)
        start = (*src.shape[-2:], ratio)
        state = self.zeros.get(start, [None] * 4) if t0 == 0 else self.state  # a camera starts afresh
        fgr, pha, *self.pending = self.graphed(src, *state, ratio=ratio)
        if self.graphed.backend is not None and start not in self.zeros:
            self.zeros[start] = [torch.zeros_like(r) for r in self.pending]
        return pha[0, :, 0], fgr[0] if self.options.fgr_dir else None

    def commit(self) -> None:
        self.state = self.pending  # only after the whole pass succeeded: an OOM retry starts from the same state


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

    Raises:
        EvcError: the model's variant is unknown (no declared pass cost), an image is unreadable.
    """
    start = time.perf_counter()
    variant = getattr(model, "variant", None)
    if variant not in VARIANTS:
        raise EvcError(f"RVM variant {variant!r}: unknown; one of {', '.join(VARIANTS)} was expected")
    report = RvmReport()
    outputs = partial(matte_outputs, layout, options)
    todo = [batch[0][0] for batch in plan_batches(layout, None, outputs, options.overwrite, report)]  # whole cameras
    clear_stale_outputs(layout, [options.mask_dir, options.fgr_dir])
    sizes = {camera.name: camera.size() for camera in todo}
    report.batch_mode = "auto" if options.batch_size is None else "set"
    report.batch_sizes = plan_camera_batches(
        "evc-rvm", options.batch_size, VARIANTS[variant].cost, sizes, device, dtype,
        lambda size: internal_scale(size, options.downsample_ratio),
        held_frames=lambda batch: 3 * batch + 2 * options.workers,
        hint="a smaller --downsample_ratio or --variant mobilenetv3", model=f"rvm {variant}")
    clips = [clip for camera in todo for clip in plan_clips(camera, report.batch_sizes[camera.name])]
    batch_size = max(report.batch_sizes.values(), default=1)
    matte = _RvmPass(model, options, sizes, device)
    run_matting("evc-rvm", layout, model, matte, device, dtype, options, report, clips, sizes,
                ahead=batch_size + 2 * options.workers, write_ahead=2 * batch_size, progress=progress)
    report.seconds = time.perf_counter() - start
    return report
