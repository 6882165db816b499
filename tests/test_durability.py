"""Outputs survive a power loss: data synced before the rename, in writer threads; an empty output is redone."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

import pytest
import torch
from stubs import ColourParser, RedChannelMatting
from torch import nn

from easyvolcap import image_io
from easyvolcap.detectors import WholeFrameDetector
from easyvolcap.layout import DatasetLayout
from easyvolcap.models.schp import label_set
from easyvolcap.runners.backgrounds import BackgroundOptions, run_backgrounds
from easyvolcap.runners.bgmv2 import Bgmv2Options, run_bgmv2
from easyvolcap.runners.rvm import RvmOptions, run_rvm
from easyvolcap.runners.schp import SchpOptions, run_schp

CPU = torch.device("cpu")


class DifferenceMatting(nn.Module):
    """A stand-in BGMv2: alpha is the mean absolute difference from the background."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone_name = "mobilenetv2"  # whose pass cost plans its batches

    def forward(self, src, bgr, **settings):
        return [(src - bgr).abs().mean(1, keepdim=True).clamp(0, 1), src]


RUNS: dict[str, tuple[str, Callable[[DatasetLayout], object]]] = {  # tool: (output folder, run)
    "rvm": ("rvm", lambda layout: run_rvm(layout, RedChannelMatting(), CPU, torch.float32, RvmOptions(), False)),
    "bgmv2": ("bgmtv2", lambda layout: run_bgmv2(layout, DifferenceMatting(), CPU, torch.float32, Bgmv2Options(),
                                                 False)),
    "schp": ("schp", lambda layout: run_schp(layout, WholeFrameDetector(), ColourParser(), label_set("cihp"), CPU,
                                             torch.float32, SchpOptions(), False)),
    "bkgd": ("bkgd_out", lambda layout: run_backgrounds(layout, BackgroundOptions(
        masks_dir="mask_png", mask_ext=".png", jump=1, bkgd_dir="bkgd_out"), False)),
}


@pytest.fixture
def layout(tiny_capture) -> DatasetLayout:
    return DatasetLayout.discover(tiny_capture)


@pytest.mark.parametrize("tool", RUNS)
def test_outputs_are_synced_before_the_rename_in_writer_threads(layout, tool, monkeypatch):
    """Every output's data reaches the disk before its name does, and no sync waits in the thread that
    runs the model."""
    synced, renamed, fsync, replace = {}, [], image_io.os.fsync, image_io.os.replace

    def recording_fsync(fd):
        fsync(fd)
        synced[os.readlink(f"/proc/self/fd/{fd}")] = (os.fstat(fd).st_size, threading.current_thread())

    def recording_replace(source, target):
        renamed.append(str(source))
        replace(source, target)

    monkeypatch.setattr(image_io.os, "fsync", recording_fsync)
    monkeypatch.setattr(image_io.os, "replace", recording_replace)
    RUNS[tool][1](layout)
    assert len(renamed) >= 2 and all(synced[source][0] > 0 for source in renamed)
    assert all(thread is not threading.main_thread() for _, thread in synced.values())


@pytest.mark.parametrize("tool", RUNS)
def test_a_zero_length_output_is_redone(layout, tool):
    """A renamed but empty file (what a power loss can leave without a sync) counts as missing."""
    folder, run = RUNS[tool]
    run(layout)
    files = {p: p.read_bytes() for p in sorted((layout.root / folder).rglob("*")) if p.is_file()}
    victim = sorted(files)[-1]
    victim.write_bytes(b"")
    run(layout)
    assert {p: p.read_bytes() for p in files} == files


def test_is_written(tmp_path):
    path = tmp_path / "mask.png"
    assert not image_io.is_written(path)
    path.write_bytes(b"")
    assert not image_io.is_written(path)
    path.write_bytes(b"x")
    assert image_io.is_written(path)
