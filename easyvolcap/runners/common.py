"""Small pieces every runner uses: image sizes, grouping cameras, stale temporary files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import EvcError
from ..image_io import read_rgb
from ..layout import Camera, DatasetLayout
from ..video import open_video

__all__ = ["camera_size", "clear_stale_outputs", "clear_stale_temp_files", "image_size", "read_frame"]


def image_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` of an image file, read from its header only.

    Raises:
        EvcError: the file is not a readable image.
    """
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise EvcError(f"{path}: not a readable image ({error})") from error
    return height, width


def clear_stale_temp_files(folder: Path) -> None:
    """Remove temporary files that an interrupted run left behind in an output folder."""
    if folder.is_dir():
        for stale in folder.glob(".*.tmp"):
            stale.unlink(missing_ok=True)


def clear_stale_outputs(layout: DatasetLayout, out_dirs: list[str | None]) -> None:
    """Remove an interrupted run's temporary files from every camera's output folders."""
    for camera in layout.cameras:
        for out_dir in filter(None, out_dirs):
            clear_stale_temp_files(layout.output_dir(out_dir, camera.name))


def camera_size(camera: Camera) -> tuple[int, int]:
    """``(height, width)`` of a camera's frames (its first image's, or its video's)."""
    if camera.video is not None:
        video = open_video(camera.video)
        return video.height, video.width
    return image_size(camera.frames[0])


def read_frame(camera: Camera, frame: Path, size: tuple[int, int]) -> np.ndarray:
    """Decode one frame of ``camera`` as RGB uint8, checking it has the camera's ``(height, width)``.

    Raises:
        EvcError: the image is unreadable or of another size than the camera's first frame.
    """
    image = open_video(camera.video).frame(int(frame.stem)) if camera.video is not None else read_rgb(frame)
    if image.shape[:2] != size:
        raise EvcError(f"{frame}: image is {image.shape[1]}x{image.shape[0]}, but camera {camera.name} "
                       f"starts at {size[1]}x{size[0]}; a camera keeps one size")
    return image
