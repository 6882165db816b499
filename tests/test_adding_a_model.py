"""The readme's "Adding a model": a new RVM backbone is its encoder plus one entry in ``models/rvm/checkpoints.py``;
the network, the batch planning, the runner and the CLI's choices follow from that entry."""

from __future__ import annotations

import itertools

import torch
from torch import nn

from easyvolcap.cli import rvm as rvm_cli
from easyvolcap.layout import DatasetLayout
from easyvolcap.models._checkpoint import PassCost
from easyvolcap.models.rvm import checkpoints, encoders
from easyvolcap.models.rvm.model import MattingNetwork
from easyvolcap.runners.rvm import RvmOptions, run_rvm


class TinyEncoder(nn.Module):
    """A made-up backbone: four strided convolutions, features at 1/2, 1/4, 1/8 and 1/16."""

    channels = (8, 12, 16, 24)

    def __init__(self) -> None:
        super().__init__()
        sides = (3, *self.channels)
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, 2, 1) for a, b in itertools.pairwise(sides))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for conv in self.convs:
            x = conv(x).relu()
            features.append(x)
        return features


def test_an_rvm_backbone_is_its_encoder_and_one_declaration(dataset, monkeypatch):
    monkeypatch.setattr(encoders, "TinyEncoder", TinyEncoder, raising=False)
    monkeypatch.setitem(checkpoints.VARIANTS, "tiny", checkpoints.Variant(
        "TinyEncoder", 32, (24, 16, 12, 16), "backbone.convs.0.weight",
        PassCost(full=100.0, low=200.0, fixed=0.0, base=0.5e9, cpu_max=2)))
    model = MattingNetwork("tiny").eval()
    assert "tiny" in rvm_cli.build_parser().parse_args(["--data_root", "x", "--variant", "tiny"]).variant
    layout = DatasetLayout.discover(dataset)
    report = run_rvm(layout, model, torch.device("cpu"), torch.float32, RvmOptions(mask_ext=".png"), progress=False)
    assert report.masks_written == sum(len(camera) for camera in layout.cameras)
    assert set(report.batch_sizes.values()) == {2}  # its own declared cap
