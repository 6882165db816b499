"""One matting loop for RVM and BGMv2: frames are read ahead, and each batch is staged, computed and emitted.

A model plugs in as a :class:`MattePass`: its ``forward`` turns a batch of one camera's frames (on the
device) into alphas and foregrounds, with whatever settings and state that pass needs as its own
arguments; ``commit`` keeps the pass's state once its results are computed and on their way to the host
(an out-of-memory retry of the same frames starts from the state before). The loop owns everything else,
in three steps per batch:

- **stage**: the loaded frames become the model's input on the device (:class:`FrameSource`);
- **compute**: the model's forward pass, under ``inference_mode``, and the 8-bit masks (and foregrounds);
- **emit**: they come down to the host and are queued for the writer threads.

Nothing in a batch's stage and compute waits for the device: on CUDA the results come down into pinned memory
without blocking (:class:`Download`), and batch ``k`` is emitted only once batch ``k + 1`` has been queued, so
the GPU always has the next pass to run while the host waits for the previous one. On the CPU the same steps
run one after the other. A batch that runs out of memory is retried in halves (:func:`run_with_backoff`).
"""

from __future__ import annotations

import sys
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..image_io import is_written, write_image
from ..inference import BatchLimit, alpha_to_uint8, empty_masks, inference_session, run_with_backoff, split_list
from ..layout import Camera, DatasetLayout
from ..parallel import BackgroundWriter, prefetch_map
from ..progress import progress_bar
from .common import Item
from .frame_source import FrameSource
from .report import MattingReport

__all__ = ["MattePass", "MattingOptions", "emit_mattes", "matte_outputs", "run_matting", "write_images"]


@dataclass(frozen=True)
class MattingOptions:
    """What every matting tool writes and how it batches and reads."""

    mask_dir: str = "rvm"
    mask_ext: str = ".jpg"
    fgr_dir: str | None = None
    batch_size: int | None = None  # images per forward pass; None: auto (easyvolcap.batching)
    quality: int = 85
    overwrite: bool = False
    workers: int = 4  # decode / encode threads
    decode: str = "auto"  # auto, host, or device: JPEG frames decoded on the model's device (see frame_source)
    cuda_graphs: bool = True  # on CUDA, passes replay CUDA graphs (easyvolcap.graphs); no effect elsewhere


class MattePass(Protocol):
    """A matting model as the loop runs it."""

    def forward(self, items: list[Item], src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(pha, fgr)`` of one camera's frames ``items`` from ``src`` ``(N, 3, H, W)`` in [0, 1]: alphas
        ``(N, H, W)`` in [0, 1] and foregrounds ``(N, 3, H, W)`` in [0, 1] (or ``None`` when not needed)."""
        ...

    def commit(self) -> None:
        """The last ``forward`` and its 8-bit results succeeded: keep what it carries to the next pass."""
        ...


def matte_outputs(layout: DatasetLayout, options: MattingOptions, camera: Camera, t: int) -> list[Path]:
    """The files a matting run writes for frame ``t`` of ``camera``: the mask, and the foreground when
    ``options.fgr_dir`` is set."""
    frame = camera.frames[t]
    paths = [layout.output_path(options.mask_dir, camera.name, frame, options.mask_ext)]
    if options.fgr_dir:
        paths.append(layout.output_path(options.fgr_dir, camera.name, frame, ".jpg"))
    return paths


def emit_mattes(layout: DatasetLayout, options: MattingOptions, writer: BackgroundWriter, report: MattingReport,
                items: list[Item], alpha: np.ndarray, empty: np.ndarray, fgr: np.ndarray | None) -> None:
    """Queue the masks (and foregrounds) of matted frames for writing and count them in ``report``.

    One writer job per frame, also for a frame with nothing left to write (its files exist), so the
    writer's progress counts frames as they are written, in order. A file that exists is kept unless
    ``options.overwrite``; frames without a pixel above 0.5 are listed in ``report.empty_frames``.
    """
    for i, (camera, t) in enumerate(items):
        if empty[i]:
            report.empty_frames.append((camera.name, camera.frames[t].stem))
        paths = matte_outputs(layout, options, camera, t)
        writes = []
        for path, image, counter in zip(paths, (alpha[i], None if fgr is None else fgr[i]),
                                        ("masks_written", "fgr_written"), strict=False):
            if options.overwrite or not is_written(path):
                writes.append((path, image))
                setattr(report, counter, getattr(report, counter) + 1)
        writer.submit(write_images, writes, options.quality)
    report.frames_processed += len(items)


def write_images(writes: list[tuple[Path, np.ndarray]], quality: int) -> None:
    """Write each ``(path, image)`` atomically (a writer job: the files of one frame)."""
    for path, image in writes:
        write_image(path, image, quality)


class Download:
    """Results on their way to the host: on CUDA copied into pinned memory without blocking, ready once the
    copy's event has passed; on the CPU ready at once."""

    def __init__(self, tensors: list[torch.Tensor | None]) -> None:
        self.event = None
        if any(t is not None and t.device.type == "cuda" for t in tensors):
            tensors = [None if t is None else torch.empty(t.shape, dtype=t.dtype, pin_memory=True).copy_(
                t, non_blocking=True) for t in tensors]
            self.event = torch.cuda.Event()
            self.event.record()
        self.tensors = tensors

    def arrays(self) -> list[np.ndarray | None]:
        """The results as arrays, waiting for the copies where they are still running."""
        if self.event is not None:
            self.event.synchronize()
        return [None if t is None else t.numpy() for t in self.tensors]


class _Loop:
    """The stages of one run's batches."""

    def __init__(self, tool: str, layout: DatasetLayout, options: MattingOptions, source: FrameSource,
                 dtype: torch.dtype, memory_format: torch.memory_format, writer: BackgroundWriter,
                 report: MattingReport, batch_size: int) -> None:
        self.tool, self.layout, self.options, self.source = tool, layout, options, source
        self.dtype, self.memory_format = dtype, memory_format
        self.writer, self.report = writer, report
        self.limit = BatchLimit(batch_size)
        self.pending: tuple[list[Item], Download] | None = None  # computed, not yet emitted

    def run(self, items: list[Item], loaded: list, model: MattePass) -> None:
        """Matte one batch, in smaller pieces (in order) if memory runs out."""
        run_with_backoff(list(zip(items, loaded, strict=True)), size=len, split=split_list,
                         forward=lambda work: self._pass(work, model), limit=self.limit,
                         warn=lambda message: tqdm.write(f"{self.tool}: warning: {message}", file=sys.stderr))

    def _pass(self, work: list[tuple[Item, object]], model: MattePass) -> None:
        items = [item for item, _ in work]
        src = self.source.batch(items, [loaded for _, loaded in work], self.dtype, self.memory_format)  # stage
        with torch.inference_mode():
            pha, fgr = model.forward(items, src)  # compute
            alpha = alpha_to_uint8(pha)
            empty = empty_masks(alpha, pha)
            fgr_u8 = None if fgr is None else fgr.float().mul(255).round_().to(torch.uint8).permute(0, 2, 3, 1)
            download = Download([alpha, empty, fgr_u8])
        model.commit()  # the next pass may start from this one's state
        self.flush()
        self.pending = items, download

    def flush(self) -> None:
        """Emit the computed batch not yet emitted, if any."""
        if self.pending is None:
            return
        items, download = self.pending
        self.pending = None
        alpha, empty, fgr = download.arrays()
        emit_mattes(self.layout, self.options, self.writer, self.report, items, alpha, empty, fgr)  # emit
        # progress: the writer counts each frame as its files are written


def run_matting(tool: str, layout: DatasetLayout, net: nn.Module, model: MattePass, device: torch.device,
                dtype: torch.dtype, options: MattingOptions, report: MattingReport, batches: list[list[Item]],
                sizes: dict[str, tuple[int, int]], ahead: int, write_ahead: int, progress: bool | None) -> None:
    """Matte ``batches`` (each of one camera, in order) with ``model`` (whose network ``net`` runs on ``device``
    in ``dtype``), reading ``ahead`` frames ahead and queuing up to ``write_ahead`` results for writing.

    Sets ``report.batch_lowered`` when the out-of-memory back-off struck.
    """
    source = FrameSource(device, sizes, options.decode,
                         warn=lambda message: tqdm.write(f"{tool}: warning: {message}", file=sys.stderr))
    frames = [item for batch in batches for item in batch]
    batch_size = max(report.batch_sizes.values(), default=1)
    with progress_bar(len(frames), tool, progress) as bar, \
            closing(prefetch_map(source.load, frames, options.workers, ahead)) as reader, \
            BackgroundWriter(options.workers, capacity=write_ahead, progress=bar) as writer, \
            inference_session(net, device) as memory_format:
        loop = _Loop(tool, layout, options, source, dtype, memory_format, writer, report, batch_size)
        try:
            for batch in batches:
                loop.run(batch, [next(reader) for _ in batch], model)
        finally:
            loop.flush()  # what was computed is written, whatever stopped the run
        if loop.limit.announced:
            report.batch_lowered = {str(device): loop.limit.value}
