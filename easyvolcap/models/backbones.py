"""ImageNet backbones (ResNet with bottlenecks, MobileNetV2, MobileNetV3) with torchvision's module names.

The official RVM and BGMv2 checkpoints store their backbones under torchvision's names (``layer1.0.conv1``,
``features.3.conv.1.0``, ``features.4.block.2.fc1``). These classes build the same module trees and compute
the same functions, in plain PyTorch: importing torchvision's model zoo costs a second or more at every start
(tests/test_backbones.py checks key names and outputs against torchvision's). Only what the matting models
use is here: no classifier heads, no weight initialisation (every parameter comes from a checkpoint).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor, nn

__all__ = ["BlockConfig", "ConvNormAct", "MobileNetV2", "MobileNetV3", "ResNet", "make_divisible"]


def make_divisible(value: float, divisor: int = 8) -> int:
    """``value`` rounded to a multiple of ``divisor``, never below 90% of it (the MobileNets' channel rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class ConvNormAct(nn.Sequential):
    """Convolution (no bias), batch norm, then an activation (``None``: none): keys ``0``, ``1`` (, ``2``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, groups: int = 1,
                 dilation: int = 1, activation: Callable[..., nn.Module] | None = nn.ReLU,
                 norm: Callable[[int], nn.Module] = nn.BatchNorm2d) -> None:
        layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride, (kernel_size - 1) // 2 * dilation,
                            dilation=dilation, groups=groups, bias=False), norm(out_channels)]
        if activation is not None:
            layers.append(activation(inplace=True))
        super().__init__(*layers)


class Bottleneck(nn.Module):
    """ResNet's bottleneck block (stride on the 3x3 conv): 1x1, 3x3, 1x1 (x4 channels), plus the shortcut."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += x if self.downsample is None else self.downsample(x)
        return self.relu(out)


class ResNet(nn.Module):
    """ResNet stem and four stages of bottlenecks (``blocks`` per stage); ``dilate[i]`` replaces the stride of
    stage ``i + 2`` by dilation, as torchvision's ``replace_stride_with_dilation``. Subclasses define
    ``forward``."""

    def __init__(self, blocks: tuple[int, int, int, int], dilate: tuple[bool, bool, bool] = (False, False, False),
                 in_channels: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self._channels, self._dilation = 64, 1
        self.layer1 = self._stage(64, blocks[0], 1, False)
        self.layer2 = self._stage(128, blocks[1], 2, dilate[0])
        self.layer3 = self._stage(256, blocks[2], 2, dilate[1])
        self.layer4 = self._stage(512, blocks[3], 2, dilate[2])

    def _stage(self, planes: int, count: int, stride: int, dilate: bool) -> nn.Sequential:
        first_dilation = self._dilation  # the first block keeps the previous stage's dilation
        if dilate:
            self._dilation, stride = self._dilation * stride, 1
        out_channels = planes * Bottleneck.expansion
        downsample = None
        if stride != 1 or self._channels != out_channels:
            downsample = nn.Sequential(nn.Conv2d(self._channels, out_channels, 1, stride, bias=False),
                                       nn.BatchNorm2d(out_channels))
        layers = [Bottleneck(self._channels, planes, stride, first_dilation, downsample)]
        layers += [Bottleneck(out_channels, planes, 1, self._dilation) for _ in range(1, count)]
        self._channels = out_channels
        return nn.Sequential(*layers)


class _InvertedResidualV2(nn.Module):
    """MobileNetV2's block: 1x1 expansion (unless ``expand`` is 1), 3x3 depthwise, linear 1x1 projection."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = in_channels * expand
        layers: list[nn.Module] = [] if expand == 1 else [ConvNormAct(in_channels, hidden, 1, activation=nn.ReLU6)]
        layers += [ConvNormAct(hidden, hidden, 3, stride, groups=hidden, activation=nn.ReLU6),
                   nn.Conv2d(hidden, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)]
        self.conv = nn.Sequential(*layers)
        self.use_res_connect = stride == 1 and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2's ``features`` (width 1.0): the stem, 17 inverted residual blocks and the 1x1 conv to 1280.
    Subclasses define ``forward``."""

    _SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1))  # expansion, channels, blocks, first stride

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvNormAct(in_channels, 32, 3, 2, activation=nn.ReLU6)]
        channels = 32
        for expand, out, count, stride in self._SETTING:
            out = make_divisible(out)
            for index in range(count):
                layers.append(_InvertedResidualV2(channels, out, stride if index == 0 else 1, expand))
                channels = out
        layers.append(ConvNormAct(channels, 1280, 1, activation=nn.ReLU6))
        self.features = nn.Sequential(*layers)


@dataclass(frozen=True)
class BlockConfig:
    """One MobileNetV3 block: channels in, kernel, expanded, out, squeeze-excite, hard-swish, stride, dilation."""

    in_channels: int
    kernel: int
    expanded: int
    out_channels: int
    squeeze_excite: bool
    hard_swish: bool
    stride: int
    dilation: int


class _SqueezeExcite(nn.Module):
    """Channel attention: global average, 1x1 down (ReLU), 1x1 up, hard sigmoid, times the input."""

    def __init__(self, channels: int, squeezed: int) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeezed, 1)
        self.fc2 = nn.Conv2d(squeezed, channels, 1)
        self.activation = nn.ReLU()
        self.scale_activation = nn.Hardsigmoid()

    def forward(self, x: Tensor) -> Tensor:
        return self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x))))) * x


def _norm_v3(channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels, eps=0.001, momentum=0.01)


class _InvertedResidualV3(nn.Module):
    """MobileNetV3's block: expansion, depthwise (stride 1 where dilated), squeeze-excite, linear projection."""

    def __init__(self, c: BlockConfig) -> None:
        super().__init__()
        act = nn.Hardswish if c.hard_swish else nn.ReLU
        layers: list[nn.Module] = []
        if c.expanded != c.in_channels:
            layers.append(ConvNormAct(c.in_channels, c.expanded, 1, activation=act, norm=_norm_v3))
        layers.append(ConvNormAct(c.expanded, c.expanded, c.kernel, 1 if c.dilation > 1 else c.stride, c.expanded,
                                  c.dilation, activation=act, norm=_norm_v3))
        if c.squeeze_excite:
            layers.append(_SqueezeExcite(c.expanded, make_divisible(c.expanded // 4)))
        layers.append(ConvNormAct(c.expanded, c.out_channels, 1, activation=None, norm=_norm_v3))
        self.block = nn.Sequential(*layers)
        self.use_res_connect = c.stride == 1 and c.in_channels == c.out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = self.block(x)
        if self.use_res_connect:
            out += x
        return out


class MobileNetV3(nn.Module):
    """MobileNetV3's ``features``: the hard-swish stem, the ``setting`` blocks and the 1x1 conv to 6x the last
    channels. Subclasses define ``forward``."""

    def __init__(self, setting: list[BlockConfig]) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvNormAct(3, setting[0].in_channels, 3, 2, activation=nn.Hardswish,
                                               norm=_norm_v3)]
        layers += [_InvertedResidualV3(c) for c in setting]
        last = setting[-1].out_channels
        layers.append(ConvNormAct(last, 6 * last, 1, activation=nn.Hardswish, norm=_norm_v3))
        self.features = nn.Sequential(*layers)
