"""Bounded overlap of IO with compute: an ordered prefetching map and a background writer."""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

__all__ = ["BackgroundWriter", "prefetch_map"]

T = TypeVar("T")
R = TypeVar("R")


def prefetch_map(fn: Callable[[T], R], items: Iterable[T], workers: int, ahead: int) -> Iterator[R]:
    """Yield ``fn(item)`` in input order, computing up to ``ahead`` items in ``workers`` threads.

    Memory stays bounded by ``ahead`` results whatever the number of items. An exception raised by
    ``fn`` is re-raised here, at the item that raised it; pending work is cancelled.
    """
    ahead = max(1, ahead)
    iterator = iter(items)
    pending: collections.deque[Future[R]] = collections.deque()
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="evc-read") as pool:
        try:
            for item in iterator:
                pending.append(pool.submit(fn, item))
                if len(pending) >= ahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


class BackgroundWriter:
    """Run write jobs in background threads, at most ``capacity`` queued at once.

    ``submit`` blocks when the queue is full, so memory stays flat; the first error raised by a job
    is re-raised by the next ``submit`` or by ``close``. Use as a context manager. Each job that completes
    counts one in ``written`` and in ``progress`` (anything with ``update(n)``) when given: what a run
    reports as done is what was written.
    """

    def __init__(self, workers: int = 2, capacity: int = 64, progress=None) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="evc-write")
        self._slots = threading.BoundedSemaphore(max(1, capacity))
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self.written = 0
        self._progress = progress

    def submit(self, job: Callable[..., object], *args: object) -> None:
        """Queue ``job(*args)``; blocks while ``capacity`` jobs are pending."""
        self._raise_pending()
        self._slots.acquire()
        try:
            future = self._pool.submit(job, *args)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(self._done)

    def _done(self, future: Future) -> None:
        self._slots.release()
        error = future.exception() if not future.cancelled() else None
        with self._lock:
            if error is not None and self._error is None:
                self._error = error
            elif error is None and not future.cancelled():
                self.written += 1
                if self._progress is not None:
                    self._progress.update(1)

    def _raise_pending(self) -> None:
        with self._lock:
            error, self._error = self._error, None
        if error is not None:
            raise error

    def close(self, cancel: bool = False) -> None:
        """Wait for queued jobs (or drop those not started, with ``cancel``), then re-raise an error."""
        self._pool.shutdown(wait=True, cancel_futures=cancel)
        self._raise_pending()

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:  # results already computed are still written; the original error matters more than a write failure
            self._pool.shutdown(wait=True)
