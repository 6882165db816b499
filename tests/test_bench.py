"""The benchmark's measured workloads run and measure what they say (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from easyvolcap.demo import background, make_demo_dataset
from easyvolcap.image_io import write_image

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
def test_tool_model_and_loop_workloads(tmp_path, tool):
    root = make_demo_dataset(tmp_path / "d", cameras=1, frames=2, size=(48, 64), odd_size=None)
    write_image(root / "bkgd" / "00.png", background(48, 64, seed=0))
    variant, keys = SPECS[tool]
    weights = tmp_path / "weights.pth"
    workload({"mode": "weights", "keys": str(PARITY / f"{keys}.keys.json"), "out": str(weights)})
    spec = {"tool": tool, "variant": variant, "root": str(root), "weights": str(weights), "batch": 2,
            "device": "cpu", "workers": 2, "mask_dir": "bench_masks", "decode": "device"}
    measured = workload({**spec, "mode": "tool"})
    assert set(measured) == {"tool", "model"}
    for kind in ("tool", "model"):
        assert measured[kind]["images"] == 2 and measured[kind]["seconds"] > 0 and measured[kind]["device"] == "cpu"
    assert len(list((root / "bench_masks" / "00").iterdir())) == 2
    loop = workload({**spec, "mode": "loop", "mask_dir": "loop_masks"})["loop"]
    assert loop["images"] == 2 and len(list((root / "loop_masks" / "00").iterdir())) == 2
