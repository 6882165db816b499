"""A static background per camera from its frames and foreground masks.

A pixel of a frame counts as background where the dilated foreground mask is clear. ``mean`` is
EasyVolcap's weighted average, accumulated in place frame by frame; ``median`` is the exact
per-pixel median over the frames where the pixel is background, computed on horizontal bands so
that it stays within a memory budget.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ..errors import EvcError
from ..image_io import MASK_EXTENSIONS, is_written, read_gray, write_image
from ..layout import MASK_TYPES, Camera, DatasetLayout, mask_files
from ..masks import THRESHOLD, binarize, grow, level
from ..parallel import prefetch_map
from ..progress import progress_bar
from .common import clear_stale_temp_files

__all__ = ["METHODS", "BackgroundOptions", "BackgroundReport", "find_masks", "masked_median", "median_rows",
           "read_background_mask", "rounded_mean", "run_backgrounds"]

METHODS = ("mean", "median")
# The median's memory, per pixel (measured with tracemalloc, with a margin; see tests/test_backgrounds.py):
_MEDIAN_SAMPLE_BYTES = 20  # a frame's pixel in a band: RGB, background flag and its negation, RGB sort keys (twice)
_MEDIAN_BAND_BYTES = 256  # a band's pixel: count, sort indices, the float64 median and its rounding
_MEDIAN_FRAME_BYTES = 12  # a frame in flight (decoded or decoding, 3 per reader): RGB, mask and their temporaries
_MEDIAN_RESULT_BYTES = 7  # the camera's pixel, held through all bands: the uint8 RGB median and a uint32 count
_MEDIAN_OUTPUT_BYTES = 24  # the camera's pixel while writing: median, count, holes, RGBA and its PNG encoding
_DEFLATE_BYTES = 384 << 10  # the PNG encoder's zlib window and hash tables, whatever the image size
_MEDIAN_SLOW_PASSES = 8  # more passes over the frames than this: the run is said to be slow before it starts
# Below this many frames float32 sums of 8-bit values are exact (< 2**24) and their quotients round
# to the same integers as float64's (a quotient off k + 1/2 is off by >= 1 / (2 * frames), more than
# float32's error below 256): the mean is accumulated in half the memory.
_FLOAT32_MEAN_FRAMES = 65535


@dataclass(frozen=True)
class BackgroundOptions:
    """Where masks and backgrounds live, which frames to use and how to combine them."""

    masks_dir: str = "rvm"  # RVM's output, the chain's previous step
    bkgd_dir: str = "bkgd"
    mask_ext: str | None = None  # None: a frame's mask is its stem's file of any mask type
    threshold: float = 0.5  # foreground above this fraction of full scale, after scaling to the mask's maximum
    ext: str = ".png"  # .png: RGBA with coverage alpha; .jpg: RGB
    image_ext: str | None = None  # None: every supported image type
    jump: int = 10
    dilation: int = 20
    method: str = "mean"
    max_memory: int = 2 << 30  # bytes, for the median's frame stack
    fill_holes: bool = False
    overwrite: bool = False
    workers: int = 4  # cameras at once (and frame readers per camera when there are fewer cameras)
    quality: int = 95  # for a .jpg output


@dataclass
class BackgroundReport:
    """What a run did."""

    written: list[str] = field(default_factory=list)
    complete: list[str] = field(default_factory=list)  # skipped: background already there
    frames_used: int = 0
    hole_fraction: dict[str, float] = field(default_factory=dict)  # before filling
    bands: dict[str, int] = field(default_factory=dict)  # median: bands per camera
    seconds: float = 0.0

    def merge(self, other: BackgroundReport) -> BackgroundReport:
        """This report and that of a worker that ran beside it over other cameras."""
        self.written += other.written
        self.complete += other.complete
        self.frames_used += other.frames_used
        self.hole_fraction.update(other.hole_fraction)
        self.bands.update(other.bands)
        self.seconds = max(self.seconds, other.seconds)
        return self


def read_background_mask(path: Path, dilation: int, size: tuple[int, int], threshold: int = THRESHOLD) -> np.ndarray:
    """Where the frame shows background: ``(H, W)`` bool.

    The mask is read as EasyVolcap reads masks (scaled by its own maximum, then above ``threshold``, a level,
    128 by default, is foreground; an all-zero mask has no foreground), then the foreground is dilated with a
    ``dilation x dilation`` square (0: none).

    Raises:
        EvcError: the mask is unreadable, or of another size than its image.
    """
    mask = read_gray(path)
    if mask.shape != size:
        raise EvcError(f"{path}: mask is {mask.shape[1]}x{mask.shape[0]}, its image is {size[1]}x{size[0]}")
    return grow(binarize(mask, threshold), dilation) == 0


def find_masks(folder: Path, stems: list[str], ext: str | None) -> list[Path]:
    """The mask of each frame stem in a camera's mask folder: the file of that stem of any mask type (or of type
    ``ext``).

    Raises:
        EvcError: a frame has no mask (naming the file looked for, and a file of another type when there is
            one), or two of one frame (``mask_files``).
    """
    index = mask_files(folder, ext)
    for stem in stems:
        if stem not in index:
            if ext is None:
                raise EvcError(f"{folder / stem}{'|'.join(MASK_TYPES)}: mask not found")
            others = sorted(p.name for p in folder.glob(f"{stem}.*")) if folder.is_dir() else []
            hint = f" (found {', '.join(others)}: set --mask_ext to its type, or leave it out)" if others else ""
            raise EvcError(f"{folder / stem}{ext}: mask not found{hint}")
    return [index[stem] for stem in stems]


def masked_median(samples: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel median of ``samples`` over the frames where ``valid``.

    Args:
        samples: ``(N, H, W, C)`` uint8.
        valid: ``(N, H, W)`` bool.

    Returns:
        ``(median, count)``: ``(H, W, C)`` float64 (the mean of the two middle values for an even
        count, as ``numpy.nanmedian``; NaN where count is 0) and ``(H, W)`` int64.
    """
    keys = samples.astype(np.uint16)
    keys[~valid] = 256  # sorts after every real value
    keys.sort(axis=0)
    count = valid.sum(axis=0)
    low = np.clip((count - 1) // 2, 0, None)[None, ..., None]
    high = np.clip(count // 2, 0, len(samples) - 1)[None, ..., None]
    channels = samples.shape[-1]
    low_values = np.take_along_axis(keys, np.repeat(low, channels, axis=-1), axis=0)[0]
    high_values = np.take_along_axis(keys, np.repeat(high, channels, axis=-1), axis=0)[0]
    median = (low_values.astype(np.float64) + high_values) / 2
    median[count == 0] = np.nan
    return median, count


def rounded_mean(total: np.ndarray, count: np.ndarray) -> np.ndarray:
    """``total / max(count, 1)`` rounded half to even, as uint8 ``(H, W, 3)``; computed in place in
    ``total`` (``(H, W, 3)`` float32 or float64 sums; ``count`` ``(H, W)``), which needs no fresh pages."""
    divisor = count.astype(total.dtype)
    np.maximum(divisor, 1, out=divisor)
    np.divide(total, divisor[..., None], out=total)
    np.rint(total, out=total)
    return total.astype(np.uint8)


class _CameraJob:
    """Builds one camera's background."""

    def __init__(self, layout: DatasetLayout, camera: Camera, options: BackgroundOptions,
                 memory: int, threads: int = 1) -> None:
        self.layout, self.camera, self.options = layout, camera, options
        self.readers = 1 if camera.video is not None else threads  # a video decodes forward: one reader
        self.frames = range(0, len(camera), options.jump)  # indices of the used frames
        self.size = height, width = camera.size()
        self.tick: Callable[[int], None] = lambda n: None
        rows = height
        if options.method == "median":  # everything the median holds must fit in `memory` bytes
            rows = min(height, median_rows(len(self.frames), height, width, self.readers, memory))
        self.bands = [(top, min(top + rows, height)) for top in range(0, height, rows)] if rows >= 1 else []
        self.steps = len(self.frames) * len(self.bands)  # frame decodes
        folder = layout.output_dir(options.masks_dir, camera.name)
        found = find_masks(folder, [camera.frames[t].stem for t in self.frames], options.mask_ext)
        self.masks = dict(zip(self.frames, found, strict=True))  # found once: the median's bands read them again

    def _load(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        image = self.camera.read_frame(t, self.size)
        return image, read_background_mask(self.masks[t], self.options.dilation, self.size,
                                           level(self.options.threshold))

    def _loaded(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        with closing(prefetch_map(self._load, self.frames, workers=self.readers, ahead=2 * self.readers)) as frames:
            for item in frames:
                yield item
                self.tick(1)

    def mean(self) -> tuple[np.ndarray, np.ndarray]:
        """``(background uint8 (H, W, 3), count (H, W))``: the mean rounded half to even (0 where never
        seen), accumulated one frame at a time in exact sums."""
        dtype = np.float32 if len(self.frames) <= _FLOAT32_MEAN_FRAMES else np.float64
        total = np.zeros((*self.size, 3), dtype)
        count = np.zeros(self.size, np.uint32)
        for image, background in self._loaded():
            cv2.accumulate(image, total, mask=background.view(np.uint8))
            count += background
        return rounded_mean(total, count), count

    def median(self) -> tuple[np.ndarray, np.ndarray]:
        """``(background uint8 (H, W, 3), count (H, W))``: the median rounded half to even (0 where never
        seen), band by band within the budget."""
        height, width = self.size
        image = np.empty((height, width, 3), np.uint8)
        count = np.empty((height, width), np.uint32)
        for top, bottom in self.bands:
            samples = np.empty((len(self.frames), bottom - top, width, 3), np.uint8)
            valid = np.empty((len(self.frames), bottom - top, width), bool)
            for i, (frame, background) in enumerate(self._loaded()):
                samples[i], valid[i] = frame[top:bottom], background[top:bottom]
            median, count[top:bottom] = masked_median(samples, valid)
            del samples, valid
            np.rint(np.nan_to_num(median, copy=False), out=median)  # NaN where never seen: 0, as the mean
            image[top:bottom] = median
        return image, count

    def run(self) -> float:
        """Compute and write the background; returns the hole fraction before filling."""
        options = self.options
        image, count = self.median() if options.method == "median" else self.mean()
        holes = count == 0
        filled = options.fill_holes and bool(holes.any())
        if filled:
            image = cv2.inpaint(image, holes.view(np.uint8), 5, cv2.INPAINT_TELEA)
        if options.ext.lower() == ".png":  # alpha: 255 where seen (or filled), 0 in holes
            image = cv2.cvtColor(image, cv2.COLOR_RGB2RGBA)
            if not filled:
                image[..., 3][holes] = 0
        write_image(self.layout.root / options.bkgd_dir / f"{self.camera.name}{options.ext}", image, options.quality)
        return float(holes.mean())


def median_rows(frames: int, height: int, width: int, readers: int, memory: int) -> int:
    """How many image rows one band of the median can hold within ``memory`` bytes (0: not even one),
    counting what the camera holds through all bands (the result, the frames in flight) and while writing."""
    fixed = _median_fixed_memory(height, width, readers)
    return max(0, (memory - fixed) // (width * (frames * _MEDIAN_SAMPLE_BYTES + _MEDIAN_BAND_BYTES)))


def _median_fixed_memory(height: int, width: int, threads: int) -> int:
    """What a camera's median holds besides its band: the result and the frames in flight, or, at the
    end, the output and its encoding (``threads`` read frames; one encoder compresses the PNG)."""
    per_pixel = max(_MEDIAN_OUTPUT_BYTES, _MEDIAN_RESULT_BYTES + 3 * threads * _MEDIAN_FRAME_BYTES)
    return height * width * per_pixel + _DEFLATE_BYTES


def _median_memory(frames: int, height: int, width: int, readers: int, rows: int) -> int:
    """The smallest budget in which :func:`median_rows` gives ``rows`` rows."""
    band_row = width * (frames * _MEDIAN_SAMPLE_BYTES + _MEDIAN_BAND_BYTES)
    return _median_fixed_memory(height, width, readers) + rows * band_row


def _memory_size(size: int) -> str:
    """Bytes as ``--max_memory`` takes them, rounded up: ``40K``, ``512M``."""
    return f"{-(-size // 2**10)}K" if size < 10 * 2**20 else f"{-(-size // 2**20)}M"


def _check_median_plan(jobs: list[_CameraJob], options: BackgroundOptions, parallel: int) -> str | None:
    """Refuse a median that cannot fit the budget; a warning when it needs many passes over the frames.

    Raises:
        EvcError: one image row of every used frame (with what the camera holds besides) exceeds the
            budget; the message gives the smallest ``--max_memory`` that works and the ``--jump`` that fits.
    """
    if options.method != "median" or not jobs:
        return None
    share = f" ({parallel} cameras at once: --max_memory is shared)" if parallel > 1 else ""
    tight = [job for job in jobs if not job.bands]
    if tight:
        need = parallel * max(_median_memory(len(j.frames), *j.size, j.readers, 1) for j in tight)
        jump = _fitting_jump(tight, options, options.max_memory // parallel, rows=lambda job: 1)
        job = tight[0]
        raise EvcError(f"--max_memory {_memory_size(options.max_memory)} is too small for the median of camera "
                       f"{job.camera.name} ({job.size[1]}x{job.size[0]}, {len(job.frames)} frames at --jump "
                       f"{options.jump}){share}: use --max_memory {_memory_size(need)} or more"
                       + (f", or --jump {jump}" if jump else ""))
    slow = max(jobs, key=lambda job: len(job.bands))
    if len(slow.bands) <= _MEDIAN_SLOW_PASSES:
        return None
    one_pass = parallel * max(_median_memory(len(j.frames), *j.size, j.readers, j.size[0]) for j in jobs)
    jump = _fitting_jump(jobs, options, options.max_memory // parallel, rows=lambda job: job.size[0])
    return (f"the median of camera {slow.camera.name} takes {len(slow.bands)} passes over its "
            f"{len(slow.frames)} frames (each decoded {len(slow.bands)} times: about {len(slow.bands)}x the time "
            f"of --method mean){share}; --max_memory {_memory_size(one_pass)}"
            + (f" or --jump {jump}" if jump else "") + " makes it one pass")


def _fitting_jump(jobs: list[_CameraJob], options: BackgroundOptions, memory: int,
                  rows: Callable[[_CameraJob], int]) -> int | None:
    """The smallest ``--jump`` (above the current one) at which every job's band of ``rows(job)`` rows fits."""
    for jump in range(options.jump + 1, max(len(job.camera) for job in jobs) + 1):
        if all(_median_memory(len(range(0, len(job.camera), jump)), *job.size, job.readers, rows(job)) <= memory
               for job in jobs):
            return jump
    return None


def run_backgrounds(layout: DatasetLayout, options: BackgroundOptions,
                    progress: bool | None = None) -> BackgroundReport:
    """Write ``<bkgd_dir>/<camera><ext>`` for every camera, cameras in parallel threads.

    Cameras whose background exists are skipped unless ``options.overwrite``.

    The median holds everything within ``options.max_memory`` (shared by the cameras processed at once):
    it works on bands of rows, re-reading the frames for each; a budget too small for one row is
    refused before any work, and more than 8 passes are announced on stderr before they start.

    Raises:
        EvcError: a used frame has no mask, or a mask or image is unreadable or of the wrong size; the
            median's budget is too small (naming the budget and the ``--jump`` that would fit).
    """
    start = time.perf_counter()
    report = BackgroundReport()
    jobs = []
    for camera in layout.cameras:
        output = layout.root / options.bkgd_dir / f"{camera.name}{options.ext}"
        if is_written(output) and not options.overwrite:
            report.complete.append(camera.name)
        else:
            jobs.append(camera)
    # before any writer starts; only this process's cameras: shards of one dataset share the folder
    clear_stale_temp_files(layout.root / options.bkgd_dir, [f"{camera.name}{ext}" for camera in layout.cameras
                                                             for ext in MASK_EXTENSIONS])
    parallel = max(1, min(options.workers, len(jobs)))
    threads = max(1, options.workers // parallel)  # fewer cameras than workers: each camera gets several
    work = [_CameraJob(layout, camera, options, options.max_memory // parallel, threads) for camera in jobs]
    slow = _check_median_plan(work, options, parallel)
    if slow:
        tqdm.write(f"evc-bkgd: warning: {slow}", file=sys.stderr)
    with progress_bar(sum(job.steps for job in work), "evc-bkgd", progress) as bar, \
            ThreadPoolExecutor(max_workers=parallel) as pool:
        for job in work:
            job.tick = bar.update
        holes = list(pool.map(_CameraJob.run, work))
    for job, fraction in zip(work, holes, strict=True):
        report.written.append(job.camera.name)
        report.hole_fraction[job.camera.name] = fraction
        report.frames_used += len(job.frames)
        report.bands[job.camera.name] = len(job.bands)
    report.seconds = time.perf_counter() - start
    return report
