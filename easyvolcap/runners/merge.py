"""EasyVolcap's merge of RVM and SCHP masks: the SCHP mask kept only inside the grown RVM mask.

RVM separates foreground from background well but keeps props and shadows; SCHP keeps only people,
but every person. Frames are those of the RVM folder, matched to SCHP masks by camera and stem.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import EvcError
from ..image_io import read_gray
from ..layout import DatasetLayout, mask_files, natural_key
from ..masks import check_same_size, level, merge_masks
from .mask_files import MaskFilesReport, MaskJob, run_mask_jobs

__all__ = ["MergeOptions", "MergeReport", "merge_frame", "run_merge"]


@dataclass(frozen=True)
class MergeOptions:
    """Where the masks are and how to merge them."""

    schp_dir: str = "mask"
    schp_ext: str | None = None  # None: a frame's SCHP mask is its stem's file of any mask type
    out_dir: str = "merged_mask"
    out_ext: str | None = None  # None: the RVM mask's own type, as EasyVolcap names outputs after the RVM files
    dilation: int = 20
    threshold: float = 0.5  # RVM foreground: above this fraction of full scale (easyvolcap.masks.level)
    overwrite: bool = False
    workers: int = 4
    quality: int = 85


@dataclass
class MergeReport(MaskFilesReport):
    """What a merge did; frames found in one input only were skipped."""

    without_schp: list[tuple[str, str]] = field(default_factory=list)  # (camera, stem): RVM mask only
    without_rvm: list[tuple[str, str]] = field(default_factory=list)  # SCHP mask only


def merge_frame(job: MaskJob, dilation: int, threshold: int) -> np.ndarray:
    """The merged mask of one frame: ``job.inputs`` = (RVM mask, SCHP mask); ``threshold`` a level.

    Raises:
        EvcError: a mask is unreadable, or the two differ in size (naming both files).
    """
    rvm_path, schp_path = job.inputs
    rvm, schp = read_gray(rvm_path), read_gray(schp_path)
    check_same_size(rvm_path, rvm, schp_path, schp)
    return merge_masks(rvm, schp, dilation, threshold)


def run_merge(layout: DatasetLayout, options: MergeOptions, progress: bool | None = None) -> MergeReport:
    """Write ``<out_dir>/<camera>/<stem><out_ext>`` for every frame of ``layout`` (the RVM masks) that
    has an SCHP mask ``<schp_dir>/<camera>/<stem>.<type>``; frames of one input only are listed in
    the report and skipped.

    Raises:
        EvcError: no frame has both masks (nothing to merge), two SCHP masks of one frame, an output beside a
            mask of the same frame of another type, an unreadable mask or masks of a frame of two sizes.
    """
    report = MergeReport()
    jobs = []
    for camera in layout.cameras:
        schp = mask_files(layout.output_dir(options.schp_dir, camera.name), options.schp_ext, "--schp_ext")
        stems = {frame.stem for frame in camera.frames}
        report.without_rvm += [(camera.name, stem) for stem in sorted(schp, key=natural_key) if stem not in stems]
        report.cameras.append(camera.name)
        for frame in camera.frames:
            if frame.stem not in schp:
                report.without_schp.append((camera.name, frame.stem))
                continue
            out_ext = options.out_ext or frame.suffix.lower()
            jobs.append(MaskJob(camera.name, frame.stem, (frame, schp[frame.stem]),
                                layout.output_path(options.out_dir, camera.name, frame, out_ext)))
    if layout.cameras and not jobs:
        types = f"*{options.schp_ext}" if options.schp_ext else "any mask type"
        raise EvcError(f"{layout.root / layout.image_dir}: no RVM mask has an SCHP mask of the same camera and frame "
                       f"in {layout.root / options.schp_dir} ({types}): nothing to merge")
    threshold = level(options.threshold)
    run_mask_jobs(jobs, lambda job: merge_frame(job, options.dilation, threshold), report, "evc-merge",
                  options.workers, options.quality, options.overwrite, progress)
    return report
