"""Small pieces every runner uses: image sizes, grouping cameras, stale temporary files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import EvcError
from ..image_io import read_rgb
from ..layout import Camera, DatasetLayout

__all__ = ["clear_stale_outputs", "clear_stale_temp_files", "group_by_size", "image_size", "read_frame"]


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


def group_by_size(cameras: list[Camera], sizes: dict[str, tuple[int, int]]
                  ) -> list[tuple[tuple[int, int], list[Camera]]]:
    """Cameras grouped by image size, groups in order of their first camera."""
    groups: dict[tuple[int, int], list[Camera]] = {}
    for camera in cameras:
        groups.setdefault(sizes[camera.name], []).append(camera)
    return list(groups.items())


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


def read_frame(camera: Camera, frame: Path, size: tuple[int, int]) -> np.ndarray:
    """Decode one frame of ``camera`` as RGB uint8, checking it has the camera's ``(height, width)``.

    Raises:
        EvcError: the image is unreadable or of another size than the camera's first frame.
    """
    image = read_rgb(frame)
    if image.shape[:2] != size:
        raise EvcError(f"{frame}: image is {image.shape[1]}x{image.shape[0]}, but camera {camera.name} "
                       f"starts at {size[1]}x{size[0]}; a camera keeps one size")
    return image
