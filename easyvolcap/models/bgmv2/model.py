"""Background Matting V2 (Lin et al. 2021): ``MattingBase`` and ``MattingRefine`` with official key names.

The module tree mirrors the official models, so ``pytorch_mobilenetv2.pth``, ``pytorch_resnet50.pth``
and ``pytorch_resnet101.pth`` (plain state dicts) load into :class:`MattingRefine` with
``strict=True`` and no key remapping; :func:`base_state_dict` selects the part that
:class:`MattingBase` holds.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checkpoints import BACKBONES, REFINE_MODES
from .decoder import ASPP, Decoder
from .encoders import MobileNetV2Encoder, ResNetEncoder
from .refiner import Refiner

__all__ = ["BACKBONES", "REFINE_MODES", "CoarseOutputs", "MattingBase", "MattingRefine", "base_state_dict"]

_OUT_CHANNELS = 1 + 3 + 1 + 32  # alpha, fgr residual, error, hidden
_MULTIPLE = 4  # the refiner works on 4x4 blocks


class MattingBase(nn.Module):
    """The base network: backbone -> ASPP -> decoder, run at the resolution it is given.

    Args:
        backbone: one of :data:`BACKBONES`.

    Example:
        >>> model = MattingBase("resnet50").eval()
        >>> model.load_state_dict(base_state_dict(torch.load("pytorch_resnet50.pth", weights_only=True)))
        >>> pha, fgr, err, hid = model(src, bgr)
    """

    def __init__(self, backbone: str) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"Unknown BGMv2 backbone {backbone!r}; expected one of {BACKBONES}.")
        self.backbone_name = backbone
        in_channels = 6  # cat[src, bgr]
        if backbone == "mobilenetv2":
            self.backbone = MobileNetV2Encoder(in_channels)
        else:
            self.backbone = ResNetEncoder(backbone, in_channels)
        c0, c1, c2, c3, c4 = self.backbone.channels
        self.aspp = ASPP(c4, [3, 6, 9])
        self.decoder = Decoder(256, [c3, c2, c1, c0], [128, 64, 48, _OUT_CHANNELS])

    def forward(self, src: Tensor, bgr: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Matte ``src`` against its background ``bgr``.

        Args:
            src: ``[B, 3, H, W]`` the source image, RGB, float in [0, 1].
            bgr: ``[B, 3, H, W]`` the captured background, RGB, float in [0, 1].

        Returns:
            ``(pha, fgr, err, hid)``: alpha ``[B, 1, H, W]`` and foreground ``[B, 3, H, W]`` in [0, 1],
            predicted error ``[B, 1, H, W]`` in [0, 1], and hidden features ``[B, 32, H, W]`` (>= 0).
        """
        _check_images(src, bgr)
        pha, fgr_residual, err, hid = self._coarse(src, bgr)
        return pha, (fgr_residual + src).clamp(0.0, 1.0), err, hid

    def _coarse(self, src: Tensor, bgr: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The decoder's 37 channels split into clamped alpha, raw fgr residual, clamped error, ReLU'd hidden."""
        x0, x1, x2, x3, x4 = self.backbone(torch.cat([src, bgr], dim=1))
        x = self.decoder(self.aspp(x4), [x3, x2, x1, x0])  # [B, 37, H, W]
        pha, fgr_residual, err, hid = x.split([1, 3, 1, 32], dim=1)
        return pha.clamp(0.0, 1.0), fgr_residual, err.clamp(0.0, 1.0), hid.relu()


class CoarseOutputs(NamedTuple):
    """What :meth:`MattingRefine.coarse` computes at the backbone's scale, for the refiner and the outputs."""

    pha_sm: Tensor  # [B, 1, h, w] alpha, clamped to [0, 1]
    fgr_residual_sm: Tensor  # [B, 3, h, w] foreground residual, unclamped
    err_sm: Tensor  # [B, 1, h, w] predicted error, clamped to [0, 1]
    hid_sm: Tensor  # [B, 32, h, w] hidden features, after ReLU
    fgr_sm: Tensor  # [B, 3, h, w] foreground (downsampled image + residual), clamped to [0, 1]


class MattingRefine(MattingBase):
    """The base network at ``backbone_scale``, then the refiner at full resolution.

    ``backbone_scale`` and the refiner settings (``refiner.mode``, ``refiner.sample_pixels``,
    ``refiner.threshold``, ``refiner.prevent_oversampling``) are plain attributes and may be changed
    after loading weights. The pass is :meth:`coarse` (fixed shapes, capturable as a CUDA graph) then
    :meth:`refine` (whose block selection depends on values).

    Args:
        backbone: one of :data:`BACKBONES`.
        backbone_scale: scale of the images the base network sees, in (0, 1/2].
        refine_mode: one of :data:`REFINE_MODES`. ``full`` refines every pixel; ``sampling`` refines a
            fixed number of 4x4 blocks per image (the ones of largest predicted error);
            ``thresholding`` refines the blocks whose error exceeds ``refine_threshold``.
        refine_sample_pixels: pixels refined per image in ``sampling`` mode (16 per block).
        refine_threshold: error threshold of ``thresholding`` mode.
        refine_kernel_size: 3 (the official weights) or 1.
        prevent_oversampling: in ``sampling`` mode, do not refine blocks whose error is 0.

    Example:
        >>> model = MattingRefine("mobilenetv2", backbone_scale=0.25, refine_mode="sampling").eval()
        >>> model.load_state_dict(torch.load("pytorch_mobilenetv2.pth", weights_only=True))
        >>> pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm = model(src, bgr)
        >>> same = model.refine(src, bgr, model.coarse(src, bgr))  # the same pass in its two parts
    """

    def __init__(
        self,
        backbone: str,
        backbone_scale: float = 0.25,
        refine_mode: str = "sampling",
        refine_sample_pixels: int = 80_000,
        refine_threshold: float = 0.1,
        refine_kernel_size: int = 3,
        prevent_oversampling: bool = True,
    ) -> None:
        _check_scale(backbone_scale)
        super().__init__(backbone)
        self.backbone_scale = backbone_scale
        self.refiner = Refiner(
            mode=refine_mode,
            sample_pixels=refine_sample_pixels,
            threshold=refine_threshold,
            kernel_size=refine_kernel_size,
            prevent_oversampling=prevent_oversampling,
        )

    def forward(self, src: Tensor, bgr: Tensor, *, backbone_scale: float | None = None, refine_mode: str | None = None,
                sample_pixels: int | None = None, threshold: float | None = None
                ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Matte ``src`` against its background ``bgr``, with this pass's settings (``None``: the attributes):
        :meth:`refine` of :meth:`coarse`.

        Args:
            src: ``[B, 3, H, W]`` the source image, RGB, float in [0, 1]; ``H`` and ``W`` divisible by 4.
            bgr: ``[B, 3, H, W]`` the captured background, RGB, float in [0, 1].

        Returns:
            ``(pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm)``: refined alpha ``[B, 1, H, W]`` and
            foreground ``[B, 3, H, W]`` in [0, 1]; the base network's alpha ``[B, 1, h, w]``, foreground
            ``[B, 3, h, w]`` and error ``[B, 1, h, w]`` in [0, 1] at ``h, w = floor(H * backbone_scale),
            floor(W * backbone_scale)``; and the 0/1 map of refined 4x4 blocks ``[B, 1, H/4, W/4]``.
        """
        return self.refine(src, bgr, self.coarse(src, bgr, backbone_scale=backbone_scale), refine_mode=refine_mode,
                           sample_pixels=sample_pixels, threshold=threshold)

    def coarse(self, src: Tensor, bgr: Tensor, backbone_scale: float | None = None) -> CoarseOutputs:
        """The base network on both images downsampled by ``backbone_scale`` (``None``: the attribute).

        Every operation's shapes follow from the inputs' and the scale, and none reads a value back from
        the device: a pass that CUDA graphs can capture (:mod:`easyvolcap.graphs`).

        Args:
            src, bgr: as in :meth:`forward`.

        Returns:
            :class:`CoarseOutputs` at ``h, w = floor(H * backbone_scale), floor(W * backbone_scale)``.
        """
        _check_images(src, bgr, multiple=_MULTIPLE)
        scale = self.backbone_scale if backbone_scale is None else backbone_scale
        _check_scale(scale)
        src_sm = _downsample(src, scale)
        pha_sm, fgr_residual_sm, err_sm, hid_sm = self._coarse(src_sm, _downsample(bgr, scale))
        fgr_sm = (src_sm + fgr_residual_sm).clamp(0.0, 1.0)
        return CoarseOutputs(pha_sm, fgr_residual_sm, err_sm, hid_sm, fgr_sm)

    def refine(self, src: Tensor, bgr: Tensor, coarse: Sequence[Tensor], *, refine_mode: str | None = None,
               sample_pixels: int | None = None, threshold: float | None = None
               ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """The refiner at full resolution on the outputs of :meth:`coarse` (settings ``None``: the attributes).
        Its ``sampling`` and ``thresholding`` modes select blocks by value (``nonzero``, which waits for the
        device).

        Args:
            src, bgr: as in :meth:`forward`.
            coarse: what :meth:`coarse` returned for them (any sequence of its five tensors, in its order).

        Returns:
            as :meth:`forward`; ``pha_sm``, ``fgr_sm`` and ``err_sm`` are tensors of ``coarse`` (not copies), the
            others new.
        """
        _check_images(src, bgr, multiple=_MULTIPLE)
        pha_sm, fgr_residual_sm, err_sm, hid_sm, fgr_sm = coarse
        pha, fgr_residual, ref_sm = self.refiner(src, bgr, pha_sm, fgr_residual_sm, err_sm, hid_sm, mode=refine_mode,
                                                 sample_pixels=sample_pixels, threshold=threshold)
        pha = pha.clamp(0.0, 1.0)
        fgr = (fgr_residual + src).clamp(0.0, 1.0)
        return pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm


def base_state_dict(state_dict: Mapping[str, Tensor]) -> OrderedDict[str, Tensor]:
    """The entries of a full (``MattingRefine``) state dict that ``MattingBase`` holds: all but ``refiner.*``."""
    return OrderedDict((k, v) for k, v in state_dict.items() if not k.startswith("refiner."))


def _downsample(x: Tensor, scale: float) -> Tensor:
    """Bilinear resize by ``scale`` (output ``floor(H * scale)``, sampled at the recomputed ratio)."""
    return F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False, recompute_scale_factor=True)


def _check_scale(scale: float) -> None:
    if not 0 < scale <= 0.5:
        raise ValueError(f"backbone_scale must be in (0, 1/2], got {scale!r}.")


def _check_images(src: Tensor, bgr: Tensor, multiple: int = 1) -> None:
    if src.ndim != 4 or src.shape[1] != 3:
        raise ValueError(f"src must be [B, 3, H, W], got {list(src.shape)}.")
    if bgr.shape != src.shape:
        raise ValueError(f"bgr must have the shape of src {list(src.shape)}, got {list(bgr.shape)}.")
    h, w = src.shape[2:]
    if h % multiple or w % multiple:
        padded = (-(-h // multiple) * multiple, -(-w // multiple) * multiple)
        raise ValueError(
            f"Expected image height and width divisible by {multiple}, got {h}x{w}; "
            f"pad the images to {padded[0]}x{padded[1]} (H x W)."
        )
