"""BGMv2 base decoder and the ASPP it sits on.

The ASPP is torchvision's DeepLabV3 ``ASPP(in_channels, [3, 6, 9])``: a 1x1 branch, three atrous
3x3 branches, a global-pooling branch, then a 1x1 projection to 256 channels, BN, ReLU and
``Dropout(0.5)`` (a no-op in eval). Its submodule names (``convs.N``, ``project``) are the official
``aspp.*`` keys; it is written out here rather than imported, since importing torchvision's model zoo
costs a second or more at every start.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ASPP", "Decoder"]


class _Pooling(nn.Sequential):
    """The global branch: average, 1x1 conv, BN, ReLU, stretched back to the input's size (bilinear)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Conv2d(in_channels, out_channels, 1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(super().forward(x), size=x.shape[-2:], mode="bilinear", align_corners=False)


def _conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size, padding=dilation if kernel_size > 1 else 0,
                                   dilation=dilation, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU())


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling (DeepLabV3): a 1x1 branch, one atrous 3x3 branch per rate and the global
    branch, concatenated and projected to ``out_channels``."""

    def __init__(self, in_channels: int, atrous_rates: Sequence[int], out_channels: int = 256) -> None:
        super().__init__()
        self.convs = nn.ModuleList([_conv_bn_relu(in_channels, out_channels, 1),
                                    *(_conv_bn_relu(in_channels, out_channels, 3, rate) for rate in atrous_rates),
                                    _Pooling(in_channels, out_channels)])
        self.project = nn.Sequential(nn.Conv2d(len(self.convs) * out_channels, out_channels, 1, bias=False),
                                     nn.BatchNorm2d(out_channels), nn.ReLU(), nn.Dropout(0.5))

    def forward(self, x: Tensor) -> Tensor:
        return self.project(torch.cat([branch(x) for branch in self.convs], dim=1))


class Decoder(nn.Module):
    """Three ``upsample -> cat[x, skip] -> conv3x3 -> BN -> ReLU`` stages, then ``conv4`` (3x3 with bias).

    Each upsampling is bilinear (``align_corners=False``) to the skip's size. The last stage
    concatenates the raw network input and produces the output channels without BN or activation.

    Args:
        in_channels: channels of the ASPP output.
        skip_channels: channels of the skips ``x3, x2, x1, x0`` (deepest first; ``x0`` is the input).
        channels: output channels of ``conv1, conv2, conv3, conv4``.
    """

    def __init__(self, in_channels: int, skip_channels: Sequence[int], channels: Sequence[int]) -> None:
        super().__init__()
        c1, c2, c3, c4 = channels
        s3, s2, s1, s0 = skip_channels
        self.conv1 = nn.Conv2d(in_channels + s3, c1, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c1)
        self.conv2 = nn.Conv2d(c1 + s2, c2, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c2)
        self.conv3 = nn.Conv2d(c2 + s1, c3, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(c3)
        self.conv4 = nn.Conv2d(c3 + s0, c4, 3, padding=1, bias=True)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor, skips: Sequence[Tensor]) -> Tensor:
        """``x`` is the ASPP output ``[B, in, h/16, w/16]``; ``skips`` are ``[x3, x2, x1, x0]``.

        Returns ``[B, channels[-1], h, w]`` at the size of ``x0``.
        """
        x3, x2, x1, x0 = skips
        x = self.relu(self.bn1(self.conv1(_upsample_cat(x, x3))))  # 1/8
        x = self.relu(self.bn2(self.conv2(_upsample_cat(x, x2))))  # 1/4
        x = self.relu(self.bn3(self.conv3(_upsample_cat(x, x1))))  # 1/2
        return self.conv4(_upsample_cat(x, x0))  # 1/1


def _upsample_cat(x: Tensor, skip: Tensor) -> Tensor:
    """Bilinear resize of ``x`` to ``skip``'s size (``align_corners=False``), then ``cat[x, skip]``."""
    x = F.interpolate(x, size=skip.shape[2:], mode="bilinear", align_corners=False)
    return torch.cat([x, skip], dim=1)
