"""A video to review masks: per frame, every camera's image multiplied by its mask, tiled in a grid.

Frames are matched across cameras by stem; a camera without that frame (or without its mask) shows a
black tile. Frames are composed in threads a few ahead and streamed to ffmpeg (H.264 in an ``.mp4``),
so memory does not grow with the length of the video; the file is written under a temporary name and
renamed when complete.
"""

from __future__ import annotations

import math
import os
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..errors import EvcError
from ..image_io import read_gray
from ..layout import Camera, DatasetLayout, mask_files, natural_key
from ..masks import binarize, check_same_size, level
from ..parallel import prefetch_map
from ..preview import label_tile
from ..progress import progress_bar

__all__ = ["INSTALL_HINT", "VideoOptions", "VideoReport", "grid_shape", "require_ffmpeg", "run_visualize"]

INSTALL_HINT = 'pip install "easyvolcap-segmentation[video]" (or pip install imageio-ffmpeg)'
CRF = 24  # EasyVolcap's H.264 quality


def require_ffmpeg():
    """The ``imageio_ffmpeg`` module.

    Raises:
        EvcError: it is not installed (the message gives the install command).
    """
    try:
        import imageio_ffmpeg
    except ImportError:
        raise EvcError(f"writing the video needs the video extra: {INSTALL_HINT}") from None
    return imageio_ffmpeg


@dataclass(frozen=True)
class VideoOptions:
    """What goes into the video and how it is encoded."""

    output: Path
    mask_dir: str = "rvm"
    mask_ext: str | None = None  # None: a frame's mask is its stem's file of any mask type
    threshold: float = 0.5  # foreground above this fraction of full scale, after scaling to the mask's maximum
    fps: float = 30.0
    ratio: float = 1.0  # scale of each tile, of the first camera's size
    max_length: int | None = None  # frames at most
    label: bool = True  # camera names on the tiles
    workers: int = 4


@dataclass
class VideoReport:
    """What the run wrote."""

    path: Path
    frames: int = 0
    cameras: int = 0
    grid: tuple[int, int] = (1, 1)  # (rows, columns)
    tile: tuple[int, int] = (0, 0)  # (height, width)
    size: tuple[int, int] = (0, 0)  # (height, width) of the video, even
    black_tiles: int = 0  # a camera without that frame
    missing_masks: list[str] = field(default_factory=list)  # "<camera>/<stem>" with an image and no mask
    seconds: float = 0.0


def grid_shape(cameras: int, height: int, width: int) -> tuple[int, int]:
    """``(rows, columns)`` for ``cameras`` tiles of ``height x width``: EasyVolcap's choice, rows =
    floor(sqrt(cameras * width / height)), which makes the whole picture about as tall as wide."""
    rows = min(cameras, max(1, int(math.sqrt(cameras * width / height))))
    return rows, math.ceil(cameras / rows)


class _Composer:
    """Composes frame ``stem`` of the video from every camera's image and mask."""

    def __init__(self, layout: DatasetLayout, options: VideoOptions) -> None:
        self.layout, self.options = layout, options
        self.cameras = layout.cameras
        self.frames = [{frame.stem: t for t, frame in enumerate(camera.frames)} for camera in self.cameras]
        self.sizes = [camera.size() for camera in self.cameras]
        height, width = self.sizes[0]
        self.tile = max(1, round(height * options.ratio)), max(1, round(width * options.ratio))
        self.grid = grid_shape(len(self.cameras), *self.tile)
        self.size = (self.grid[0] * self.tile[0] + 1) // 2 * 2, (self.grid[1] * self.tile[1] + 1) // 2 * 2
        self.masks = {camera.name: mask_files(layout.output_dir(options.mask_dir, camera.name), options.mask_ext)
                      for camera in self.cameras}  # by stem, of any mask type; two of one frame are refused
        self.threshold = level(options.threshold)

    def _mask(self, camera: Camera, stem: str) -> Path | None:
        return self.masks[camera.name].get(stem)

    def _tile(self, c: int, stem: str) -> np.ndarray | str | None:
        """The tile; ``None`` without that frame; ``"<camera>/<stem>"`` when the frame has no mask."""
        camera, t = self.cameras[c], self.frames[c].get(stem)
        if t is None:
            return None
        mask_path = self._mask(camera, stem)
        if mask_path is None:
            return f"{camera.name}/{stem}"
        image, mask = camera.read_frame(t, self.sizes[c]), read_gray(mask_path)
        check_same_size(camera.video or camera.frames[t], image, mask_path, mask)
        masked = image * binarize(mask, self.threshold)[..., None]
        if masked.shape[:2] != self.tile:
            masked = cv2.resize(masked, self.tile[::-1], interpolation=cv2.INTER_AREA)
        return label_tile(masked, camera.name) if self.options.label else masked

    def __call__(self, stem: str) -> tuple[np.ndarray, list[str | None]]:
        """The frame ``(H, W, 3)`` uint8, and what each black tile lacks (``None``: the frame; else the
        ``"<camera>/<stem>"`` of a frame without its mask)."""
        canvas = np.zeros((*self.size, 3), np.uint8)
        (height, width), columns = self.tile, self.grid[1]
        black = []
        for c in range(len(self.cameras)):
            tile = self._tile(c, stem)
            if tile is None or isinstance(tile, str):
                black.append(tile)
                continue
            top, left = (c // columns) * height, (c % columns) * width
            canvas[top:top + height, left:left + width] = tile
        return canvas, black


def frame_stems(layout: DatasetLayout) -> list[str]:
    """Every frame stem of any camera, in natural order."""
    return sorted({frame.stem for camera in layout.cameras for frame in camera.frames}, key=natural_key)


def run_visualize(layout: DatasetLayout, options: VideoOptions, progress: bool | None = None) -> VideoReport:
    """Write the review video to ``options.output`` (replaced only once the new one is complete).

    Raises:
        EvcError: imageio-ffmpeg is missing, an image or mask is unreadable, a mask has another size
            than its image, or ffmpeg fails.
    """
    ffmpeg = require_ffmpeg()
    start = time.perf_counter()
    output = options.output
    report = VideoReport(output, cameras=len(layout.cameras))
    compose = _Composer(layout, options)
    report.grid, report.tile, report.size = compose.grid, compose.tile, compose.size
    stems = frame_stems(layout)[:options.max_length]
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        for stale in output.parent.glob(f".{output.name}.*.tmp"):  # a killed run's temporary file
            stale.unlink(missing_ok=True)
    except OSError as error:
        raise EvcError(f"{output.parent}: cannot write ({error.strerror or error})") from error
    temporary = output.parent / f".{output.name}.{os.getpid()}.tmp"  # ffmpeg creates it with the usual mode
    try:
        writer = ffmpeg.write_frames(str(temporary), compose.size[::-1], fps=options.fps, codec="libx264",
                                     quality=None, macro_block_size=1, output_params=["-crf", str(CRF), "-f", "mp4"])
        writer.send(None)
        with closing(writer), progress_bar(len(stems), "evc-visualize", progress) as bar, \
                closing(prefetch_map(compose, stems, workers=options.workers, ahead=2 * options.workers)) as frames:
            for canvas, black in frames:
                writer.send(canvas.tobytes())
                report.black_tiles += len(black)
                report.missing_masks += [name for name in black if name]
                report.frames += 1
                bar.update(1)
        os.replace(temporary, output)
    except (OSError, RuntimeError) as error:
        raise EvcError(f"{output}: ffmpeg could not write the video ({str(error).strip()[:200]})") from error
    finally:
        temporary.unlink(missing_ok=True)
    report.seconds = time.perf_counter() - start
    return report
