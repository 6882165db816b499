"""The prepared device check and the host-pipeline bench run their CPU-side logic to the end (no timing asserted)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.slow
def test_device_check_steps_run_on_the_cpu(tmp_path):
    env = {**os.environ, "DEVICE": "cpu", "QUICK": "1", "OUT": str(tmp_path / "out")}
    out = subprocess.run(["bash", str(BENCH / "device_check.sh")], capture_output=True, text=True, env=env,
                         timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "| rvm |" in out.stdout and "byte-identical" in out.stdout and "| rvm (auto" in out.stdout
    steady = next(line for line in out.stdout.splitlines() if line.startswith("| rvm (auto"))
    assert "| (emulated) |" in steady and " of " in steady and "(max diff 0)" in steady  # graphed = eager
    graphs = (tmp_path / "out" / "graphs_100.txt").read_text()
    assert "command --no_cuda_graphs img/s" in graphs and graphs.strip().splitlines()[-1].startswith("| rvm |")
    tunings = (tmp_path / "out" / "tunings.txt").read_text()
    assert "| rvm | graphs fp32 | - | - | 0 |" in tunings  # graphed = eager, bit for bit
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["graphs_100.txt", "shards.txt", "startup.txt",
                                                                    "steady.txt", "tunings.txt"]


def test_shard_equality_finds_a_differing_file(tmp_path, monkeypatch):
    """The comparison the device check relies on goes red when one shard's file differs."""
    monkeypatch.syspath_prepend(str(BENCH))
    import shard_equality

    def fake_run(tool, paths, device, out, shard):
        folder = paths["data"] / out / "00"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "000000.jpg").write_bytes(b"one" if shard is None else b"other")

    monkeypatch.setattr(shard_equality, "run", fake_run)
    count, differ = shard_equality.compare("rvm", {"data": tmp_path}, "cpu")
    assert count == 1 and differ == ["00/000000.jpg"]


def test_host_ceiling_measures_the_tool_without_a_model(tmp_path):
    out = subprocess.run([sys.executable, str(BENCH / "host_ceiling.py"), "--frames", "2", "--size", "48", "64",
                          "--workers", "1", "--repeat", "1"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    row = out.stdout.strip().splitlines()[-1]
    assert row.startswith("| `--workers 1` |") and float(row.split("|")[2]) > 0


def test_preview_bench_runs():
    out = subprocess.run([sys.executable, str(BENCH / "preview.py"), "--size", "48", "64", "--cameras", "2",
                          "--frames", "2", "--repeat", "1"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("preview of 2 cameras x 2 frames of 64x48:")
