"""Human parsing with SCHP, the run loop: detect people, crop, parse the crops in batches, restore and write.

Frames are read ahead by threads, people detected in fixed batches of frames of one camera, crops parsed
in batches (both batch sizes back off on out-of-memory), and each frame's crops restored and pasted in
the writer threads; the crop and restore geometry is :mod:`easyvolcap.models.schp.restore`. On CUDA the
parser's passes replay CUDA graphs (:mod:`easyvolcap.graphs`), one per crop count.
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import closing
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..batching import plan_camera_batches
from ..detectors import Detector, Person, suppress_covered
from ..graphs import GraphedForward, graph_backend
from ..image_io import atomic_write, encode_image, encode_label_png, encode_npy, is_written
from ..inference import BatchLimit, inference_session, run_with_backoff, split_list
from ..layout import Camera, DatasetLayout
from ..models.schp import MEAN_BGR, STD_BGR, LabelSet, get_palette, upsample_logits, warp_to_input
from ..models.schp.checkpoints import crop_pass_cost
from ..models.schp.restore import (
    Crop,
    FrameCanvas,
    candidate_classes,
    check_fusion_size,
    crop_overlaps,
    make_crop,
    restore_crop,
)
from ..parallel import BackgroundWriter, prefetch_map
from ..progress import progress_bar
from .common import Item, clear_stale_outputs, plan_batches
from .report import RunReport

__all__ = ["SchpOptions", "SchpReport", "run_schp"]



@dataclass(frozen=True)
class SchpOptions:
    """Outputs, batching and the restore mode."""

    mask_dir: str = "mask"
    schp_dir: str = "schp"
    logits_dir: str | None = None
    batch_size: int | None = None  # person crops per parser pass; None: auto (easyvolcap.batching)
    frames_per_batch: int = 4  # frames per detector pass
    restore: str = "logits"
    overwrite: bool = False
    workers: int = 4
    cuda_graphs: bool = True  # on CUDA, passes replay CUDA graphs (easyvolcap.graphs); no effect elsewhere


@dataclass
class SchpReport(RunReport):
    """What a run did."""

    frames_written: int = 0
    people: int = 0
    frames_without_person: list[tuple[str, str]] = field(default_factory=list)
    label_names: tuple[str, ...] = ()  # the parser's classes, by label index
    palette: np.ndarray | None = None  # (classes, 3) RGB colours of the label maps written

    def merge(self, other: SchpReport) -> SchpReport:
        super().merge(other)
        self.label_names = self.label_names or other.label_names
        self.palette = self.palette if self.palette is not None else other.palette
        self.frames_written += other.frames_written
        self.people += other.people
        self.frames_without_person += other.frames_without_person
        return self


class _Parsing:
    """The state of one run: detector, parser, writer and report.

    The parser's pass (a normalised crop batch in, fusion logits and their upsampling out) goes through a
    :class:`~easyvolcap.graphs.GraphedForward`: on CUDA it replays one graph per crop count (the exact count,
    no padding: a padded batch would round differently from the CPU's and compute crops for nothing)."""

    def __init__(self, layout: DatasetLayout, detector: Detector, parser: nn.Module, labels: LabelSet,
                 device: torch.device, dtype: torch.dtype, options: SchpOptions, writer: BackgroundWriter,
                 report: SchpReport, memory_format: torch.memory_format = torch.contiguous_format) -> None:
        self.layout, self.detector, self.parser, self.label_set = layout, detector, parser, labels
        self.device, self.dtype, self.options, self.writer, self.report = device, dtype, options, writer, report
        self.memory_format = memory_format  # of parser input batches
        self.limits: dict[int, BatchLimit] = {}  # by planned batch: a camera's crops split the same way in every run
        self.detector_limit = BatchLimit(options.frames_per_batch, "frames per detector pass", "--frames_per_batch")
        self.palette = get_palette(labels.num_classes)
        self.mean = torch.tensor(MEAN_BGR, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(STD_BGR, device=device).view(1, 3, 1, 1)
        self.lock = threading.Lock()
        self.graphed = GraphedForward(self._forward, graph_backend(device, options.cuda_graphs), max_graphs=4,
                                      warn=self._warn)

    def run_batch(self, items: list[Item], images: list[np.ndarray], batch_size: int) -> None:
        """Detect, crop and parse the people of a batch of frames (``batch_size`` crops per parser pass);
        restoring and writing go to the writer."""
        crops: list[list[Crop]] = []
        inputs: list[np.ndarray] = []
        detected: list[list[Person]] = []
        run_with_backoff(images, size=len, split=split_list, limit=self.detector_limit, warn=self._warn,
                         forward=lambda work: detected.extend(self.detector.detect(work)))
        for image, people in zip(images, detected, strict=True):
            frame_crops = [make_crop(p.box, image.shape[1], image.shape[0], self.label_set.input_size)
                           for p in suppress_covered(people)]
            crops.append(frame_crops)
            for crop in frame_crops:
                x0, y0, x1, y1 = crop.box  # warped as RGB, then BGR (OpenCV warps channels alike)
                rgb = image[y0:y1 + 1, x0:x1 + 1]
                inputs.append(warp_to_input(rgb, crop.trans, self.label_set.input_size)[..., ::-1])
        logits: list[np.ndarray] = []
        limit = self.limits.setdefault(batch_size, BatchLimit(batch_size, "crops per parser pass"))
        run_with_backoff(inputs, size=len, split=split_list, forward=lambda work: logits.extend(self._parse(work)),
                         limit=limit, warn=self._warn)
        start = 0
        for (camera, t), image, frame_crops in zip(items, images, crops, strict=True):
            frame_logits = logits[start:start + len(frame_crops)]
            start += len(frame_crops)
            self.report.people += len(frame_crops)
            if not frame_crops:
                self.report.frames_without_person.append((camera.name, camera.frames[t].stem))
            self.writer.submit(self._finish, camera, t, image.shape[:2], frame_crops, frame_logits)
        self.report.frames_processed += len(items)

    @staticmethod
    def _warn(message: str) -> None:
        tqdm.write(f"evc-schp: warning: {message}", file=sys.stderr)

    def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The fixed-shape pass that graphs replay: ``[fusion, logits]`` of a normalised batch ``x``, the fusion
        logits (``[B, C, h, w]`` float32) and their upsampling to the input size (``[B, C, H, W]``). Nothing in
        it waits for the device or depends on the values it computes (a CUDA graph could not hold it)."""
        fusion = self.parser(x)[0][-1].float()
        return [fusion, upsample_logits(fusion, self.label_set.input_size)]

    def _host(self, t: torch.Tensor) -> np.ndarray:
        """``t`` on the host in memory of its own where it may be a graph's static buffer, which the next
        replay overwrites (``.cpu()`` of a tensor already there is the tensor itself)."""
        return t.to("cpu", copy=self.graphed.backend is not None).numpy()

    def _parse(self, inputs: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """Per letterboxed BGR crop: its fusion logits upsampled to the input size (``[C, H, W]`` float32)
        and the fusion logits themselves (``[h, w, C]``, from which the writer finds the classes that can
        win: :func:`candidate_classes`; ``None`` where the restore warps every class anyway:
        ``--restore labels`` or kept logits)."""
        if not inputs:
            return []
        batch = torch.from_numpy(np.stack(inputs)).to(self.device).permute(0, 3, 1, 2)
        x = batch.float().div(255).sub(self.mean).div(self.std).to(self.dtype, memory_format=self.memory_format)
        with torch.inference_mode():
            fusion, logits = self.graphed(x)
        check_fusion_size(tuple(fusion.shape[-2:]), tuple(x.shape[-2:]))
        if self.options.restore != "logits" or self.options.logits_dir is not None:  # every class is warped
            return [(crop_logits, None) for crop_logits in self._host(logits)]
        return list(zip(self._host(logits), self._host(fusion.permute(0, 2, 3, 1)), strict=True))

    def _finish(self, camera: Camera, t: int, size: tuple[int, int], crops: list[Crop],
                logits: list[tuple[np.ndarray, np.ndarray | None]]) -> None:
        """Restore and paste the crops of one frame, then write its outputs (in a writer thread)."""
        options, layout, frame = self.options, self.layout, camera.frames[t]
        keep_logits = options.logits_dir is not None
        canvas = FrameCanvas(*size, self.label_set.num_classes, keep_logits)
        for crop, (crop_logits, fusion), shared in zip(crops, logits, crop_overlaps(crops, *size), strict=True):
            classes = candidate_classes(fusion) if fusion is not None and not shared.any() else None
            canvas.paste(crop, *restore_crop(crop_logits, crop, options.restore, keep_logits, shared, classes))
        mask = cv2.compare(canvas.labels, 0, cv2.CMP_GT)  # 255 where a person is, 0 elsewhere
        outputs = [(options.mask_dir, ".png", lambda: encode_image(mask, ".png")),
                   (options.schp_dir, ".png", lambda: encode_label_png(canvas.labels, self.palette))]
        if keep_logits:
            outputs.append((options.logits_dir, ".npy", lambda: encode_npy(canvas.logits.astype(np.float16))))
        written = False
        for out_dir, ext, encode in outputs:
            path = layout.output_path(out_dir, camera.name, frame, ext)
            if options.overwrite or not is_written(path):
                atomic_write(path, encode())
                written = True
        if written:
            with self.lock:
                self.report.frames_written += 1


def _outputs(layout: DatasetLayout, options: SchpOptions, camera: Camera, t: int) -> list[Path]:
    dirs = [(options.mask_dir, ".png"), (options.schp_dir, ".png")]
    if options.logits_dir:
        dirs.append((options.logits_dir, ".npy"))
    return [layout.output_path(out_dir, camera.name, camera.frames[t], ext) for out_dir, ext in dirs]


def run_schp(layout: DatasetLayout, detector: Detector, parser: nn.Module, labels: LabelSet,
             device: torch.device, dtype: torch.dtype, options: SchpOptions,
             progress: bool | None = None) -> SchpReport:
    """Write a human mask and a label map (and optionally logits) for every frame.

    Args:
        layout: the dataset's cameras and frames.
        detector: finds people (see :mod:`easyvolcap.detectors`).
        parser: an SCHP network in eval mode on ``device`` in ``dtype`` (or anything returning
            ``[[parsing, fusion], [edge]]`` for a ``[B, 3, H, W]`` normalised BGR batch).
        labels: the label set of the parser's checkpoint (input size, classes).
        device: where the parser runs.
        dtype: ``float32``, or ``float16`` on CUDA.
        options: folders, batching, restore mode, resume behaviour.
        progress: ``None``: a bar when stderr is a terminal, else a line every few seconds; ``False``: none.

    Frames go through the detector in fixed batches of ``options.frames_per_batch`` frames of one
    camera; a batch whose outputs all exist is skipped, any other is computed whole. A camera's files
    therefore never depend on which other cameras, or which finished files, a run has: a resumed or
    sharded run writes the same bytes as one uninterrupted run.
    """
    start = time.perf_counter()
    report = SchpReport(label_names=labels.labels, palette=get_palette(labels.num_classes))
    sizes = {camera.name: camera.size() for camera in layout.cameras}
    report.batch_mode = "auto" if options.batch_size is None else "set"
    report.batch_sizes = plan_camera_batches(
        "evc-schp", options.batch_size, crop_pass_cost(labels.input_size), sizes, device, dtype, lambda size: 1.0,
        held_frames=lambda batch: 6 * options.frames_per_batch, hint="--device cuda", model="the SCHP parser")
    outputs = partial(_outputs, layout, options)
    batches = plan_batches(layout, options.frames_per_batch, outputs, options.overwrite, report)
    clear_stale_outputs(layout, [options.mask_dir, options.schp_dir, options.logits_dir])

    def read(item: Item) -> np.ndarray:
        return item[0].read_frame(item[1], sizes[item[0].name])

    frames = [item for batch in batches for item in batch]
    ahead = 2 * options.frames_per_batch
    with progress_bar(len(frames), "evc-schp", progress) as bar, \
            closing(prefetch_map(read, frames, options.workers, ahead)) as reader, \
            BackgroundWriter(options.workers, capacity=ahead, progress=bar) as writer, \
            inference_session(parser, device) as memory_format:
        parsing = _Parsing(layout, detector, parser, labels, device, dtype, options, writer, report, memory_format)
        for batch in batches:
            parsing.run_batch(batch, [next(reader) for _ in batch], report.batch_sizes[batch[0][0].name])
        lowered = [limit.value for limit in parsing.limits.values() if limit.announced]
        if lowered:
            report.batch_lowered = {str(device): min(lowered)}
    report.seconds = time.perf_counter() - start
    return report
