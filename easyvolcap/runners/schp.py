"""Human parsing with SCHP: detect people, crop, parse each crop, restore it into the frame.

Everything happens in one process and in memory. Each person's box is grown by 10% per side,
letterboxed to the network input by SCHP's affine transform, parsed in batches, and brought back by
the inverse transform: bilinear on the logits then argmax (``restore="logits"``, as SCHP's
``simple_extractor``), or argmax then nearest on the labels (``restore="labels"``, as the multi-person
pipeline). Pasting never lets a crop's background overwrite another person's labels: a person label
beats background, and between two candidates of the same kind the more confident one wins.
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..batching import plan_camera_batches
from ..detectors import Detector, Person, expand_box, suppress_covered
from ..image_io import atomic_write, encode_image, encode_label_png, encode_npy
from ..inference import BatchLimit, inference_session, run_with_backoff
from ..layout import Camera, DatasetLayout
from ..models.schp import (
    MEAN_BGR,
    STD_BGR,
    LabelSet,
    affine_transform,
    box_to_center_scale,
    get_palette,
    upsample_logits,
    warp_logit_channels,
    warp_to_input,
)
from ..parallel import BackgroundWriter, prefetch_map
from ..progress import progress_bar
from .common import clear_stale_outputs
from .report import RunReport

__all__ = ["RESTORE_MODES", "Crop", "FrameCanvas", "SchpOptions", "SchpReport", "candidate_classes", "crop_overlaps",
           "restore_crop", "run_schp"]

RESTORE_MODES = ("logits", "labels")
Item = tuple[Camera, int]


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


@dataclass
class SchpReport(RunReport):
    """What a run did."""

    frames_written: int = 0
    people: int = 0
    frames_without_person: list[tuple[str, str]] = field(default_factory=list)

    def merge(self, other: SchpReport) -> SchpReport:
        super().merge(other)
        self.frames_written += other.frames_written
        self.people += other.people
        self.frames_without_person += other.frames_without_person
        return self


@dataclass(frozen=True)
class Crop:
    """One person's crop: its inclusive box in the frame and the maps to and from the network input."""

    box: tuple[int, int, int, int]  # x0, y0, x1, y1, inclusive
    trans: np.ndarray  # crop -> network input, [2, 3]
    inv_trans: np.ndarray  # network input -> crop, [2, 3]

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the crop."""
        return self.box[2] - self.box[0] + 1, self.box[3] - self.box[1] + 1


def make_crop(person: Person, width: int, height: int, input_size: tuple[int, int]) -> Crop:
    """The expanded, clamped box of ``person`` and SCHP's letterbox transform for it."""
    box = expand_box(person.box, width, height)
    crop_w, crop_h = box[2] - box[0] + 1, box[3] - box[1] + 1
    center, scale = box_to_center_scale((0, 0, crop_w - 1, crop_h - 1), input_size)
    return Crop(box, affine_transform(center, scale, input_size), affine_transform(center, scale, input_size, True))


def restore_crop(logits: np.ndarray, crop: Crop, mode: str, keep_logits: bool, confidence_at: np.ndarray | None = None,
                 classes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Bring a crop's ``[C, H, W]`` input-size logits back to the crop.

    Returns ``(labels uint8 [h, w], confidence float32 [h, w], logits float32 [h, w, C] or None)``;
    the confidence is the softmax probability of the chosen label, computed where ``confidence_at``
    (bool ``[h, w]``) is true and 0 elsewhere (``None``: everywhere). ``classes`` (from
    :func:`candidate_classes`) lets the logits mode warp only those classes when neither the
    confidence nor the logits are wanted; the labels are the same.
    """
    if mode == "labels":  # upstream multi-person: argmax at the input size, nearest warp of the labels
        labels_in = logits.argmax(axis=0).astype(np.uint8)
        top = np.take_along_axis(logits, labels_in[None].astype(np.intp), axis=0)[0]
        confidence_in = (1.0 / np.exp(logits - top[None]).sum(axis=0)).astype(np.float32)
        warp = {"dsize": crop.size, "flags": cv2.INTER_NEAREST, "borderMode": cv2.BORDER_CONSTANT, "borderValue": 0}
        labels = cv2.warpAffine(labels_in, crop.inv_trans, **warp)
        confidence = cv2.warpAffine(confidence_in, crop.inv_trans, **warp)
        if confidence_at is not None:
            confidence[~confidence_at] = 0
        channels = list(warp_logit_channels(logits, crop.inv_trans, crop.size)) if keep_logits else None
    else:  # simple_extractor: bilinear warp of every class's logits, argmax at full resolution
        labels, confidence, channels = _reduce_warped(logits, crop, keep_logits, confidence_at, classes)
    return labels, confidence, np.stack(channels, axis=-1) if keep_logits else None


def _reduce_warped(logits: np.ndarray, crop: Crop, keep_logits: bool, confidence_at: np.ndarray | None,
                   candidates: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, list[np.ndarray] | None]:
    """Labels and confidence of the warped logits, one class at a time: only one full-size class map
    is held (unless ``keep_logits``), and of the others only their values where the confidence is
    wanted. Labels are numpy's ``argmax`` over classes (the first largest).

    When neither the confidence nor the logits are wanted, only the ``candidates`` are warped.
    """
    height, width = crop.size[1], crop.size[0]
    where = np.ones((height, width), bool) if confidence_at is None else confidence_at
    wanted = bool(where.any())
    classes = np.arange(logits.shape[0])
    if not wanted and not keep_logits and candidates is not None and len(candidates) < len(classes):
        classes = candidates
        logits = logits[classes]
    labels, top = np.zeros((height, width), np.uint8), None
    kept: list[np.ndarray] | None = [] if keep_logits else None
    shared: list[np.ndarray] = []  # each class's logits where the confidence is wanted
    for label, channel in zip(classes.tolist(), warp_logit_channels(logits, crop.inv_trans, crop.size), strict=True):
        if top is None:
            top = channel.copy() if keep_logits else channel
            labels[:] = label
        else:  # classes come in increasing order: where this one is larger, max(labels, label) is label
            wins = cv2.compare(channel, top, cv2.CMP_GT)  # 255 where larger, 0 elsewhere (and for NaN)
            cv2.max(labels, cv2.min(wins, label), dst=labels)
            cv2.max(top, channel, dst=top)
        if wanted:
            shared.append(channel[where])
        if kept is not None:
            kept.append(channel)
    confidence = np.zeros((height, width), np.float32)
    if wanted:
        peak = top[where]
        total = np.zeros_like(peak)
        for values in shared:
            total += np.exp(values - peak)
        confidence[where] = 1.0 / total
    return labels, confidence, kept


def candidate_classes(fusion: np.ndarray) -> np.ndarray:
    """The classes that can be the argmax somewhere in a crop restored from ``[h, w, C]`` fusion logits
    (the network's output, before the upsampling to the input size), in order; always class 0 (it wins
    where the warp gives every class the border's 0).

    Both steps back to the crop are bilinear: each value is a weighted sum, with weights >= 0, of
    values around it, and (corners outside the input adding 0 to every class alike) classes rank
    as the normalised sum, which lies between the extremes of what it sums. A crop pixel draws on
    two neighbouring pixels of the input-size logits per axis, and those (the upsampling being about
    4x) on at most three neighbouring fusion pixels: so within every 3x3 window of fusion pixels, a
    class whose maximum is below the largest minimum of any class can never be the largest there.
    A small margin covers float rounding. Person crops are mostly a handful of classes.
    """
    padded = np.pad(np.asarray(fusion, np.float32), ((1, 1), (1, 1), (0, 0)), mode="edge")
    rows_low = np.minimum(np.minimum(padded[:-2], padded[1:-1]), padded[2:])
    rows_high = np.maximum(np.maximum(padded[:-2], padded[1:-1]), padded[2:])
    low = np.minimum(np.minimum(rows_low[:, :-2], rows_low[:, 1:-1]), rows_low[:, 2:])
    high = np.maximum(np.maximum(rows_high[:, :-2], rows_high[:, 1:-1]), rows_high[:, 2:])
    margin = 1e-4 * (1.0 + float(np.abs(padded).max()))
    can_win = (high >= low.max(axis=-1, keepdims=True) - margin).any(axis=(0, 1))
    can_win[0] = True
    return np.flatnonzero(can_win)


class FrameCanvas:
    """A frame's labels, assembled from its people's crops."""

    def __init__(self, height: int, width: int, num_classes: int, keep_logits: bool) -> None:
        self.labels = np.zeros((height, width), np.uint8)
        self.priority = np.full((height, width), -1.0, np.float32)  # person: 1 + confidence; background: confidence
        self.logits = np.zeros((height, width, num_classes), np.float32) if keep_logits else None

    def paste(self, crop: Crop, labels: np.ndarray, confidence: np.ndarray, logits: np.ndarray | None) -> None:
        """Write the crop where it beats what is there: people over background, then confidence."""
        x0, y0, x1, y1 = crop.box
        region = (slice(y0, y1 + 1), slice(x0, x1 + 1))
        priority = confidence + (labels > 0)
        wins = priority > self.priority[region]
        if wins.all():  # nothing there yet (a frame's only person): plain copies
            self.labels[region], self.priority[region] = labels, priority
            if self.logits is not None and logits is not None:
                self.logits[region] = logits
            return
        self.labels[region][wins] = labels[wins]
        self.priority[region][wins] = priority[wins]
        if self.logits is not None and logits is not None:
            self.logits[region][wins] = logits[wins]


def crop_overlaps(crops: list[Crop], height: int, width: int) -> list[np.ndarray]:
    """For each crop, where (bool ``[h, w]``) another crop of the frame covers it too: only there does a
    pixel's confidence decide which crop's label the frame keeps."""
    coverage = np.zeros((height, width), np.uint16)
    for crop in crops:
        x0, y0, x1, y1 = crop.box
        coverage[y0:y1 + 1, x0:x1 + 1] += 1
    return [coverage[c.box[1]:c.box[3] + 1, c.box[0]:c.box[2] + 1] > 1 for c in crops]


class _Parsing:
    """The state of one run: detector, parser, writer and report."""

    def __init__(self, layout: DatasetLayout, detector: Detector, parser: nn.Module, labels: LabelSet,
                 device: torch.device, dtype: torch.dtype, options: SchpOptions, writer: BackgroundWriter,
                 report: SchpReport, memory_format: torch.memory_format = torch.contiguous_format) -> None:
        self.layout, self.detector, self.parser, self.label_set = layout, detector, parser, labels
        self.device, self.dtype, self.options, self.writer, self.report = device, dtype, options, writer, report
        self.memory_format = memory_format  # of parser input batches
        self.limits: dict[int, BatchLimit] = {}  # by planned batch: a camera's crops split the same way in every run
        self.palette = get_palette(labels.num_classes)
        self.mean = torch.tensor(MEAN_BGR, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(STD_BGR, device=device).view(1, 3, 1, 1)
        self.lock = threading.Lock()

    def run_batch(self, items: list[Item], images: list[np.ndarray], batch_size: int) -> None:
        """Detect, crop and parse the people of a batch of frames (``batch_size`` crops per parser pass);
        restoring and writing go to the writer."""
        crops: list[list[Crop]] = []
        inputs: list[np.ndarray] = []
        for image, people in zip(images, self.detector.detect(images), strict=True):
            frame_crops = [make_crop(p, image.shape[1], image.shape[0], self.label_set.input_size)
                           for p in suppress_covered(people)]
            crops.append(frame_crops)
            for crop in frame_crops:
                x0, y0, x1, y1 = crop.box  # warped as RGB, then BGR (OpenCV warps channels alike)
                rgb = image[y0:y1 + 1, x0:x1 + 1]
                inputs.append(warp_to_input(rgb, crop.trans, self.label_set.input_size)[..., ::-1])
        logits: list[np.ndarray] = []
        run_with_backoff(inputs, size=len, split=lambda work, n: (work[i:i + n] for i in range(0, len(work), n)),
                         forward=lambda work: logits.extend(self._parse(work)),
                         limit=self.limits.setdefault(batch_size, BatchLimit(batch_size)),
                         warn=lambda message: tqdm.write(f"schp: warning: {message}", file=sys.stderr))
        start = 0
        for (camera, t), image, frame_crops in zip(items, images, crops, strict=True):
            frame_logits = logits[start:start + len(frame_crops)]
            start += len(frame_crops)
            self.report.people += len(frame_crops)
            if not frame_crops:
                self.report.frames_without_person.append((camera.name, camera.frames[t].stem))
            self.writer.submit(self._finish, camera, t, image.shape[:2], frame_crops, frame_logits)
        self.report.frames_processed += len(items)

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
            fusion = self.parser(x)[0][-1]
            logits = upsample_logits(fusion.float(), self.label_set.input_size)
        if self.options.restore != "logits" or self.options.logits_dir is not None:  # every class is warped
            return [(crop_logits, None) for crop_logits in logits.cpu().numpy()]
        fusion = fusion.float().permute(0, 2, 3, 1).cpu().numpy()
        return list(zip(logits.cpu().numpy(), fusion, strict=True))

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
            if options.overwrite or not path.exists():
                atomic_write(path, encode())
                written = True
        if written:
            with self.lock:
                self.report.frames_written += 1


def _outputs(layout: DatasetLayout, options: SchpOptions, item: Item) -> list[Path]:
    camera, t = item
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
        progress: show a tqdm bar (``None``: only when stderr is a terminal).

    Frames go through the detector in fixed batches of ``options.frames_per_batch`` frames of one
    camera; a batch whose outputs all exist is skipped, any other is computed whole. A camera's files
    therefore never depend on which other cameras, or which finished files, a run has: a resumed or
    sharded run writes the same bytes as one uninterrupted run.
    """
    start = time.perf_counter()
    report = SchpReport()
    sizes = {camera.name: camera.size() for camera in layout.cameras}
    report.batch_mode = "auto" if options.batch_size is None else "set"
    report.batch_sizes = plan_camera_batches(
        "schp", options.batch_size, "schp", sizes, device, dtype, lambda size: labels.input_size[0] / max(size),
        held_frames=lambda batch: 6 * options.frames_per_batch, hint="--device cuda")
    batches: list[list[Item]] = []
    for camera in layout.cameras:  # batches never mix cameras: a camera's files do not depend on the others
        for t0 in range(0, len(camera), options.frames_per_batch):
            batch = [(camera, t) for t in range(t0, min(t0 + options.frames_per_batch, len(camera)))]
            if options.overwrite or not all(p.exists() for item in batch for p in _outputs(layout, options, item)):
                batches.append(batch)
    busy = {camera.name for batch in batches for camera, _ in batch}
    for camera in layout.cameras:
        done = camera.name not in busy or all(p.exists() for t in range(len(camera))
                                              for p in _outputs(layout, options, (camera, t)))
        (report.cameras_complete if done and not options.overwrite else report.cameras_processed).append(camera.name)
    clear_stale_outputs(layout, [options.mask_dir, options.schp_dir, options.logits_dir])

    def read(item: Item) -> np.ndarray:
        return item[0].read_frame(item[1], sizes[item[0].name])

    frames = [item for batch in batches for item in batch]
    ahead = 2 * options.frames_per_batch
    with closing(prefetch_map(read, frames, options.workers, ahead)) as reader, \
            BackgroundWriter(options.workers, capacity=ahead) as writer, \
            progress_bar(len(frames), "schp", progress) as bar, \
            inference_session(parser, device) as memory_format:
        parsing = _Parsing(layout, detector, parser, labels, device, dtype, options, writer, report, memory_format)
        for batch in batches:
            parsing.run_batch(batch, [next(reader) for _ in batch], report.batch_sizes[batch[0][0].name])
            bar.update(len(batch))
        lowered = [limit.value for limit in parsing.limits.values() if limit.announced]
        if lowered:
            report.batch_lowered = {str(device): min(lowered)}
    report.seconds = time.perf_counter() - start
    return report
