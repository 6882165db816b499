"""Robust Video Matting's facts, declared as data: its variants, the official checkpoints (release v1.0.0),
the memory cost of a pass and the internal-scale rule. Adding a backbone: its encoder class in
``encoders.py`` and one entry in ``VARIANTS`` here."""

from __future__ import annotations

from dataclasses import dataclass

from .._checkpoint import Checkpoint, PassCost

__all__ = ["AUTO_LONG_SIDE", "CHECKPOINTS", "DEFAULT_VARIANT", "VARIANTS", "Variant", "internal_scale"]

_RELEASE = "https://github.com/PeterL1n/RobustVideoMatting/releases/download/v1.0.0/"


@dataclass(frozen=True)
class Variant:
    """One backbone of the network: its encoder, channel widths, a key only its files hold, its pass cost."""

    encoder: str  # class name in models/rvm/encoders.py
    aspp_channels: int  # LR-ASPP output channels
    decoder_channels: tuple[int, int, int, int]  # decode3 .. decode0
    signature: str  # a state-dict key only this variant's files hold
    cost: PassCost  # measured by bench/batch_sweep.py


VARIANTS = {
    "mobilenetv3": Variant("MobileNetV3LargeEncoder", 128, (80, 40, 32, 16), "backbone.features.0.0.weight",
                           PassCost(full=120.0, low=700.0, fixed=0.0, base=0.75e9)),
    "resnet50": Variant("ResNet50Encoder", 256, (128, 64, 32, 16), "backbone.layer1.0.conv1.weight",
                        PassCost(full=120.0, low=750.0, fixed=0.0, base=0.85e9)),
}
DEFAULT_VARIANT = "resnet50"  # EasyVolcap's

CHECKPOINTS = {  # RGB in [0, 1] at any size, no normalisation; output: alpha and foreground
    name: Checkpoint(variant=name, file_name=f"rvm_{name}.pth", url=_RELEASE + f"rvm_{name}.pth",
                     license="GPL-3.0 (code); the weights carry no separate licence",
                     source="https://github.com/PeterL1n/RobustVideoMatting#download",
                     classes=("alpha",), signature=variant.signature)
    for name, variant in VARIANTS.items()
}

AUTO_LONG_SIDE = 512  # --downsample_ratio auto: the internal resolution's long side, in pixels


def internal_scale(size: tuple[int, int], downsample_ratio: float | None = None) -> float:
    """The downsample ratio used for images of ``size`` (height, width): ``downsample_ratio``, or when
    ``None`` (auto) at most ``AUTO_LONG_SIDE`` pixels on the long side, never upsampled."""
    return downsample_ratio if downsample_ratio is not None else min(AUTO_LONG_SIDE / max(size), 1.0)
