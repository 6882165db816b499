"""Progress in a log (stderr not a terminal): a line every few seconds with the count, the rate and the ETA;
and the count is what was written, not what a display showed."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from easyvolcap.parallel import BackgroundWriter
from easyvolcap.progress import INTERVAL_ENV, Progress, progress_bar
from easyvolcap.synthetic.capture import make_demo_dataset

REPO = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^([\w-]+): (\d+)/(\d+) frames \((\d+)%\) in \d+:\d\d, [\d.e-]+ frames/s(, ETA \d+:\d\d)?$")


def test_a_log_gets_a_line_per_interval_with_count_rate_and_eta():
    stream = io.StringIO()
    progress = Progress(10, "rvm", "log", interval=0.05, stream=stream)
    progress.update(2)  # before the first interval: nothing
    assert stream.getvalue() == ""
    time.sleep(0.06)
    progress.update(2)
    time.sleep(0.06)
    progress.update(1)
    progress.update(1)  # within the interval of the last line: nothing
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2, lines
    first = LINE.match(lines[0])
    assert first and first[1] == "rvm" and (first[2], first[3], first[4]) == ("4", "10", "40") and first[5]
    assert LINE.match(lines[1])[2] == "5"
    assert progress.n == 6


def test_off_still_counts_from_many_threads():
    progress = Progress(4000, "x", "off")
    threads = [threading.Thread(target=lambda: [progress.update(1) for _ in range(1000)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert progress.n == 4000


def test_not_a_terminal_means_log_lines(capsys):
    bar = progress_bar(3, "merge")  # pytest's captured stderr is not a terminal
    assert isinstance(bar, Progress) and bar.mode == "log"
    assert progress_bar(3, "merge", enabled=False).mode == "off"


def test_the_writer_counts_what_it_wrote_not_what_was_queued(tmp_path):
    """Jobs cancelled by an interruption are not counted: the count is the files on disk."""
    progress = Progress(50, "rvm", "off")
    gate = threading.Event()

    def job(index: int) -> None:
        gate.wait()
        (tmp_path / f"{index}.txt").write_text("x")

    writer = BackgroundWriter(workers=2, capacity=50, progress=progress)
    for index in range(20):
        writer.submit(job, index)
    threading.Timer(0.05, gate.set).start()
    writer.close(cancel=True)  # the two running jobs finish, the queued ones are dropped
    written = len(list(tmp_path.iterdir()))
    assert progress.n == writer.written == written and 2 <= written < 20


def test_a_tool_in_a_log_prints_progress_lines(tmp_path):
    root = make_demo_dataset(tmp_path / "d", cameras=2, frames=6, size=(32, 48), odd_size=None)
    env = {**os.environ, INTERVAL_ENV: "0"}
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "segmentation" / "invert_mask.py"),
                           "--data_root", str(root), "--masks_dir", "gt_masks", "--workers", "1", "--no_preview"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines and all(LINE.match(line) for line in lines), lines
    counts = [int(LINE.match(line)[2]) for line in lines]
    assert counts == sorted(counts) and counts[-1] == 12 and {LINE.match(line)[3] for line in lines} == {"12"}
    assert done.stdout.startswith("evc-invert: wrote 12 inverted masks")
