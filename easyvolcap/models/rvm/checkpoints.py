"""The official RVM checkpoints (release v1.0.0), declared as data."""

from __future__ import annotations

from .._checkpoint import Checkpoint

__all__ = ["CHECKPOINTS", "DEFAULT_VARIANT"]

DEFAULT_VARIANT = "resnet50"  # EasyVolcap's (torch.hub.load("PeterL1n/RobustVideoMatting", "resnet50"))

_RELEASE = "https://github.com/PeterL1n/RobustVideoMatting/releases/download/v1.0.0/"
_SIGNATURES = {"mobilenetv3": "backbone.features.0.0.weight", "resnet50": "backbone.layer1.0.conv1.weight"}

CHECKPOINTS = {  # RGB in [0, 1] at any size, no normalisation; output: alpha and foreground
    variant: Checkpoint(variant=variant, file_name=f"rvm_{variant}.pth", url=_RELEASE + f"rvm_{variant}.pth",
                        license="GPL-3.0 (code); the weights carry no separate licence",
                        source="https://github.com/PeterL1n/RobustVideoMatting#download",
                        classes=("alpha",), signature=signature)
    for variant, signature in _SIGNATURES.items()
}
