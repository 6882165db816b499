"""The check's results stay true to their inputs: a rerun redoes a frame whose masks, calibration or settings
changed, a run over some cameras merges into the report, temporary files belong to their writer, and an
interrupted run says how many frames are done."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from easyvolcap.cli import check
from easyvolcap.progress import last_progress, progress_bar
from easyvolcap.synthetic.scene import corrupt, make_scene, write_scene


def main(argv: list[str]) -> int:
    """The check on the scenes' ``masks/`` folder (the tool's default input is RVM's ``rvm/``)."""
    return check.main(["--masks_dir", "masks", *argv])


@pytest.fixture
def root(tmp_path) -> Path:
    return write_scene(tmp_path / "d", make_scene(8, 4, (90, 120), seed=5), "masks", ".png")


def _rows(root: Path) -> list[dict]:
    with open(root / "check" / "masks.csv") as handle:
        return list(csv.DictReader(handle))


def _run(root: Path, *extra: str) -> int:
    return main(["--data_root", str(root), "--device", "cpu", "--no_preview", *extra])


def test_a_changed_mask_or_setting_redoes_what_it_produced(root, capsys):
    assert _run(root, "--repair_dir", "fixed") == 0
    assert "no mask flagged of 32" in capsys.readouterr().out
    path = root / "masks" / "02" / "000001.png"
    cv2.imwrite(str(path), corrupt(cv2.imread(str(path), 0), "empty", np.random.default_rng(0)))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert _run(root, "--repair_dir", "fixed") == 0
    out = capsys.readouterr().out
    assert "checked 8 masks of 1 frames" in out and "3 frames already done" in out
    assert {(r["camera"], r["frame"]): r["flag"] for r in _rows(root) if r["flag"]} == {("02", "000001"): "empty"}
    assert (cv2.imread(str(root / "fixed" / "02" / "000001.png"), 0) > 127).sum() > 0  # repaired anew
    assert _run(root, "--threshold", "0.4") == 0  # other settings: every frame again, one setting in the report
    assert "checked 32 masks of 4 frames" in capsys.readouterr().out and len(_rows(root)) == 32


def test_a_run_over_some_cameras_merges_into_the_report(root, capsys):
    assert _run(root) == 0
    whole = _rows(root)
    assert _run(root, "--only", "00", "01") == 0
    out = capsys.readouterr().out
    assert "24 rows of other cameras kept from the last report" in out
    rows = _rows(root)
    assert len(rows) == 32 and [(r["camera"], r["frame"]) for r in rows] == [(r["camera"], r["frame"]) for r in whole]


def test_temporary_files_belong_to_their_writer(root, capsys):
    results = root / "check" / "masks"
    results.mkdir(parents=True)
    theirs = results / ".000001.json.k3j2h1ab.tmp"  # shard 1/2 writing frame 000001 right now
    mine = results / ".000002.json.q9w8e7rt.tmp"  # left by a killed run of shard 0/2
    repair = root / "fixed" / "03"
    repair.mkdir(parents=True)
    killed = repair / ".000000.png.z1x2c3v4.tmp"  # kill -9 during a repair write of shard 0/2
    other = repair / ".000003.png.a1s2d3f4.tmp"
    for path in (theirs, mine, killed, other):
        path.write_bytes(b"partial")
    assert _run(root, "--shard", "0/2", "--repair_dir", "fixed") == 0
    assert theirs.exists() and other.exists() and not mine.exists() and not killed.exists()
    assert _run(root, "--shard", "1/2", "--repair_dir", "fixed") == 0
    assert not theirs.exists() and not other.exists() and len(_rows(root)) == 32


def test_an_interrupted_check_says_how_many_frames_are_done(root, capsys, monkeypatch):
    import easyvolcap.runners.check as runner

    assert _run(root, "--shard", "0/2") == 0  # frames 0 and 2 done
    capsys.readouterr()
    real = runner._frame_result
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "_frame_result", interrupted)
    assert _run(root) == 130
    assert "interrupted after 3 of 4 frames" in capsys.readouterr().err


def test_a_bar_counts_when_it_is_not_shown():
    with progress_bar(10, "x", enabled=False) as bar:
        bar.update(3)
    assert last_progress() == (3, 10, "frames")


def test_flags_the_check_would_ignore_are_refused_and_a_demo_of_no_camera_is_one_line(root, tmp_path, capsys):
    from easyvolcap.demo import main as demo

    with pytest.raises(SystemExit, match="2"):
        _run(root, "--image_dir", "images")
    assert "unrecognized arguments: --image_dir" in capsys.readouterr().err
    assert demo([str(tmp_path / "demo"), "--calibrated", "--cameras", "0"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["evc-demo: error: --cameras 0: must be at least 1"] and not (tmp_path / "demo").exists()
