"""Killing a run: SIGKILL mid-run then the same command gives the files of an uninterrupted run; Ctrl-C
stops within a second, saying how far it got."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from easyvolcap.image_io import write_image
from easyvolcap.synthetic.capture import background, make_demo_dataset

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts" / "segmentation"
LONG = 160  # frames of the last camera: long enough to be caught mid-run


@pytest.fixture
def data(tmp_path) -> Path:
    """Cameras 00 and 01 with 4 frames, camera 02 with many: a kill lands while 02 is being processed."""
    root = make_demo_dataset(tmp_path / "d", cameras=2, frames=4, size=(32, 48), odd_size=None)
    long = make_demo_dataset(tmp_path / "long", cameras=1, frames=LONG, size=(32, 48), odd_size=None)
    (long / "images" / "00").rename(root / "images" / "02")
    for c in range(3):
        write_image(root / "bkgd" / f"{c:02d}.png", background(32, 48, seed=c))
    return root


def command(tool: str, data: Path, checkpoints: dict, out: str) -> list[str]:
    if tool == "rvm":
        return [sys.executable, str(SCRIPTS / "inference_robust_video_matting.py"), "--data_root", str(data),
                "--variant", "mobilenetv3", "--chkpt_path", str(checkpoints["rvm"]), "--device", "cpu",
                "--batch_size", "2", "--workers", "2", "--mask_dir", out, "--no_preview"]
    return [sys.executable, str(SCRIPTS / "inference_bkgdmattev2.py"), "--data_root", str(data), "--chkpt_path",
            str(checkpoints["bgmv2"]), "--device", "cpu", "--batch_size", "2", "--workers", "2", "--mask_dir", out,
            "--no_preview"]


def count_masks(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*.jpg"))


def _child_setup() -> None:
    os.nice(10)  # this test, polling the outputs, is never starved of the CPU by the child
    # a shell starts background jobs with SIGINT ignored, and a child inherits that: Ctrl-C must reach the tool
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(args: list[str]) -> subprocess.Popen:
    """The tool in a child at a lower priority and with Ctrl-C's default action, whatever this process has."""
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_child_setup)


def wait_for(folder: Path, count: int, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if folder.is_dir() and sum(1 for p in folder.iterdir() if not p.name.startswith(".")) >= count:
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.005)
    raise AssertionError(f"{folder} never had {count} files")


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def checkpoints(rvm_checkpoints, bgmv2_checkpoints) -> dict[str, Path]:
    return {"rvm": rvm_checkpoints["mobilenetv3"], "bgmv2": bgmv2_checkpoints["pytorch_mobilenetv2"]}


@pytest.mark.parametrize("tool", ["rvm", "bgmv2"])
def test_sigkill_then_rerun_equals_an_uninterrupted_run(data, checkpoints, tool):
    reference = subprocess.run(command(tool, data, checkpoints, "reference"), capture_output=True, text=True)
    assert reference.returncode == 0, reference.stderr
    process = start(command(tool, data, checkpoints, "out"))
    wait_for(data / "out" / "02", 6, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert len(list((data / "out" / "02").iterdir())) < LONG  # killed mid-camera
    done = {p: p.stat().st_mtime_ns for camera in ("00", "01") for p in (data / "out" / camera).iterdir()}
    again = subprocess.run(command(tool, data, checkpoints, "out"), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert "(1 cameras processed, 2 already complete;" in again.stdout  # finished cameras are not redone
    assert all(p.stat().st_mtime_ns == t for p, t in done.items())
    assert files(data / "out") == files(data / "reference")


def test_ctrl_c_stops_after_the_pass_in_flight_saying_how_far_it_got(data, checkpoints):
    process = start(command("rvm", data, checkpoints, "out"))
    wait_for(data / "out" / "02", 4, process)
    process.send_signal(signal.SIGINT)
    at_signal = count_masks(data / "out")
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130, (at_signal, out, err)
    assert count_masks(data / "out") - at_signal <= 2  # at most the pass in flight (--batch_size 2) is finished
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rvm: interrupted after ")
    assert f"of {8 + LONG} frames; finished outputs are kept, run the same command to resume" in lines[0]
    assert not [p for p in (data / "out").rglob("*") if p.name.endswith(".tmp")]
