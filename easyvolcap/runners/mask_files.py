"""Per-frame mask jobs (merge, invert): each output is computed from a few input files of one frame.

Outputs that exist are kept unless ``overwrite`` (an interrupted run resumes); every file is written
atomically; frames are computed and written in ``workers`` threads, at most ``2 * workers`` ahead.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..image_io import write_image
from ..parallel import prefetch_map
from ..progress import progress_bar
from .common import clear_stale_temp_files, refuse_other_types

__all__ = ["MaskFilesReport", "MaskJob", "run_mask_jobs"]


@dataclass(frozen=True)
class MaskJob:
    """One output mask and the input files of its frame."""

    camera: str
    stem: str
    inputs: tuple[Path, ...]
    output: Path


@dataclass
class MaskFilesReport:
    """What a per-frame mask run did."""

    written: int = 0
    complete: int = 0  # outputs already there, kept
    cameras: list[str] = field(default_factory=list)
    seconds: float = 0.0


def run_mask_jobs(jobs: list[MaskJob], compute: Callable[[MaskJob], np.ndarray], report: MaskFilesReport,
                  desc: str, workers: int = 4, quality: int = 85, overwrite: bool = False,
                  progress: bool | None = None) -> None:
    """Write ``compute(job)`` to ``job.output`` for every job whose output is missing (every job with
    ``overwrite``), counting into ``report``.

    Raises:
        EvcError: an output would sit beside a mask of the same frame of another type (before any write);
            from ``compute`` (unreadable or mismatched inputs) or a failed write; files written before stay
            complete.
    """
    start = time.perf_counter()
    refuse_other_types(job.output for job in jobs)
    for folder in sorted({job.output.parent for job in jobs}):
        clear_stale_temp_files(folder)
    todo = [job for job in jobs if overwrite or not job.output.exists()]
    report.complete += len(jobs) - len(todo)

    def work(job: MaskJob) -> None:
        write_image(job.output, compute(job), quality)

    with progress_bar(len(todo), desc, progress) as bar, \
            closing(prefetch_map(work, todo, workers=workers, ahead=2 * workers)) as done:
        for _ in done:
            report.written += 1
            bar.update(1)
    report.seconds += time.perf_counter() - start
