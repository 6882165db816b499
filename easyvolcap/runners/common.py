"""Small pieces every runner uses: image sizes, grouping cameras, stale temporary files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import EvcError
from ..image_io import read_rgb, write_image
from ..layout import Camera, DatasetLayout
from ..video import open_video

__all__ = ["camera_size", "clear_stale_outputs", "clear_stale_temp_files", "emit_mattes", "frame_size_error",
           "image_size", "matte_outputs", "read_frame"]


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
        raise frame_size_error(frame, camera, image.shape[:2], size)
    return image


def frame_size_error(frame: Path, camera: Camera, got: tuple[int, int], want: tuple[int, int]) -> EvcError:
    """The error for a frame of ``(height, width)`` ``got`` in a camera of frames of ``want``."""
    return EvcError(f"{frame}: image is {got[1]}x{got[0]}, but camera {camera.name} starts at {want[1]}x{want[0]}; "
                    "a camera keeps one size")


def matte_outputs(layout: DatasetLayout, options, camera: Camera, t: int) -> list[Path]:
    """The files a matting run writes for frame ``t`` of ``camera``: the mask, and the foreground when
    ``options.fgr_dir`` is set."""
    frame = camera.frames[t]
    paths = [layout.output_path(options.mask_dir, camera.name, frame, options.mask_ext)]
    if options.fgr_dir:
        paths.append(layout.output_path(options.fgr_dir, camera.name, frame, ".jpg"))
    return paths


def emit_mattes(layout: DatasetLayout, options, writer, report, items: list[tuple[Camera, int]],
                alpha: np.ndarray, empty: np.ndarray, fgr: np.ndarray | None) -> None:
    """Queue the masks (and foregrounds) of matted frames for writing and count them in ``report``.

    A file that exists is kept unless ``options.overwrite``; frames without a pixel above 0.5 are
    listed in ``report.empty_frames``.
    """
    for i, (camera, t) in enumerate(items):
        if empty[i]:
            report.empty_frames.append((camera.name, camera.frames[t].stem))
        paths = matte_outputs(layout, options, camera, t)
        for path, image, counter in zip(paths, (alpha[i], None if fgr is None else fgr[i]),
                                        ("masks_written", "fgr_written"), strict=False):
            if options.overwrite or not path.exists():
                writer.submit(write_image, path, image, options.quality)
                setattr(report, counter, getattr(report, counter) + 1)
    report.frames_processed += len(items)
