"""BGMv2 backbones: ResNet-50/101 and MobileNetV2 (torchvision's module names) taking a 6-channel input.

Both take ``x = cat[src, bgr]`` ``[B, 6, H, W]`` (two RGB images in [0, 1], no ImageNet
normalization) and return five feature maps, shallowest first:

=====  ======  ==============  ======================
name   stride  ResNet          MobileNetV2
=====  ======  ==============  ======================
x0     1       the input (6)   the input (6)
x1     1/2     stem (64)       ``features[1]`` (16)
x2     1/4     layer1 (256)    ``features[3]`` (24)
x3     1/8     layer2 (512)    ``features[6]`` (32)
x4     1/16    layer4 (2048)   ``features[17]`` (320)
=====  ======  ==============  ======================

The last stage of each is dilated instead of strided, so ``x4`` stays at 1/16. Submodule names
follow torchvision, which is what the official checkpoints store under ``backbone.*``.
"""

from __future__ import annotations

from torch import Tensor

from ..backbones import MobileNetV2, ResNet

__all__ = ["MobileNetV2Encoder", "ResNetEncoder"]

_RESNET_LAYERS = {"resnet50": (3, 4, 6, 3), "resnet101": (3, 4, 23, 3)}


class ResNetEncoder(ResNet):
    """ResNet-50 or -101 (Bottleneck, stride on the 3x3) with a ``in_channels``-channel ``conv1``.

    ``layer4`` is dilated (stride 1, dilation 2); ``avgpool`` and ``fc`` are removed.
    ``forward(x)``: ``x`` is ``[B, in_channels, H, W]``; returns ``[x0, x1, x2, x3, x4]`` (module docstring).
    """

    def __init__(self, variant: str = "resnet50", in_channels: int = 6) -> None:
        if variant not in _RESNET_LAYERS:
            raise ValueError(f"Unknown ResNet variant {variant!r}; expected one of {tuple(_RESNET_LAYERS)}.")
        super().__init__(_RESNET_LAYERS[variant], dilate=(False, False, True), in_channels=in_channels)
        self.channels = (in_channels, 64, 256, 512, 2048)

    def forward(self, x: Tensor) -> list[Tensor]:
        x1 = self.relu(self.bn1(self.conv1(x)))  # 1/2
        x2 = self.layer1(self.maxpool(x1))  # 1/4
        x3 = self.layer2(x2)  # 1/8
        x4 = self.layer4(self.layer3(x3))  # 1/16 (layer3 strided, layer4 dilated)
        return [x, x1, x2, x3, x4]


class MobileNetV2Encoder(MobileNetV2):
    """MobileNetV2 features with a ``in_channels``-channel first conv and the last 1280-channel conv removed.

    ``features[14]`` (the first 160-channel block) keeps stride 1 instead of 2, and the depthwise
    convs of ``features[15..17]`` get dilation 2 (padding 2).
    ``forward(x)``: ``x`` is ``[B, in_channels, H, W]``; returns ``[x0, x1, x2, x3, x4]`` (module docstring).
    """

    _taps = (1, 3, 6, 17)  # outputs of these feature blocks are x1..x4

    def __init__(self, in_channels: int = 6) -> None:
        super().__init__(in_channels)
        del self.features[18]  # the 1x1 conv to 1280 channels; keys "0".."17" are kept
        # Dilate the last stage instead of striding it. Only the depthwise 3x3 conv (conv[1][0]) of each
        # block has a spatial extent; changing its attributes leaves the parameters (and keys) untouched.
        # ``use_res_connect`` was fixed at construction and stays False for features[14] (96 -> 160).
        self.features[14].conv[1][0].stride = (1, 1)
        for block in self.features[15:]:
            block.conv[1][0].dilation = (2, 2)
            block.conv[1][0].padding = (2, 2)
        self.channels = (in_channels, 16, 24, 32, 320)

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = [x]
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self._taps:
                feats.append(x)
        return feats  # [1/1, 1/2, 1/4, 1/8, 1/16]
