import threading
import time

import pytest

from easyvolcap.parallel import BackgroundWriter, prefetch_map


def test_prefetch_keeps_order_and_bounds_lookahead():
    started = []
    lock = threading.Lock()

    def work(i):
        with lock:
            started.append(i)
        time.sleep(0.001 * (5 - i % 5))
        return i * i

    results = []
    for i, value in enumerate(prefetch_map(work, range(40), workers=4, ahead=6)):
        results.append(value)
        with lock:
            assert max(started) <= i + 6  # never more than `ahead` items beyond the consumer
    assert results == [i * i for i in range(40)]


def test_prefetch_reraises_the_workers_error():
    def work(i):
        if i == 3:
            raise ValueError("bad item 3")
        return i

    got = []
    with pytest.raises(ValueError, match="bad item 3"):
        for value in prefetch_map(work, range(10), workers=2, ahead=4):
            got.append(value)
    assert got == [0, 1, 2]


def test_writer_runs_all_jobs_and_bounds_queue():
    done = []
    running = []
    lock = threading.Lock()

    def job(i):
        with lock:
            running.append(i)
            assert len(running) - len(done) <= 3
        time.sleep(0.002)
        with lock:
            done.append(i)

    with BackgroundWriter(workers=2, capacity=3) as writer:
        for i in range(20):
            writer.submit(job, i)
    assert sorted(done) == list(range(20)) and writer.written == 20


def test_writer_error_surfaces():
    def job(i):
        if i == 2:
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"), BackgroundWriter(workers=1, capacity=1) as writer:
        for i in range(50):
            writer.submit(job, i)
