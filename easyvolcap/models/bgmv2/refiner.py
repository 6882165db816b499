"""BGMv2 refiner: recomputes the matte at full resolution, everywhere or on selected 4x4 patches.

The coarse outputs live on a grid of 4x4 full-resolution blocks (``H/4 x W/4`` locations). In the
``sampling`` and ``thresholding`` modes a 0/1 map ``ref`` over that grid picks the blocks to refine;
each picked block is recomputed from an 8x8 half-resolution crop (with 3 pixels of context at
``kernel_size=3``) and an 8x8 full-resolution crop of the images, and pasted over the bilinearly
upsampled coarse matte. ``full`` mode runs the same convolutions over the whole image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checkpoints import REFINE_MODES

__all__ = ["REFINE_MODES", "Refiner"]

_KERNEL_SIZES = (1, 3)
_CHANNELS = (32, 24, 16, 12, 4)  # hid in; conv1, conv2, conv3, conv4 out


def _resize(x: Tensor, size: tuple[int, int], mode: str = "bilinear") -> Tensor:
    if mode == "nearest":
        return F.interpolate(x, size=size, mode="nearest")
    return F.interpolate(x, size=size, mode=mode, align_corners=False)


def crop_patches(x: Tensor, idx: tuple[Tensor, Tensor, Tensor], stride: int, padding: int) -> Tensor:
    """Square crops of ``x`` ``[B, C, h, w]`` at grid locations ``idx = (b, y, x)``.

    ``x`` is zero padded by ``padding``; the crop at ``(y, x)`` is the window of size
    ``stride + 2 * padding`` starting at ``(y * stride, x * stride)`` of the padded map, i.e. the
    ``stride x stride`` cell plus ``padding`` pixels of context. Returns ``[N, C, k, k]``.
    """
    size = stride + 2 * padding
    if padding:
        x = F.pad(x, (padding, padding, padding, padding))
    windows = x.permute(0, 2, 3, 1).unfold(1, size, stride).unfold(2, size, stride)  # [B, gh, gw, C, k, k]
    return windows[idx]


def replace_patches(x: Tensor, patches: Tensor, idx: tuple[Tensor, Tensor, Tensor]) -> Tensor:
    """Write ``patches`` ``[N, C, 4, 4]`` over the 4x4 blocks ``idx = (b, y, x)`` of ``x`` ``[B, C, H, W]``.

    ``x`` must be contiguous; it is modified in place and returned.
    """
    b, c, h, w = x.shape
    blocks = x.view(b, c, h // 4, 4, w // 4, 4).permute(0, 2, 4, 1, 3, 5)  # [B, H/4, W/4, C, 4, 4], a view
    blocks.index_put_(idx, patches)
    return x


class Refiner(nn.Module):
    """Full-resolution refinement of the coarse matte.

    The settings are the defaults of each pass; :meth:`forward` takes others per pass (``mode``,
    ``sample_pixels``, ``threshold``); ``kernel_size`` is fixed by the weights.

    Args:
        mode: one of :data:`REFINE_MODES`.
        sample_pixels: ``sampling`` mode refines the ``sample_pixels // 16`` blocks of largest error per image.
        threshold: ``thresholding`` mode refines the blocks whose error is ``> threshold``.
        kernel_size: 3 (official weights) or 1.
        prevent_oversampling: in ``sampling`` mode, skip selected blocks whose error is 0.
    """

    def __init__(
        self,
        mode: str = "sampling",
        sample_pixels: int = 80_000,
        threshold: float = 0.1,
        kernel_size: int = 3,
        prevent_oversampling: bool = True,
    ) -> None:
        super().__init__()
        _check_mode(mode)
        if kernel_size not in _KERNEL_SIZES:
            raise ValueError(f"Unknown refiner kernel_size {kernel_size!r}; expected one of {_KERNEL_SIZES}.")
        self.mode = mode
        self.sample_pixels = sample_pixels
        self.threshold = threshold
        self.kernel_size = kernel_size
        self.prevent_oversampling = prevent_oversampling
        hid, c1, c2, c3, c4 = _CHANNELS
        self.conv1 = nn.Conv2d(hid + 4 + 6, c1, kernel_size, bias=False)
        self.bn1 = nn.BatchNorm2d(c1)
        self.conv2 = nn.Conv2d(c1, c2, kernel_size, bias=False)
        self.bn2 = nn.BatchNorm2d(c2)
        self.conv3 = nn.Conv2d(c2 + 6, c3, kernel_size, bias=False)
        self.bn3 = nn.BatchNorm2d(c3)
        self.conv4 = nn.Conv2d(c3, c4, kernel_size, bias=True)
        self.relu = nn.ReLU(inplace=True)

    def forward(
        self, src: Tensor, bgr: Tensor, pha: Tensor, fgr: Tensor, err: Tensor, hid: Tensor, *,
        mode: str | None = None, sample_pixels: int | None = None, threshold: float | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Refine the coarse outputs (``mode``, ``sample_pixels``, ``threshold``: this pass's settings, by default
        the attributes).

        Args:
            src, bgr: full-resolution images ``[B, 3, H, W]``, RGB in [0, 1]; ``H, W`` divisible by 4.
            pha: coarse alpha ``[B, 1, h, w]``, clamped to [0, 1].
            fgr: coarse foreground residual ``[B, 3, h, w]`` (unclamped, not added to the image).
            err: coarse error map ``[B, 1, h, w]``, clamped to [0, 1].
            hid: coarse hidden features ``[B, 32, h, w]``, after ReLU.

        Returns:
            ``(pha, fgr, ref)``: refined alpha ``[B, 1, H, W]`` and foreground residual ``[B, 3, H, W]``
            (both unclamped), and the 0/1 map of refined blocks ``[B, 1, H/4, W/4]`` (all ones in ``full``).
        """
        mode = self.mode if mode is None else mode
        _check_mode(mode)
        full_size = tuple(src.shape[2:])
        quarter_size = (full_size[0] // 4, full_size[1] // 4)
        src_bgr = torch.cat([src, bgr], dim=1)  # [B, 6, H, W]
        coarse = torch.cat([hid, pha, fgr], dim=1)  # [B, 36, h, w]
        if mode == "full":
            out = self._refine_full(coarse, src_bgr)
            ref = src.new_ones((src.shape[0], 1, *quarter_size))
            return out[:, :1], out[:, 1:], ref

        ref = self.select_regions(_resize(err, quarter_size), mode, sample_pixels, threshold)  # [B, 1, H/4, W/4]
        out = _resize(torch.cat([pha, fgr], dim=1), full_size)  # [B, 4, H, W]
        idx = tuple(torch.nonzero(ref.squeeze(1)).unbind(dim=1))  # (b, y, x), row-major order
        if idx[0].numel() > 0:
            out = replace_patches(out, self._refine_patches(coarse, src_bgr, idx), idx)
        return out[:, :1], out[:, 1:], ref

    def select_regions(self, err: Tensor, mode: str | None = None, sample_pixels: int | None = None,
                       threshold: float | None = None) -> Tensor:
        """The 0/1 map ``[B, 1, h, w]`` of blocks to refine, from the error ``err`` ``[B, 1, h, w]`` (settings
        given as ``None`` are the attributes)."""
        if (self.mode if mode is None else mode) == "thresholding":
            return err.gt(self.threshold if threshold is None else threshold).to(err.dtype)
        b, _, h, w = err.shape
        flat = err.view(b, h * w)
        pixels = self.sample_pixels if sample_pixels is None else sample_pixels
        k = min(pixels // 16, h * w)  # one block covers 16 pixels
        top = flat.topk(k, dim=1, sorted=False).indices
        ref = torch.zeros_like(flat).scatter_(1, top, 1.0)
        if self.prevent_oversampling:
            ref = ref * flat.gt(0).to(flat.dtype)
        return ref.view(b, 1, h, w)

    def _pad(self, full_res: bool) -> int:
        """Context around a crop: 3 half-resolution or 2 full-resolution pixels at ``kernel_size=3``."""
        if self.kernel_size == 1:
            return 0
        return 2 if full_res else 3

    @staticmethod
    def _half_resolution(coarse: Tensor, src_bgr: Tensor) -> tuple[Tensor, Tensor]:
        """Bilinear resize of ``cat[hid, pha, fgr]`` and ``cat[src, bgr]`` to ``(H/2, W/2)``."""
        half_size = (src_bgr.shape[2] // 2, src_bgr.shape[3] // 2)
        return _resize(coarse, half_size), _resize(src_bgr, half_size)

    def _refine_patches(self, coarse: Tensor, src_bgr: Tensor, idx: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        """Recompute the blocks ``idx``; returns ``[N, 4, 4, 4]`` (alpha, fgr residual) patches."""
        x, y = self._half_resolution(coarse, src_bgr)
        x = crop_patches(x, idx, 2, self._pad(False))  # [N, 36, 8, 8]
        y = crop_patches(y, idx, 2, self._pad(False))  # [N, 6, 8, 8]
        x = self.relu(self.bn1(self.conv1(torch.cat([x, y], dim=1))))  # [N, 24, 6, 6]
        x = self.relu(self.bn2(self.conv2(x)))  # [N, 16, 4, 4]
        size = 4 + 2 * self._pad(True)
        x = _resize(x, (size, size), mode="nearest")  # [N, 16, 8, 8]
        y = crop_patches(src_bgr, idx, 4, self._pad(True))  # [N, 6, 8, 8]
        x = self.relu(self.bn3(self.conv3(torch.cat([x, y], dim=1))))  # [N, 12, 6, 6]
        return self.conv4(x)  # [N, 4, 4, 4]

    def _refine_full(self, coarse: Tensor, src_bgr: Tensor) -> Tensor:
        """The patch network run over the whole image; returns ``[B, 4, H, W]``."""
        pad_half, pad_full = self._pad(False), self._pad(True)
        x, y = self._half_resolution(coarse, src_bgr)
        x = F.pad(torch.cat([x, y], dim=1), (pad_half,) * 4)  # [B, 42, H/2 + 6, W/2 + 6]
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))  # [B, 16, H/2 + 2, W/2 + 2]
        h, w = src_bgr.shape[2:]
        x = _resize(x, (h + 2 * pad_full, w + 2 * pad_full), mode="nearest")  # [B, 16, H + 4, W + 4]
        y = F.pad(src_bgr, (pad_full,) * 4)
        x = self.relu(self.bn3(self.conv3(torch.cat([x, y], dim=1))))
        return self.conv4(x)  # [B, 4, H, W]


def _check_mode(mode: str) -> None:
    if mode not in REFINE_MODES:
        raise ValueError(f"Unknown refine mode {mode!r}; expected one of {REFINE_MODES}.")
