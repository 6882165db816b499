"""Small pieces every runner uses: stale temporary files, matte outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..image_io import write_image
from ..layout import Camera, DatasetLayout

__all__ = ["clear_stale_outputs", "clear_stale_temp_files", "emit_mattes", "matte_outputs"]


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
