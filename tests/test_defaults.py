"""The defaults that change what the tools write, pinned: a change to any of them must be deliberate (this file
changes with it, and the readme). The tool-level tests run on frames wider than 512 pixels, so the internal
scales the rules pick are not simply 1."""

from __future__ import annotations

import importlib

import pytest
import torch
from torch import nn

from easyvolcap.detectors import SCORE_THRESHOLD
from easyvolcap.image_io import write_image
from easyvolcap.layout import DatasetLayout
from easyvolcap.models.bgmv2.checkpoints import DEFAULT_BACKBONE_SCALE, refine_settings
from easyvolcap.models.rvm.checkpoints import AUTO_LONG_SIDE, DEFAULT_VARIANT, internal_scale
from easyvolcap.runners.bgmv2 import Bgmv2Options, run_bgmv2
from easyvolcap.runners.rvm import RvmOptions, run_rvm
from easyvolcap.synthetic.capture import background, make_demo_dataset

CPU = torch.device("cpu")
WIDE = (135, 1040)  # long side over 512: RVM's auto ratio is 512/1040


# flag: default, for each flag whose default changes the bytes a tool writes (or which frames it reads)
OUTPUT_DEFAULTS = {
    "rvm": {"mask_ext": ".jpg", "quality": 85, "downsample_ratio": None, "image_dir": "images", "decode": "auto",
            "variant": None},  # None: the checkpoint's variant (DEFAULT_VARIANT's file without --chkpt_path)
    "bgmv2": {"mask_ext": ".jpg", "quality": 85, "decode": "auto", "backbone_scale": 0.25, "refine_mode": "sampling",
              "refine_sample_pixels": 80_000, "refine_threshold": 0.1, "bkgd_dir": "bkgd"},
    "schp": {"dataset": "cihp", "detector": "torchvision", "restore": "logits", "quality": 85},
    "backgrounds": {"jump": 10, "dilation": 20, "method": "mean", "ext": ".png", "quality": 95, "fill_holes": False,
                    "masks_dir": "rvm", "mask_ext": None, "threshold": 0.5},
    "merge": {"dilation": 20, "threshold": 0.5, "rvm_ext": None, "schp_ext": None, "out_ext": None},
    "invert": {"masks_dir": "merged_mask", "mask_ext": None, "threshold": 0.5},
    "visualize": {"masks_dir": "rvm", "mask_ext": None, "threshold": 0.5},
    "check": {"work_size": 240, "masks_dir": "rvm", "mask_ext": None, "threshold": 0.5},
}


@pytest.mark.parametrize("tool", sorted(OUTPUT_DEFAULTS))
def test_cli_defaults_that_change_outputs(tool):
    args = vars(importlib.import_module(f"easyvolcap.cli.{tool}").build_parser().parse_args(["--data_root", "x"]))
    assert {flag: args[flag] for flag in OUTPUT_DEFAULTS[tool]} == OUTPUT_DEFAULTS[tool]


def test_model_rules_that_change_outputs():
    assert (AUTO_LONG_SIDE, DEFAULT_VARIANT, DEFAULT_BACKBONE_SCALE, SCORE_THRESHOLD) == (512, "resnet50", 0.25, 0.5)
    assert internal_scale((1080, 1920)) == 512 / 1920 and internal_scale((2160, 3840)) == 512 / 3840
    assert internal_scale((300, 400)) == 1.0 and internal_scale((1080, 1920), 0.25) == 0.25  # never upsampled
    assert refine_settings((2160, 3840), None, 80_000) == (0.125, 320_000)  # auto: scaled with the area


class RecordingRvm(nn.Module):
    """A stand-in RVM that records the downsample ratio of every pass."""

    variant = "mobilenetv3"

    def __init__(self) -> None:
        super().__init__()
        self.ratios: list[float] = []

    def forward(self, src, r1=None, r2=None, r3=None, r4=None, downsample_ratio=1.0):
        self.ratios.append(downsample_ratio)
        state = torch.zeros(1)
        return [src, src[:, :, :1], state, state, state, state]


class RecordingBgmv2(nn.Module):
    """A stand-in BGMv2 that records every pass's settings."""

    backbone_name = "mobilenetv2"

    def __init__(self) -> None:
        super().__init__()
        self.settings: list[dict] = []

    def forward(self, src, bgr, **settings):
        self.settings.append(settings)
        return [src[:, :1], src]


@pytest.fixture
def wide(tmp_path):
    root = make_demo_dataset(tmp_path / "data", cameras=1, frames=2, size=WIDE, odd_size=None)
    write_image(root / "bkgd" / "00.png", background(*WIDE, seed=0))
    return DatasetLayout.discover(root)


def test_rvm_tool_runs_at_the_auto_ratio(wide):
    model = RecordingRvm()
    run_rvm(wide, model, CPU, torch.float32, RvmOptions(), progress=False)
    assert model.ratios and set(model.ratios) == {512 / 1040}


def test_bgmv2_tool_passes_easyvolcaps_refine_settings(wide):
    model = RecordingBgmv2()
    run_bgmv2(wide, model, CPU, torch.float32, Bgmv2Options(), progress=False)
    assert model.settings and all(s == {"backbone_scale": 0.25, "refine_mode": "sampling", "sample_pixels": 80_000,
                                        "threshold": 0.1} for s in model.settings)
