"""Guided-filter refiners: upsample the low-resolution matte to full resolution, guided by the image.

Both refiners take frames flattened to ``[N, C, h, w]`` and work on 4-channel guides
``x = cat[rgb, mean_c(rgb)]`` and 4-channel targets ``y = cat[fgr_residual, alpha]``. A local
linear model ``y ~ A * x + b`` is fitted at low resolution, then ``A`` and ``b`` are resized
bilinearly (``align_corners=False``) to full resolution and applied to the full-resolution guide.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["DeepGuidedFilterRefiner", "FastGuidedFilterRefiner"]


def _with_gray(rgb: Tensor) -> Tensor:
    """``[N, 3, h, w] -> [N, 4, h, w]``: RGB plus its channel mean."""
    return torch.cat([rgb, rgb.mean(dim=1, keepdim=True)], dim=1)


def _apply_linear_model(a: Tensor, b: Tensor, fine_x: Tensor) -> tuple[Tensor, Tensor]:
    """Resize ``A, b`` to ``fine_x``'s size, return ``A * fine_x + b`` split into fgr (3) and alpha (1)."""
    size = fine_x.shape[-2:]
    a = F.interpolate(a, size, mode="bilinear", align_corners=False)
    b = F.interpolate(b, size, mode="bilinear", align_corners=False)
    fgr, pha = (a * fine_x + b).split([3, 1], dim=1)
    return fgr, pha


class DeepGuidedFilterRefiner(nn.Module):
    """Deep guided filter (Wu et al. 2018) with a learned box filter and a learned ``A`` predictor.

    ``forward(fine_src, base_src, base_fgr, base_pha, base_hid)``: ``fine_src`` is ``[N, 3, H, W]``
    RGB in [0, 1]; ``base_src`` ``[N, 3, h, w]``, the unclamped ``base_fgr`` residual ``[N, 3, h, w]``,
    ``base_pha`` ``[N, 1, h, w]`` and ``base_hid`` ``[N, hid_channels, h, w]`` are at low resolution.
    Returns the refined fgr residual ``[N, 3, H, W]`` and alpha ``[N, 1, H, W]`` (unclamped).
    """

    def __init__(self, hid_channels: int = 16) -> None:
        super().__init__()
        self.box_filter = nn.Conv2d(4, 4, kernel_size=3, padding=1, bias=False, groups=4)
        nn.init.constant_(self.box_filter.weight, 1.0 / 9.0)  # a plain box; trained away in checkpoints
        self.conv = nn.Sequential(
            nn.Conv2d(4 * 2 + hid_channels, hid_channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(hid_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(hid_channels, hid_channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(hid_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(hid_channels, 4, kernel_size=1, bias=True),
        )

    def forward(
        self, fine_src: Tensor, base_src: Tensor, base_fgr: Tensor, base_pha: Tensor, base_hid: Tensor
    ) -> tuple[Tensor, Tensor]:
        fine_x = _with_gray(fine_src)  # [N, 4, H, W]
        base_x = _with_gray(base_src)  # [N, 4, h, w]
        base_y = torch.cat([base_fgr, base_pha], dim=1)  # [N, 4, h, w]
        mean_x = self.box_filter(base_x)
        mean_y = self.box_filter(base_y)
        cov_xy = self.box_filter(base_x * base_y) - mean_x * mean_y
        var_x = self.box_filter(base_x * base_x) - mean_x * mean_x
        a = self.conv(torch.cat([cov_xy, var_x, base_hid], dim=1))  # [N, 4, h, w]
        b = mean_y - a * mean_x
        return _apply_linear_model(a, b, fine_x)


def _box_filter(x: Tensor, radius: int) -> Tensor:
    """Separable mean over a ``(2r+1)^2`` window, zero padded (not normalized at the borders)."""
    channels, size = x.shape[1], 2 * radius + 1
    kernel_x = torch.full((channels, 1, 1, size), 1 / size, device=x.device, dtype=x.dtype)
    kernel_y = torch.full((channels, 1, size, 1), 1 / size, device=x.device, dtype=x.dtype)
    x = F.conv2d(x, kernel_x, padding=(0, radius), groups=channels)
    return F.conv2d(x, kernel_y, padding=(radius, 0), groups=channels)


class FastGuidedFilterRefiner(nn.Module):
    """Classic fast guided filter (He & Sun 2015), parameter-free: ``A = cov_xy / (var_x + eps)``.

    Same call and return as :class:`DeepGuidedFilterRefiner`; ``base_hid`` is accepted and ignored.
    """

    def __init__(self, radius: int = 1, eps: float = 1e-5) -> None:
        super().__init__()
        self.radius = radius
        self.eps = eps

    def forward(
        self, fine_src: Tensor, base_src: Tensor, base_fgr: Tensor, base_pha: Tensor, base_hid: Tensor
    ) -> tuple[Tensor, Tensor]:
        del base_hid  # the same call as the deep refiner
        fine_x = _with_gray(fine_src)
        base_x = _with_gray(base_src)
        base_y = torch.cat([base_fgr, base_pha], dim=1)
        mean_x = _box_filter(base_x, self.radius)
        mean_y = _box_filter(base_y, self.radius)
        cov_xy = _box_filter(base_x * base_y, self.radius) - mean_x * mean_y
        var_x = _box_filter(base_x * base_x, self.radius) - mean_x * mean_x
        a = cov_xy / (var_x + self.eps)
        b = mean_y - a * mean_x
        return _apply_linear_model(a, b, fine_x)
