"""The benchmark's measured workloads run and measure what they say (no timing is asserted)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from easyvolcap.image_io import write_image
from easyvolcap.synthetic.capture import background, make_demo_dataset

BENCH = Path(__file__).resolve().parent.parent / "bench"
PARITY = Path(__file__).parent / "parity"
SPECS = {"rvm": ("mobilenetv3", "rvm_mobilenetv3"), "bgmv2": ("mobilenetv2", "bgmv2_mobilenetv2"),
         "schp": ("lip", "schp_lip")}


def workload(spec: dict) -> dict:
    out = subprocess.run([sys.executable, str(BENCH / "matting_workloads.py"), json.dumps(spec)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1]) if out.stdout.strip() else {}


@pytest.mark.parametrize("tool", ["rvm", "bgmv2", "schp"])
@pytest.mark.slow
def test_tool_model_and_peer_workloads(tmp_path, tool):
    root = make_demo_dataset(tmp_path / "d", cameras=1, frames=2, size=(48, 64), odd_size=None)
    write_image(root / "bkgd" / "00.png", background(48, 64, seed=0))
    variant, keys = SPECS[tool]
    weights = tmp_path / "weights.pth"
    workload({"mode": "weights", "keys": str(PARITY / f"{keys}.keys.json"), "out": str(weights)})
    spec = {"tool": tool, "variant": variant, "root": str(root), "weights": str(weights), "batch": "default",
            "device": "cpu", "workers": 2, "mask_dir": "bench_masks", "decode": "device", "rounds": 1}
    measured = workload({**spec, "mode": "tool"})
    assert set(measured) == {"tool", "model", "model_graphs", "agreement"}
    assert measured["model_graphs"]["images"] == 2 and measured["model_graphs"]["seconds"] > 0
    assert measured["agreement"]["passes"] >= 1
    assert measured["agreement"]["equal"] == measured["agreement"]["passes"]
    assert measured["agreement"]["max_abs_diff"] == 0
    for kind in ("tool", "model"):
        assert measured[kind]["images"] == 2 and measured[kind]["seconds"] > 0 and measured[kind]["device"] == "cpu"
    assert measured["tool"]["batch_text"] == {"rvm": "auto (16)", "bgmv2": "auto (8)", "schp": "auto (1)"}[tool]
    assert len(list((root / "bench_masks" / "00").iterdir())) == 2
    sys.path.insert(0, str(BENCH))
    try:
        import matting
    finally:
        sys.path.remove(str(BENCH))
    assert set(matting.timed(measured)) == {"tool", "model", "model_graphs"}  # the rows' timed runs
    for peer in matting.PEERS[tool]:
        result = workload({**spec, "mode": "peer", "peer": peer, "mask_dir": f"{peer}_masks"})[peer]
        ext = ".png" if peer in ("rvm_convert_video", "simple_extractor") else ".jpg"
        written = sorted(p.name for p in (root / f"{peer}_masks" / "00").iterdir())
        assert result["images"] == 2 and written == [f"00000{t}{ext}" for t in range(2)]


def test_background_bench_measures_every_camera(tmp_path):
    """The background rows: the tool and the camera-by-camera baseline both run on a 2-camera dataset
    the bench writes, and the baseline's output is the tool's mean background (same pixels seen)."""
    import cv2
    import numpy as np

    sys.path.insert(0, str(BENCH))
    try:
        import backgrounds as bench_backgrounds
    finally:
        sys.path.remove(str(BENCH))
    assert bench_backgrounds.parse_row("4x10") == (4, 10)
    with pytest.raises(argparse.ArgumentTypeError, match="CAMERASxFRAMES"):
        bench_backgrounds.parse_row("4 cameras")
    lines: list[str] = []
    rows = bench_backgrounds.run([(2, 3)], 24, 32, echo=lines.append, repeat=1)
    assert [(r["cameras"], r["frames"], r["method"]) for r in rows] == [(2, 3, "mean"), (2, 3, "median")]
    assert all(r["rate"] > 0 and r["baseline_rate"] > 0 and r["peak_rss"] > 0 for r in rows)
    assert len(lines) == 4 and "2 x 3" in lines[2]

    root = bench_backgrounds.make_dataset(tmp_path / "d", 3, 24, 32, cameras=2)
    bench_backgrounds.baseline(root)
    subprocess.run([sys.executable, str(BENCH / "backgrounds.py"), "--child", "tool", str(root), "mean"],
                   check=True, capture_output=True, timeout=300)
    for camera in ("cam00", "cam01"):
        ours = cv2.imread(str(root / "bench" / f"{camera}.png"), cv2.IMREAD_UNCHANGED)[..., :3]
        theirs = cv2.imread(str(root / f"baseline_{camera}.png"))
        assert np.abs(ours.astype(int) - theirs).max() <= 1  # float32 sums in the baseline round alike


def test_sync_bench_prints_a_row_per_file_kind(tmp_path):
    out = subprocess.run([sys.executable, str(BENCH / "sync.py"), "--dir", str(tmp_path), "--files", "2",
                          "--height", "16", "--width", "24"], capture_output=True, text=True, timeout=120, check=True)
    rows = out.stdout.strip().splitlines()
    assert len(rows) == 4 and [row.split()[0] for row in rows[1:]] == ["mask", "mask", "background"]
    assert list(tmp_path.iterdir()) == []  # what it wrote is removed


def _bench_module(name: str):
    sys.path.insert(0, str(BENCH))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(BENCH))


def test_cuda_check_compares_masks_within_the_stated_tolerance():
    import numpy as np

    cuda_check = _bench_module("cuda_check")
    reference = {"00/000000": np.full((10, 10), 200, np.uint8)}
    assert cuda_check.compare(reference, {"00/000000": reference["00/000000"] + 1}, "rvm", "fp32")[0]
    far = reference["00/000000"].copy()
    far[0, :2] = 160  # 2 of 100 pixels 40 levels off (mean 0.8): over fp32's 1% but within fp16's 3%
    assert not cuda_check.compare(reference, {"00/000000": far}, "rvm", "fp32")[0]
    assert cuda_check.compare(reference, {"00/000000": far}, "bgmv2", "fp16")[0]
    assert not cuda_check.compare(reference, {}, "rvm", "fp32")[0]
    assert cuda_check.compare(reference, {"00/000000": far}, "schp", "fp32")[0]  # still person everywhere
    far[0, :3] = 0
    ok, text = cuda_check.compare(reference, {"00/000000": far}, "schp", "fp16")
    assert not ok and "3.00%" in text


@pytest.mark.slow
def test_cuda_check_logic_runs_on_the_cpu(tmp_path, monkeypatch):
    """The whole check on the CPU with tiny frames: datasets, reference, runs, an injected out-of-memory error
    that the back-off absorbs, mask comparison and the table."""
    monkeypatch.syspath_prepend(str(BENCH))  # its workloads module
    cuda_check = _bench_module("cuda_check")
    monkeypatch.setitem(cuda_check.MODELS, "rvm", ("mobilenetv3", "rvm_mobilenetv3"))  # the light variants
    monkeypatch.setitem(cuda_check.MODELS, "bgmv2", ("mobilenetv2", "bgmv2_mobilenetv2"))
    lines: list[str] = []
    results = cuda_check.check(["tiny"], "cpu", 1, {"tiny": 3}, ["rvm", "bgmv2"], tmp_path, echo=lines.append)
    assert [(r.tool, r.config) for r in results] == [("rvm", "fp32"), ("rvm", "forced out-of-memory"),
                                                     ("bgmv2", "fp32"), ("bgmv2", "forced out-of-memory")]
    assert all(r.ok for r in results), cuda_check.table(results)
    assert results[0].ips > 0 and results[0].model_ips > 0 and results[0].batch == "auto (16)"
    assert "back-off to" in " ".join(results[1].notes)
    assert cuda_check.table(results).splitlines()[0] == cuda_check.HEADER and len(lines) == 4


def test_matting_rows_print_defaults_tuned_and_peers_as_table_and_markdown(monkeypatch):
    """The plan has default rows with peers and a labelled tuned row; the table, the peer lines and the markdown
    rows (with the command) come out of one measured row."""
    monkeypatch.syspath_prepend(str(BENCH))
    matting, run_all = _bench_module("matting"), _bench_module("run_all")
    cases = matting.plan(matting.build_parser().parse_args(["--tools", "rvm"]))
    assert [(c.group, c.resolution, c.batch, c.peers) for c in cases] == [
        ("defaults", "1080p", "default", True), ("defaults", "540p", "default", True), ("tuned", "1080p", 8, False)]
    row = {"tool": "rvm", "variant": "mobilenetv3", "group": "defaults", "device": "cpu", "resolution": "1080p",
           "cameras": 2, "frames": 12, "batch": "default", "batch_text": "auto (2)", "tool_ips": 6.0, "model_ips": 6.5,
           "efficiency": 0.92, "tool_rss": 2**30, "tool_cuda": None, "busy": 0.0,
           "peers": {"evc_rvm": {"ips": 3.0, "speedup": 2.0, "rss": 2 * 2**30, "cuda": None},
                     "rvm_convert_video": {"ips": 4.0, "speedup": 1.5, "rss": 2**29, "cuda": None}}}
    lines = matting.format_row(row).splitlines()
    assert "auto (2)" in lines[0] and "EasyVolcap's RVM script" in lines[1] and "tool 2.00x" in lines[1]
    table = matting.markdown([row], "python bench/matting.py").splitlines()
    assert table[0] == "`python bench/matting.py`:" and len(table) == 6
    assert "| RVM's convert_video | 4.00 | 1.50x | 512MB |" in table[-1]
    assert len(run_all.combined([], [row]).splitlines()) == 3


@pytest.mark.slow
def test_check_bench_child_and_accuracy_scene(tmp_path):
    """``bench/check.py``'s timed child runs the tool and reports its numbers; ``bench/check_accuracy.py``'s
    scoring of one scene (``easyvolcap.synthetic.scene.check_scene``) gives every mask a record, repairs of the flagged
    corrupted ones."""
    bench_check = _bench_module("check")
    root = bench_check.make_dataset(tmp_path / "d", 5, 2, (120, 160))
    out = subprocess.run([sys.executable, str(BENCH / "check.py"), "--child", str(root), "cpu"], check=True,
                         capture_output=True, text=True, timeout=300)
    numbers = json.loads(out.stdout.strip().splitlines()[-1])
    assert numbers["masks"] == 10 and numbers["seconds"] > 0 and numbers["peak_rss"] > 0
    from easyvolcap.synthetic.scene import check_scene

    records = check_scene(5, 1, 0)
    assert len(records) == 10 and sum(r["kind"] != "clean" for r in records) == 2
    assert all("iou" in r for r in records if r["kind"] != "clean" and r["flags"])


def test_png_bench_measures_every_encoder_on_every_image():
    out = subprocess.run([sys.executable, str(BENCH / "png.py"), "--size", "36", "64", "--count", "1", "--repeat", "1"],
                         capture_output=True, text=True, check=True, timeout=120).stdout.splitlines()
    assert out[0].split()[:4] == ["image", "encoder", "ms", "bytes"] and len(out) == 1 + 3 * 3
    assert {line.split("  ")[0] for line in out[1:]} == {"mask 0/255", "mask soft", "background RGBA"}
