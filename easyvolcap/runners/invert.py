"""Inverted masks: ``255 - 255 * binary(mask)`` for every mask, in the mask's file type."""

from __future__ import annotations

from dataclasses import dataclass

from ..image_io import read_gray
from ..layout import DatasetLayout
from ..masks import invert_mask, level
from .mask_files import MaskFilesReport, MaskJob, run_mask_jobs

__all__ = ["InvertOptions", "run_invert"]


@dataclass(frozen=True)
class InvertOptions:
    """Where inverted masks go and how they are written."""

    inv_masks_dir: str = "inv_maskes"  # EasyVolcap's default name, typo included
    threshold: float = 0.5  # foreground above this fraction of full scale (easyvolcap.masks.level)
    overwrite: bool = False
    workers: int = 4
    quality: int = 85


def run_invert(layout: DatasetLayout, options: InvertOptions, progress: bool | None = None) -> MaskFilesReport:
    """Write ``<inv_masks_dir>/<camera>/<stem><ext>`` for every mask of ``layout`` (whose image folder
    is the mask folder), ``ext`` being the mask's own.

    Raises:
        EvcError: a mask is unreadable, or an output would sit beside a mask of the same frame of another type.
    """
    report = MaskFilesReport(cameras=[camera.name for camera in layout.cameras])
    jobs = [MaskJob(camera.name, frame.stem, (frame,),
                    layout.output_path(options.inv_masks_dir, camera.name, frame, frame.suffix))
            for camera in layout.cameras for frame in camera.frames]
    threshold = level(options.threshold)
    run_mask_jobs(jobs, lambda job: invert_mask(read_gray(job.inputs[0]), threshold), report, "evc-invert",
                  options.workers, options.quality, options.overwrite, progress)
    return report
