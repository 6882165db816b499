"""Shared fixtures: tiny synthetic datasets and checkpoints of the official key layouts."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest
import torch

from easyvolcap.image_io import write_image
from easyvolcap.synthetic.capture import background, make_demo_dataset
from easyvolcap.synthetic.weights import load_spec, synth_state_dict

PARITY = Path(__file__).parent / "parity"


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


BGMV2_SIZES = {"00": (48, 64), "01": (48, 64), "02": (42, 58)}  # camera 02 is not a multiple of 4 (padded)


def bgmv2_scene(parent: Path, frames: int) -> Path:
    """3 cameras (:data:`BGMV2_SIZES`) x ``frames`` lossless frames and each camera's background in bkgd/."""
    root = make_demo_dataset(parent / "data", cameras=3, frames=frames, size=(48, 64), odd_size=(42, 58), ext=".png")
    for c, (camera, size) in enumerate(BGMV2_SIZES.items()):
        write_image(root / "bkgd" / f"{camera}.png", background(*size, seed=c))
    return root


@pytest.fixture
def tiny_capture(tmp_path) -> Path:
    """2 cameras x 3 frames of 32x48, with truth masks in ``mask_png/`` and backgrounds in ``bkgd/``."""
    root = make_demo_dataset(tmp_path / "data", cameras=2, frames=3, size=(32, 48), odd_size=None)
    shutil.copytree(root / "gt_masks", root / "mask_png")
    for c in range(2):
        write_image(root / "bkgd" / f"{c:02d}.png", background(32, 48, seed=c))
    return root


@pytest.fixture(scope="session")
def rvm_checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Official-layout RVM checkpoints with synthesized weights, one file per variant."""
    folder = tmp_path_factory.mktemp("checkpoints")
    paths = {}
    for variant in ("mobilenetv3", "resnet50"):
        paths[variant] = folder / f"rvm_{variant}.pth"
        torch.save(synth_state_dict(load_spec(PARITY / f"rvm_{variant}.keys.json")), paths[variant])
    return paths


@pytest.fixture
def dataset(tmp_path) -> Path:
    """3 cameras x 5 frames, 48x64 images, the last camera 40x56."""
    return make_demo_dataset(tmp_path / "data", cameras=3, frames=5, size=(48, 64), odd_size=(40, 56))


class _TorchScriptWrapper(torch.nn.Module):
    """The shape of BGMv2's official TorchScript export: the network under ``model``, settings hoisted."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.backbone_scale = 0.25
        self.refine_mode = "sampling"
        self.refine_sample_pixels = 80_000

    def forward(self, src: torch.Tensor, bgr: torch.Tensor):
        return self.model(src, bgr)


@pytest.fixture(scope="session")
def bgmv2_checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Official-layout BGMv2 files with synthesized weights: ``pytorch_<b>.pth`` for every backbone and
    ``torchscript_mobilenetv2_fp32.pth`` / ``_fp16.pth`` archives traced from our own model."""
    from easyvolcap.models.bgmv2 import MattingRefine

    folder = tmp_path_factory.mktemp("bgmv2")
    paths = {}
    for backbone in ("mobilenetv2", "resnet50", "resnet101"):
        paths[f"pytorch_{backbone}"] = folder / f"pytorch_{backbone}.pth"
        torch.save(synth_state_dict(load_spec(PARITY / f"bgmv2_{backbone}.keys.json")), paths[f"pytorch_{backbone}"])
    model = MattingRefine("mobilenetv2", refine_mode="full").eval()
    model.load_state_dict(torch.load(paths["pytorch_mobilenetv2"], weights_only=True))
    for precision, dtype in (("fp32", torch.float32), ("fp16", torch.float16)):
        example = (torch.rand(1, 3, 32, 32, dtype=dtype), torch.rand(1, 3, 32, 32, dtype=dtype))
        wrapper = _TorchScriptWrapper(model).to(dtype).eval()
        paths[f"torchscript_mobilenetv2_{precision}"] = folder / f"torchscript_mobilenetv2_{precision}.pth"
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer chatter: this archive only carries weights
            torch.jit.trace(wrapper, example, check_trace=False).save(paths[f"torchscript_mobilenetv2_{precision}"])
    return paths


@pytest.fixture(scope="session")
def schp_checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Official-layout SCHP files ``{'state_dict': {'module.<key>': ...}}`` with synthesized weights."""
    folder = tmp_path_factory.mktemp("schp")
    paths = {}
    for dataset, file_name in (("lip", "exp-schp-201908261155-lip.pth"), ("atr", "exp-schp-201908301523-atr.pth")):
        paths[dataset] = folder / file_name
        torch.save({"state_dict": synth_state_dict(load_spec(PARITY / f"schp_{dataset}.keys.json")), "epoch": 150},
                   paths[dataset])
    return paths
