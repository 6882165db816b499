"""Progress of long work, counted whatever is shown: a tqdm bar in a terminal, one line every few seconds
in a log (stderr not a terminal: nohup, SLURM), nothing when turned off; in a worker process of a
multi-device run, counts sent to the parent.

The count is the runner's (``update`` is called as work is written, see
:class:`easyvolcap.parallel.BackgroundWriter`), never a display's: an interrupted run says how far it
got from :func:`last_progress`, shown or not.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any, TextIO

from tqdm import tqdm

__all__ = ["INTERVAL_ENV", "Progress", "QueueBar", "last_progress", "log_interval", "progress_bar",
           "report_progress_to", "set_progress"]

INTERVAL_ENV = "EVC_PROGRESS_SECONDS"  # seconds between two log lines (default 10)
DEFAULT_INTERVAL = 10.0

_sink: Any = None  # a multiprocessing queue, set only in worker processes
_last: Any = None  # the most recent bar, to say how far an interrupted run got


def report_progress_to(queue: Any) -> None:
    """Make :func:`progress_bar` send ``("total", n)`` and ``("update", n)`` messages to ``queue``."""
    global _sink
    _sink = queue


def log_interval() -> float:
    """Seconds between two progress lines in a log: ``$EVC_PROGRESS_SECONDS``, else 10."""
    text = os.environ.get(INTERVAL_ENV, "")
    try:
        value = float(text)
    except ValueError:
        return DEFAULT_INTERVAL
    return value if value >= 0 else DEFAULT_INTERVAL


def _clock(seconds: float) -> str:
    """``m:ss`` or ``h:mm:ss``."""
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Counts units of work done (``n`` of ``total``) and shows them: ``mode`` ``bar`` (tqdm), ``log`` (a
    line on ``stream`` every ``interval`` seconds: done, rate, ETA) or ``off``. ``update`` may be called
    from several threads."""

    def __init__(self, total: int, desc: str, mode: str = "log", unit: str = "frames",
                 interval: float | None = None, stream: TextIO | None = None) -> None:
        if mode not in ("bar", "log", "off"):
            raise ValueError(f"progress mode {mode!r} is not bar, log or off")
        self.desc, self.mode, self.unit, self.n = desc, mode, unit, 0
        self._total = total
        self._lock = threading.Lock()
        self._stream = stream
        self._interval = log_interval() if interval is None else interval
        self._start = self._last_line = time.monotonic()
        self._bar = tqdm(total=total, desc=desc, unit=unit, disable=False, file=stream) if mode == "bar" else None

    @property
    def total(self) -> int:
        """Units of work in all (may grow: a multi-device run adds each worker's)."""
        return self._total

    @total.setter
    def total(self, value: int) -> None:
        self._total = value
        if self._bar is not None:
            self._bar.total = value

    def update(self, n: int = 1) -> None:
        """Count ``n`` more units done; in a log, print a line when ``interval`` seconds passed since the last."""
        with self._lock:
            self.n += n
            if self._bar is not None:
                self._bar.update(n)
            elif self.mode == "log" and n:
                now = time.monotonic()
                if now - self._last_line >= self._interval:
                    self._last_line = now
                    print(self.line(now), file=self._stream or sys.stderr, flush=True)

    def line(self, now: float | None = None) -> str:
        """The log line: ``rvm: 40/168 frames (24%) in 0:12, 3.3 frames/s, ETA 0:39``."""
        elapsed = (time.monotonic() if now is None else now) - self._start
        rate = self.n / elapsed if elapsed > 0 else 0.0
        share = f" ({100 * self.n / self._total:.0f}%)" if self._total else ""
        eta = f", ETA {_clock((self._total - self.n) / rate)}" if rate > 0 and self._total >= self.n else ""
        shown = f"{rate:.1f}" if rate >= 1 else f"{rate:.2g}"
        done = f"{self.n}/{self._total} {self.unit}{share}"
        return f"{self.desc}: {done} in {_clock(elapsed)}, {shown} {self.unit}/s{eta}"

    def refresh(self) -> None:
        """Redraw the bar (after ``total`` changed)."""
        if self._bar is not None:
            self._bar.refresh()

    def close(self) -> None:
        """Close the bar (a log prints nothing more: the tool's summary line follows)."""
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class QueueBar:
    """The part of :class:`Progress`'s interface the runners use, forwarding counts to the parent process."""

    def __init__(self, queue: Any, total: int, unit: str = "frames") -> None:
        self.queue, self.n, self.total, self.unit = queue, 0, total, unit
        self._lock = threading.Lock()
        queue.put(("total", total))

    def update(self, n: int = 1) -> None:
        with self._lock:
            self.n += n
        self.queue.put(("update", n))

    def close(self) -> None:
        pass

    def __enter__(self) -> QueueBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress_bar(total: int, desc: str, enabled: bool | None = None, unit: str = "frames") -> Progress | QueueBar:
    """Progress over ``total`` units: ``enabled`` ``None`` shows a bar when stderr is a terminal and log lines
    otherwise; ``True`` a bar; ``False`` nothing (the count is kept either way)."""
    global _last
    if _sink is not None:
        _last = QueueBar(_sink, total, unit)
    elif enabled is None:
        _last = Progress(total, desc, "bar" if sys.stderr.isatty() else "log", unit)
    else:
        _last = Progress(total, desc, "bar" if enabled else "off", unit)
    return _last


def last_progress() -> tuple[int, int, str] | None:
    """``(done, total, unit)`` of the most recent progress, or ``None`` when none was made."""
    return None if _last is None else (int(_last.n), int(_last.total or 0), _last.unit)


def set_progress(done: int) -> None:
    """Set how far the most recent progress got, for a run that counts what it wrote after its workers stopped."""
    if _last is not None:
        _last.n = done
