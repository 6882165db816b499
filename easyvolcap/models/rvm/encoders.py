"""RVM backbones: MobileNetV3-Large and ResNet-50 (torchvision's module names), classifier heads removed.

Both take a batch of frames ``[N, 3, H, W]`` (RGB in [0, 1]) and return four feature maps at
1/2, 1/4, 1/8 and 1/16 of the input size. The last stage of each is dilated instead of strided,
so the deepest features stay at 1/16. Submodule names follow torchvision, which is what the
official checkpoints store under ``backbone.*``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..backbones import BlockConfig, MobileNetV3, ResNet

__all__ = ["MobileNetV3LargeEncoder", "ResNet50Encoder"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_bneck = BlockConfig

# MobileNetV3-Large (Howard et al. 2019, table 1) with the last stage dilated (stride 1, dilation 2).
# Columns: in, kernel, expanded, out, squeeze-excite, hard-swish (else ReLU), stride, dilation.
_MOBILENETV3_LARGE_DILATED = [
    _bneck(16, 3, 16, 16, False, False, 1, 1),
    _bneck(16, 3, 64, 24, False, False, 2, 1),
    _bneck(24, 3, 72, 24, False, False, 1, 1),
    _bneck(24, 5, 72, 40, True, False, 2, 1),
    _bneck(40, 5, 120, 40, True, False, 1, 1),
    _bneck(40, 5, 120, 40, True, False, 1, 1),
    _bneck(40, 3, 240, 80, False, True, 2, 1),
    _bneck(80, 3, 200, 80, False, True, 1, 1),
    _bneck(80, 3, 184, 80, False, True, 1, 1),
    _bneck(80, 3, 184, 80, False, True, 1, 1),
    _bneck(80, 3, 480, 112, True, True, 1, 1),
    _bneck(112, 3, 672, 112, True, True, 1, 1),
    _bneck(112, 5, 672, 160, True, True, 2, 2),
    _bneck(160, 5, 960, 160, True, True, 1, 2),
    _bneck(160, 5, 960, 160, True, True, 1, 2),
]


class MobileNetV3LargeEncoder(MobileNetV3):
    """MobileNetV3-Large features with ImageNet normalization built in.

    ``forward(x)``: ``x`` is ``[N, 3, H, W]`` RGB in [0, 1]; returns the outputs of ``features[1]``,
    ``[3]``, ``[6]`` and ``[16]``: 16, 24, 40 and 960 channels at 1/2, 1/4, 1/8 and 1/16.
    """

    channels = (16, 24, 40, 960)
    _taps = (1, 3, 6, 16)

    def __init__(self) -> None:
        super().__init__(_MOBILENETV3_LARGE_DILATED)
        self.make_constants()

    def make_constants(self) -> None:
        """The normalization buffers, on the CPU (not persistent: the official checkpoints hold none); called
        again after loading into a network built on the ``meta`` device."""
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN, device="cpu").view(3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD, device="cpu").view(3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = (x - self.mean) / self.std
        feats = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self._taps:
                feats.append(x)
        return feats  # [1/2, 1/4, 1/8, 1/16]


class ResNet50Encoder(ResNet):
    """ResNet-50 features; ``layer3`` is skipped as a tap and ``layer4`` is dilated.

    ``forward(x)``: ``x`` is ``[N, 3, H, W]`` RGB in [0, 1], fed without normalization (as the
    official model was trained); returns the stem (64 ch, 1/2), ``layer1`` (256, 1/4),
    ``layer2`` (512, 1/8) and ``layer4`` (2048, 1/16).
    """

    channels = (64, 256, 512, 2048)

    def __init__(self) -> None:
        super().__init__((3, 4, 6, 3), dilate=(False, False, True))

    def forward(self, x: Tensor) -> list[Tensor]:
        f1 = self.relu(self.bn1(self.conv1(x)))  # 1/2
        f2 = self.layer1(self.maxpool(f1))  # 1/4
        f3 = self.layer2(f2)  # 1/8
        f4 = self.layer4(self.layer3(f3))  # 1/16
        return [f1, f2, f3, f4]
