"""The pieces of the tools' one-line summaries."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["batch_summary", "examples", "matting_summary", "with_preview"]


def batch_summary(report) -> str:
    """How many images went through the model per pass: ``batch 8 (auto)``, ``batch 2-16 (auto, by image
    size)``, with the out-of-memory back-off's lower limit when it struck."""
    sizes = sorted(set(report.batch_sizes.values()))
    if not sizes:
        return "nothing to batch"
    text = f"batch {sizes[0]}" if len(sizes) == 1 else f"batch {sizes[0]}-{sizes[-1]}"
    if report.batch_mode == "auto":
        text += " (auto)" if len(sizes) == 1 else " (auto, by image size)"
    if report.batch_lowered:
        text += f", lowered to {min(report.batch_lowered.values())} after running out of memory"
    return text


def with_preview(line: str, path: Path | None) -> str:
    """The summary line, naming the preview contact sheet when one was written."""
    return f"{line}; preview {path}" if path else line


def examples(items: Sequence, count: int = 5) -> str:
    """The first ``count`` items for a summary line, ``camera/frame`` for ``(camera, frame)`` pairs, joined by
    commas, then `` ...`` when there are more."""
    shown = ", ".join(item if isinstance(item, str) else "/".join(item) for item in items[:count])
    return shown + (" ..." if len(items) > count else "")


def matting_summary(tool: str, report, mask_root: Path, model: str) -> str:
    """The one-line summary of a matting run (a ``MattingReport``)."""
    rate = report.frames_processed / report.seconds if report.seconds else 0.0
    line = (f"{tool}: wrote {report.masks_written} masks to {mask_root} ({len(report.cameras_processed)} cameras "
            f"processed, {len(report.cameras_complete)} already complete; {model}, {batch_summary(report)}) "
            f"in {report.seconds:.1f} s ({rate:.1f} img/s)")
    if report.fgr_written:
        line += f"; {report.fgr_written} foregrounds"
    if report.empty_frames:
        empty = report.empty_frames
        line += f"; WARNING {len(empty)} empty masks (no pixel above 0.5): {examples(empty)}"
    else:
        line += "; no empty masks"
    return line
