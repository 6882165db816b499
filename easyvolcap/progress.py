"""Progress bars: tqdm in a normal run; in a worker process of a multi-device run, updates to the parent."""

from __future__ import annotations

from typing import Any

from tqdm import tqdm

__all__ = ["QueueBar", "progress_bar", "report_progress_to"]

_sink: Any = None  # a multiprocessing queue, set only in worker processes


def report_progress_to(queue: Any) -> None:
    """Make :func:`progress_bar` send ``("total", n)`` and ``("update", n)`` messages to ``queue``."""
    global _sink
    _sink = queue


class QueueBar:
    """The part of tqdm's interface the runners use, forwarding counts to the parent process."""

    def __init__(self, queue: Any, total: int) -> None:
        self.queue = queue
        queue.put(("total", total))

    def update(self, n: int = 1) -> None:
        self.queue.put(("update", n))

    def close(self) -> None:
        pass

    def __enter__(self) -> QueueBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress_bar(total: int, desc: str, enabled: bool | None = None) -> tqdm | QueueBar:
    """A bar over ``total`` images (``enabled`` ``None``: only when stderr is a terminal)."""
    if _sink is not None:
        return QueueBar(_sink, total)
    return tqdm(total=total, desc=desc, unit="img", disable=None if enabled is None else not enabled)
