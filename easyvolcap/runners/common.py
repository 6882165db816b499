"""Small pieces every runner uses: batch planning and resume, stale temporary files."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from ..image_io import is_written
from ..layout import Camera, DatasetLayout

__all__ = ["Item", "clear_stale_outputs", "clear_stale_temp_files", "plan_batches"]

Item = tuple[Camera, int]  # frame t of a camera


def plan_batches(layout: DatasetLayout, batch_size: int | Mapping[str, int] | None,
                 outputs: Callable[[Camera, int], list[Path]], overwrite: bool, report) -> list[list[Item]]:
    """The batches a run computes, and which cameras it processes: each camera's frames in fixed batches of
    ``batch_size`` consecutive frames (or ``batch_size[camera name]``; ``None``: the whole camera as one),
    never mixing cameras, of which those with an output missing (or every one with ``overwrite``).

    The batches depend on the camera alone, so a resumed or sharded run computes a batch exactly as an
    uninterrupted run does. Each camera is added to ``report.cameras_processed`` when a batch of it is
    left, else to ``report.cameras_complete``. An output counts as missing when it does not exist or is
    empty (:func:`is_written`).
    """
    batches = []
    for camera in layout.cameras:
        size = (batch_size[camera.name] if isinstance(batch_size, Mapping) else batch_size) or len(camera)
        pending = [[(camera, t) for t in range(t0, min(t0 + size, len(camera)))] for t0 in range(0, len(camera), size)]
        if not overwrite:
            pending = [batch for batch in pending if not all(is_written(path) for item in batch
                                                             for path in outputs(*item))]
        (report.cameras_processed if pending else report.cameras_complete).append(camera.name)
        batches += pending
    return batches


def clear_stale_temp_files(folder: Path, names: Iterable[str] | None = None) -> None:
    """Remove temporary files that an interrupted run left behind in an output folder.

    ``names``: only the temporary files of these output file names (``cam01.png``), for a folder that
    other processes write into at the same time (each owning other names); ``None``: all of them.
    """
    if not folder.is_dir():
        return
    owned = None if names is None else set(names)
    for stale in folder.glob(".*.tmp"):
        # atomic_write's name: "." + output name + "." + mkstemp's random letters (never a dot) + ".tmp"
        if owned is None or stale.name[1:-len(".tmp")].rpartition(".")[0] in owned:
            stale.unlink(missing_ok=True)


def clear_stale_outputs(layout: DatasetLayout, out_dirs: list[str | None]) -> None:
    """Remove an interrupted run's temporary files from every camera's output folders."""
    for camera in layout.cameras:
        for out_dir in filter(None, out_dirs):
            clear_stale_temp_files(layout.output_dir(out_dir, camera.name))
