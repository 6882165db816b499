"""Sharding: --shard I/N (or SLURM's array variables) splits cameras; the union equals one run."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch
from stubs import ColourParser

from easyvolcap.cli import backgrounds, resolve_shard, shard_spec
from easyvolcap.demo import make_demo_dataset
from easyvolcap.detectors import WholeFrameDetector
from easyvolcap.errors import EvcError
from easyvolcap.layout import DatasetLayout
from easyvolcap.models.schp import label_set
from easyvolcap.runners.schp import SchpOptions, run_schp


def outputs(root: Path, folders: tuple[str, ...]) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for folder in folders
            for p in sorted((root / folder).rglob("*")) if p.is_file()}


@pytest.fixture
def data(tmp_path) -> Path:
    root = make_demo_dataset(tmp_path / "d", cameras=5, frames=4, size=(36, 48), odd_size=(30, 40), ext=".png")
    (root / "gt_masks").rename(root / "mask")
    return root


def test_shard_spec_and_slurm(monkeypatch):
    assert shard_spec("1/4") == (1, 4)
    for bad in ("4/4", "x/2", "1/0", "-1/3"):
        with pytest.raises(argparse.ArgumentTypeError):
            shard_spec(bad)
    args = argparse.Namespace(shard=None)
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID", raising=False)
    assert resolve_shard(args) is None
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "4")
    assert resolve_shard(args) == (3, 4)
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "1")  # sbatch --array=1-4
    assert resolve_shard(args) == (2, 4)
    assert resolve_shard(argparse.Namespace(shard=(0, 2))) == (0, 2)  # the flag wins
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "9")
    with pytest.raises(EvcError, match="is not one of 4 parts"):
        resolve_shard(args)


def test_shards_partition_the_cameras(data):
    everything = [c.name for c in DatasetLayout.discover(data).cameras]
    parts = [[c.name for c in DatasetLayout.discover(data, shard=(i, 3)).cameras] for i in range(3)]
    assert sorted(name for part in parts for name in part) == everything and parts[0] == ["00", "03"]
    assert DatasetLayout.discover(data, shard=(6, 7)).cameras == ()  # more shards than cameras: empty, no error


def test_background_shards_union_is_byte_identical(data, capsys):
    common = ["--data_root", str(data), "--mask_ext", ".png", "--jump", "1", "--no_preview"]
    assert backgrounds.main([*common, "--bkgd_dir", "whole"]) == 0
    for i in range(3):
        assert backgrounds.main([*common, "--bkgd_dir", "parts", "--shard", f"{i}/3"]) == 0
    whole, parts = outputs(data, ("whole",)), outputs(data, ("parts",))
    assert len(whole) == 5 and list(whole.values()) == list(parts.values())


def test_schp_shards_union_is_byte_identical(data):
    def run(shard, folder):
        layout = DatasetLayout.discover(data, shard=shard)
        run_schp(layout, WholeFrameDetector(), ColourParser(), label_set("cihp"), torch.device("cpu"), torch.float32,
                 SchpOptions(mask_dir=f"{folder}_mask", schp_dir=f"{folder}_schp", frames_per_batch=3))
    run(None, "whole")
    for i in range(2):
        run((i, 2), "parts")
    whole = outputs(data, ("whole_mask", "whole_schp"))
    parts = outputs(data, ("parts_mask", "parts_schp"))
    assert len(whole) == 40 and list(whole.values()) == list(parts.values())


def test_empty_shard_is_a_warning_not_an_error(data, capsys):
    assert backgrounds.main(["--data_root", str(data), "--mask_ext", ".png", "--shard", "7/9"]) == 0
    captured = capsys.readouterr()
    assert "shard 7/9 has no cameras" in captured.err and "wrote 0 backgrounds" in captured.out
