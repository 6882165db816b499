"""Progress bars: tqdm in a normal run; in a worker process of a multi-device run, updates to the parent."""

from __future__ import annotations

from typing import Any

from tqdm import tqdm

__all__ = ["QueueBar", "last_progress", "progress_bar", "report_progress_to", "set_progress"]

_sink: Any = None  # a multiprocessing queue, set only in worker processes
_last: Any = None  # the most recent bar, to say how far an interrupted run got


def report_progress_to(queue: Any) -> None:
    """Make :func:`progress_bar` send ``("total", n)`` and ``("update", n)`` messages to ``queue``."""
    global _sink
    _sink = queue


class QueueBar:
    """The part of tqdm's interface the runners use, forwarding counts to the parent process."""

    def __init__(self, queue: Any, total: int) -> None:
        self.queue, self.n, self.total = queue, 0, total
        queue.put(("total", total))

    def update(self, n: int = 1) -> None:
        self.n += n
        self.queue.put(("update", n))

    def close(self) -> None:
        pass

    def __enter__(self) -> QueueBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Bar(tqdm):
    """tqdm that counts when disabled too (stderr not a terminal), so an interrupted run can say how far it got."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.done = 0
        super().__init__(*args, **kwargs)

    def update(self, n: float | None = 1) -> bool | None:
        self.done += n or 0
        return super().update(n)


def progress_bar(total: int, desc: str, enabled: bool | None = None) -> tqdm | QueueBar:
    """A bar over ``total`` images (``enabled`` ``None``: only when stderr is a terminal)."""
    global _last
    if _sink is not None:
        _last = QueueBar(_sink, total)
    else:
        _last = _Bar(total=total, desc=desc, unit="img", disable=None if enabled is None else not enabled)
    return _last


def last_progress() -> tuple[int, int] | None:
    """``(done, total)`` of the most recent bar, or ``None`` when no bar was made."""
    return None if _last is None else (int(getattr(_last, "done", _last.n)), int(_last.total or 0))


def set_progress(done: int) -> None:
    """Set how far the most recent bar got, for a run that counts what it wrote after its workers stopped."""
    if _last is not None:
        _last.done = _last.n = done
