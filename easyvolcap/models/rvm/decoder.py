"""RVM recurrent decoder: ConvGRU-gated upsampling blocks, output block and 1x1 projections.

Time-series idiom: every module here sees frames flattened to ``[N = B*T, C, h, w]``. Only the
ConvGRU needs the time axis; its caller passes ``batch = B`` and it unflattens ``N -> (B, T)``,
steps through T and flattens back. Recurrent states are always ``[B, C, h, w]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ConvGRU", "OutputBlock", "Projection", "RecurrentDecoder", "UpsamplingBlock"]


def _upsample_to(x: Tensor, like: Tensor) -> Tensor:
    """Bilinear x2 (``align_corners=False``), then crop to ``like``'s spatial size."""
    x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
    return x[:, :, : like.shape[-2], : like.shape[-1]]


def _conv_bn_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


class ConvGRU(nn.Module):
    """Convolutional GRU over time.

    ``forward(x, h, batch)``: ``x`` is ``[B*T, C, h, w]``, ``h`` is ``[B, C, h, w]`` or ``None``
    (zeros). Returns the hidden state after every frame, ``[B*T, C, h, w]``, and the last one.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.ih = nn.Sequential(nn.Conv2d(channels * 2, channels * 2, 3, padding=1), nn.Sigmoid())
        self.hh = nn.Sequential(nn.Conv2d(channels * 2, channels, 3, padding=1), nn.Tanh())

    def step(self, x: Tensor, h: Tensor) -> Tensor:
        r, z = self.ih(torch.cat([x, h], dim=1)).split(self.channels, dim=1)  # reset, update
        c = self.hh(torch.cat([x, r * h], dim=1))
        return (1 - z) * h + z * c

    def forward(self, x: Tensor, h: Tensor | None, batch: int) -> tuple[Tensor, Tensor]:
        x = x.unflatten(0, (batch, -1))  # [B, T, C, h, w]
        if h is None:
            h = x.new_zeros(x.shape[0], *x.shape[2:])
        outs = []
        for xt in x.unbind(dim=1):
            h = self.step(xt, h)
            outs.append(h)
        return torch.stack(outs, dim=1).flatten(0, 1), h


class BottleneckBlock(nn.Module):
    """Runs the second half of the channels through a ConvGRU; the first half passes through."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.gru = ConvGRU(channels // 2)

    def forward(self, x: Tensor, r: Tensor | None, batch: int) -> tuple[Tensor, Tensor]:
        a, b = x.split(self.channels // 2, dim=1)
        b, r = self.gru(b, r, batch)
        return torch.cat([a, b], dim=1), r


class UpsamplingBlock(nn.Module):
    """Upsample x2, concatenate ``[x, skip feature, image]``, conv3x3/BN/ReLU, half-channel ConvGRU."""

    def __init__(self, in_channels: int, skip_channels: int, src_channels: int, out_channels: int) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.conv = nn.Sequential(*_conv_bn_relu(in_channels + skip_channels + src_channels, out_channels))
        self.gru = ConvGRU(out_channels // 2)

    def forward(self, x: Tensor, f: Tensor, s: Tensor, r: Tensor | None, batch: int) -> tuple[Tensor, Tensor]:
        x = _upsample_to(x, s)
        x = self.conv(torch.cat([x, f, s], dim=1))  # [N, out, h, w]
        a, b = x.split(self.out_channels // 2, dim=1)
        b, r = self.gru(b, r, batch)
        return torch.cat([a, b], dim=1), r


class OutputBlock(nn.Module):
    """Upsample x2 to the image size, concatenate the image, two conv3x3/BN/ReLU layers."""

    def __init__(self, in_channels: int, src_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            *_conv_bn_relu(in_channels + src_channels, out_channels),
            *_conv_bn_relu(out_channels, out_channels),
        )

    def forward(self, x: Tensor, s: Tensor) -> Tensor:
        x = _upsample_to(x, s)
        return self.conv(torch.cat([x, s], dim=1))


class RecurrentDecoder(nn.Module):
    """Decodes encoder features into 16 hidden channels at the (downsampled) image size.

    Args:
        feature_channels: channels of ``f1, f2, f3, f4`` (``f4`` after LR-ASPP).
        decoder_channels: output channels of ``decode3, decode2, decode1, decode0``.
    """

    def __init__(self, feature_channels: list[int], decoder_channels: list[int]) -> None:
        super().__init__()
        self.avgpool = nn.AvgPool2d(2, 2, count_include_pad=False, ceil_mode=True)
        self.decode4 = BottleneckBlock(feature_channels[3])
        self.decode3 = UpsamplingBlock(feature_channels[3], feature_channels[2], 3, decoder_channels[0])
        self.decode2 = UpsamplingBlock(decoder_channels[0], feature_channels[1], 3, decoder_channels[1])
        self.decode1 = UpsamplingBlock(decoder_channels[1], feature_channels[0], 3, decoder_channels[2])
        self.decode0 = OutputBlock(decoder_channels[2], 3, decoder_channels[3])

    def forward(
        self,
        s0: Tensor,
        feats: list[Tensor],
        states: list[Tensor | None],
        batch: int,
    ) -> tuple[Tensor, list[Tensor]]:
        """``s0`` is the image ``[B*T, 3, h, w]``; returns the hidden ``[B*T, 16, h, w]`` and r1..r4."""
        f1, f2, f3, f4 = feats
        r1, r2, r3, r4 = states
        s1 = self.avgpool(s0)  # 1/2
        s2 = self.avgpool(s1)  # 1/4
        s3 = self.avgpool(s2)  # 1/8
        x4, r4 = self.decode4(f4, r4, batch)  # 1/16
        x3, r3 = self.decode3(x4, f3, s3, r3, batch)  # 1/8
        x2, r2 = self.decode2(x3, f2, s2, r2, batch)  # 1/4
        x1, r1 = self.decode1(x2, f1, s1, r1, batch)  # 1/2
        x0 = self.decode0(x1, s0)  # 1/1
        return x0, [r1, r2, r3, r4]


class Projection(nn.Module):
    """A 1x1 convolution with bias, stored as ``<name>.conv``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)
