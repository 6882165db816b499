"""What a run reports, and how the reports of several worker processes become one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["MattingReport", "Report", "RunReport"]


class Report(Protocol):
    """Any runner's report: how long it took, and how to add the report of a worker that ran beside it."""

    seconds: float

    def merge(self, other: Report) -> Report: ...


@dataclass
class RunReport:
    """What every per-camera run reports: frames computed, cameras done now or found complete, wall time."""

    frames_processed: int = 0
    cameras_processed: list[str] = field(default_factory=list)
    cameras_complete: list[str] = field(default_factory=list)  # skipped: outputs already there
    seconds: float = 0.0
    batch_sizes: dict[str, int] = field(default_factory=dict)  # images per forward pass, by camera
    batch_mode: str = ""  # auto: chosen by easyvolcap.batching's rule; set: an explicit --batch_size
    batch_lowered: dict[str, int] = field(default_factory=dict)  # by device: the back-off's limit, when it struck

    def merge(self, other: RunReport) -> RunReport:
        """This report and ``other``'s, of a worker that ran beside it over other cameras: counts and lists
        add up; the wall time is the longer one (the workers ran at the same time); batches by camera and
        back-off limits by device are joined."""
        self.frames_processed += other.frames_processed
        self.cameras_processed += other.cameras_processed
        self.cameras_complete += other.cameras_complete
        self.seconds = max(self.seconds, other.seconds)
        self.batch_sizes.update(other.batch_sizes)
        self.batch_mode = self.batch_mode or other.batch_mode
        self.batch_lowered.update(other.batch_lowered)
        return self


@dataclass
class MattingReport(RunReport):
    """A matting run (RVM, BGMv2): masks and foregrounds written, and the frames whose mask came out empty."""

    masks_written: int = 0
    fgr_written: int = 0
    empty_frames: list[tuple[str, str]] = field(default_factory=list)  # (camera, frame stem)
    model: str = ""  # the model that ran, for the summary (RVM's variant, recognised from the checkpoint)

    def merge(self, other: MattingReport) -> MattingReport:
        super().merge(other)
        self.model = self.model or other.model
        self.masks_written += other.masks_written
        self.fgr_written += other.fgr_written
        self.empty_frames += other.empty_frames
        return self
