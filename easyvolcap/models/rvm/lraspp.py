"""Lite R-ASPP head: a 1x1 projection gated by a global-context attention vector."""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["LRASPP"]


class LRASPP(nn.Module):
    """``(conv1x1 -> BN -> ReLU)(x) * sigmoid(conv1x1(global_avg_pool(x)))``.

    ``x`` is ``[N, in_channels, h, w]``; returns ``[N, out_channels, h, w]``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.aspp1 = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )
        self.aspp2 = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.aspp1(x) * self.aspp2(x)  # [N, C, h, w] * [N, C, 1, 1]
