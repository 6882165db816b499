"""Shared fixtures: tiny synthetic datasets and checkpoints of the official key layouts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from easyvolcap.demo import make_demo_dataset
from easyvolcap.synthetic import load_spec, synth_state_dict

PARITY = Path(__file__).parent / "parity"


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


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
