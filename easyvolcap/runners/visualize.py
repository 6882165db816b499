"""A video to review masks: per frame, every camera's image multiplied by its mask, tiled in a grid.

Frames are matched across cameras by stem; a camera without that frame (or without its mask) shows a
black tile. Frames are composed in threads a few ahead and streamed to ffmpeg (H.264 in an ``.mp4``),
so memory does not grow with the length of the video; the file is written under a temporary name and
renamed when complete.
"""

from __future__ import annotations

import math
import os
import subprocess
import tempfile
import time
from contextlib import closing, suppress
from dataclasses import dataclass, field
from fractions import Fraction
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
from .common import clear_stale_temp_files

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


def _ffmpeg_command(exe: str, size: tuple[int, int], fps: float, path: Path) -> list[str]:
    """ffmpeg reading raw RGB frames of ``size`` ``(height, width)`` on stdin, writing H.264 (``CRF``) to ``path``."""
    rate = str(Fraction(fps).limit_denominator())
    return [exe, "-y", "-f", "rawvideo", "-vcodec", "rawvideo", "-s", f"{size[1]}x{size[0]}", "-pix_fmt", "rgb24",
            "-r", rate, "-i", "-", "-an", "-vcodec", "libx264", "-pix_fmt", "yuv420p", "-crf", str(CRF),
            "-v", "error", "-f", "mp4", str(path)]


def _last_line(log: bytes, status: int) -> str:
    """ffmpeg's last line worth reading (its final "Conversion failed!" says nothing), or its exit status."""
    lines = [line.strip() for line in log.decode(errors="replace").splitlines() if line.strip()]
    useful = [line for line in lines if line.lower().rstrip("!") != "conversion failed"]
    return (useful or lines or [f"exit status {status}"])[-1][:200]


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
        clear_stale_temp_files(output.parent, [output.name])  # a killed run's, of this output only
    except OSError as error:
        raise EvcError(f"{output.parent}: cannot write ({error.strerror or error})") from error
    temporary = output.parent / f".{output.name}.{os.getpid()}.tmp"
    with tempfile.TemporaryFile() as log:
        try:
            process = subprocess.Popen(_ffmpeg_command(ffmpeg.get_ffmpeg_exe(), compose.size, options.fps, temporary),
                                       stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log)
        except (OSError, RuntimeError) as error:
            raise EvcError(f"{output}: cannot start ffmpeg ({error})") from error
        try:
            with progress_bar(len(stems), "evc-visualize", progress) as bar, \
                    closing(prefetch_map(compose, stems, workers=options.workers, ahead=2 * options.workers)) as frames:
                for canvas, black in frames:
                    try:
                        process.stdin.write(canvas.tobytes())
                    except BrokenPipeError:
                        break  # ffmpeg quit: its exit status and message say why
                    report.black_tiles += len(black)
                    report.missing_masks += [name for name in black if name]
                    report.frames += 1
                    bar.update(1)
            with suppress(BrokenPipeError):
                process.stdin.close()
            status = process.wait()
            if status != 0 or report.frames < len(stems) or not temporary.is_file():
                log.seek(0)
                raise EvcError(f"{output}: ffmpeg could not write the video ({_last_line(log.read(), status)}); "
                               "the previous file, if any, is kept")
            try:
                os.replace(temporary, output)
            except OSError as error:
                raise EvcError(f"{output}: cannot write ({error.strerror or error})") from error
        finally:
            if process.poll() is None:  # interrupted, or a frame failed: no half-written video
                process.kill()
                process.wait()
            temporary.unlink(missing_ok=True)
    report.seconds = time.perf_counter() - start
    return report
