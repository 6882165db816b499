"""Sharding: --shard I/N (or SLURM's array variables) splits cameras; the union equals one run."""

from __future__ import annotations

import argparse
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from stubs import ColourParser, RedChannelMatting

from easyvolcap.cli import backgrounds, bgmv2, resolve_shard, rvm, shard_spec
from easyvolcap.detectors import WholeFrameDetector
from easyvolcap.errors import EvcError
from easyvolcap.image_io import write_image
from easyvolcap.layout import DatasetLayout
from easyvolcap.models.schp import label_set
from easyvolcap.runners.schp import SchpOptions, run_schp
from easyvolcap.synthetic.capture import background, make_demo_dataset


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


def matting_args(tool: str, data: Path, rvm_checkpoints, bgmv2_checkpoints) -> list[str]:
    if tool == "rvm":
        return ["--data_root", str(data), "--variant", "mobilenetv3", "--chkpt_path",
                str(rvm_checkpoints["mobilenetv3"]), "--batch_size", "3", "--workers", "2", "--no_preview"]
    for c in range(5):
        write_image(data / "bkgd" / f"{c:02d}.png", background(*((30, 40) if c == 4 else (36, 48)), seed=c))
    return ["--data_root", str(data), "--chkpt_path", str(bgmv2_checkpoints["pytorch_mobilenetv2"]),
            "--batch_size", "3", "--workers", "2", "--no_preview"]


@pytest.mark.parametrize("tool", ["rvm", "bgmv2"])
def test_matting_shards_union_is_byte_identical(data, tool, rvm_checkpoints, bgmv2_checkpoints):
    main = {"rvm": rvm.main, "bgmv2": bgmv2.main}[tool]
    common = matting_args(tool, data, rvm_checkpoints, bgmv2_checkpoints)
    assert main([*common, "--device", "cpu", "--mask_dir", "whole"]) == 0
    for i in range(3):
        assert main([*common, "--device", "cpu", "--mask_dir", "parts", "--shard", f"{i}/3"]) == 0
    whole, parts = outputs(data, ("whole",)), outputs(data, ("parts",))
    assert len(whole) == 20 and list(whole.values()) == list(parts.values())


def test_two_devices_write_what_one_device_writes(data, rvm_checkpoints, bgmv2_checkpoints, capsys):
    """``--device cpu,cpu`` writes the same files as ``--device cpu``, up to CPU rounding: each worker
    runs with fewer threads, and oneDNN's kernels then split their sums differently, which can move a
    mask by one level at rare pixels (see the readme's Scaling out)."""
    common = [*matting_args("rvm", data, rvm_checkpoints, bgmv2_checkpoints), "--mask_ext", ".png"]
    assert rvm.main([*common, "--device", "cpu", "--mask_dir", "one"]) == 0
    capsys.readouterr()
    assert rvm.main([*common, "--device", "cpu,cpu", "--mask_dir", "two"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith(f"rvm: wrote 20 masks to {data / 'two'} (5 cameras processed")
    one, two = outputs(data, ("one",)), outputs(data, ("two",))
    assert [name.split("/", 1)[1] for name in one] == [name.split("/", 1)[1] for name in two]
    for a, b in zip(one.values(), two.values(), strict=True):
        a, b = (cv2.imdecode(np.frombuffer(x, np.uint8), cv2.IMREAD_UNCHANGED).astype(int) for x in (a, b))
        assert np.abs(a - b).max() <= 1 and (a != b).mean() < 0.01


def test_a_failing_worker_is_one_line_naming_its_device(data, rvm_checkpoints, bgmv2_checkpoints, capsys):
    common = matting_args("rvm", data, rvm_checkpoints, bgmv2_checkpoints)
    (data / "images" / "01" / "000002.png").write_bytes(b"broken")
    assert rvm.main([*common, "--device", "cpu,cpu"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"rvm: error: [cpu] {data / 'images' / '01' / '000002.png'}: not a readable image "
                   "(corrupt or unsupported format)"]


def test_background_shards_started_together_keep_each_others_temporary_files(data, monkeypatch):
    """Shard 0 is stopped with its first background still a temporary file while shard 1 starts, cleans
    up and finishes; shard 0 then renames its file into place."""
    from easyvolcap import image_io
    from easyvolcap.runners.backgrounds import BackgroundOptions, run_backgrounds

    replace, in_flight, other_done = image_io.os.replace, threading.Event(), threading.Event()

    def paused_replace(source, target):
        if Path(target).name == "00.png" and not other_done.is_set():
            in_flight.set()
            other_done.wait(60)
        replace(source, target)

    monkeypatch.setattr(image_io.os, "replace", paused_replace)
    options = BackgroundOptions(mask_ext=".png", jump=1, workers=1)
    (data / "bkgd").mkdir()
    (data / "bkgd" / ".01.png.killed12.tmp").write_bytes(b"left by a killed run of shard 1")
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(run_backgrounds, DatasetLayout.discover(data, shard=(0, 2)), options, False)
        assert in_flight.wait(60), first.exception()
        assert [p.name for p in (data / "bkgd").glob(".00.png.*.tmp")]  # shard 0's file, being written
        try:
            second = run_backgrounds(DatasetLayout.discover(data, shard=(1, 2)), options, False)
        finally:
            other_done.set()
        assert first.result().written == ["00", "02", "04"] and second.written == ["01", "03"]
    assert sorted(p.name for p in (data / "bkgd").iterdir()) == [f"{c:02d}.png" for c in range(5)]


@pytest.mark.parametrize("tool", ["rvm", "schp"])
def test_matting_shards_clean_only_their_own_cameras_temporary_files(data, tool):
    from easyvolcap.runners.rvm import RvmOptions, run_rvm

    folders = {"rvm": ["rvm"], "schp": ["mask", "schp"]}[tool]
    for folder in folders:
        for camera in ("00", "01"):
            (data / folder / camera).mkdir(parents=True, exist_ok=True)
            (data / folder / camera / ".000000.png.inflight.tmp").write_bytes(b"partial")
    layout = DatasetLayout.discover(data, shard=(1, 2))  # cameras 01 and 03
    if tool == "rvm":
        run_rvm(layout, RedChannelMatting(), torch.device("cpu"), torch.float32, RvmOptions(mask_ext=".png"), False)
    else:
        run_schp(layout, WholeFrameDetector(), ColourParser(), label_set("cihp"), torch.device("cpu"), torch.float32,
                 SchpOptions(overwrite=True), False)
    for folder in folders:
        assert (data / folder / "00" / ".000000.png.inflight.tmp").exists()  # shard 0's camera: not ours
        assert not (data / folder / "01" / ".000000.png.inflight.tmp").exists()
