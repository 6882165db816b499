"""Robust Video Matting (Lin et al. 2021): a recurrent matting network with official key names.

The module tree mirrors the official ``MattingNetwork``, so ``rvm_mobilenetv3.pth`` and
``rvm_resnet50.pth`` (plain state dicts) load with ``strict=True`` and no key remapping.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

import torch.nn.functional as F
from torch import Tensor, nn

from . import encoders
from .checkpoints import VARIANTS
from .decoder import Projection, RecurrentDecoder
from .guided_filter import DeepGuidedFilterRefiner, FastGuidedFilterRefiner
from .lraspp import LRASPP

__all__ = ["REFINERS", "VARIANTS", "MattingNetwork", "drop_refiner_keys", "rvm_mobilenetv3", "rvm_resnet50"]

REFINERS = ("deep_guided_filter", "fast_guided_filter")


class MattingNetwork(nn.Module):
    """Recurrent video matting network.

    Args:
        variant: backbone, one of :data:`VARIANTS`.
        refiner: ``"deep_guided_filter"`` (learned, as in the official checkpoints) or
            ``"fast_guided_filter"`` (parameter-free; load official files through
            :func:`drop_refiner_keys`).

    Example:
        >>> model = rvm_mobilenetv3().eval()
        >>> rec = [None] * 4
        >>> for clip in clips:  # [B, T, 3, H, W]
        ...     fgr, pha, *rec = model(clip, *rec, downsample_ratio=0.25)
    """

    def __init__(self, variant: str = "mobilenetv3", refiner: str = "deep_guided_filter") -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"Unknown RVM variant {variant!r}; expected one of {tuple(VARIANTS)}.")
        if refiner not in REFINERS:
            raise ValueError(f"Unknown RVM refiner {refiner!r}; expected one of {REFINERS}.")
        spec = VARIANTS[variant]
        encoder, aspp_channels, decoder_channels = getattr(encoders, spec.encoder), spec.aspp_channels, \
            list(spec.decoder_channels)
        self.variant = variant
        self.backbone = encoder()
        f1, f2, f3, f4 = encoder.channels
        self.aspp = LRASPP(f4, aspp_channels)
        self.decoder = RecurrentDecoder([f1, f2, f3, aspp_channels], decoder_channels)
        self.project_mat = Projection(decoder_channels[-1], 4)
        self.project_seg = Projection(decoder_channels[-1], 1)
        if refiner == "deep_guided_filter":
            self.refiner = DeepGuidedFilterRefiner(decoder_channels[-1])
        else:
            self.refiner = FastGuidedFilterRefiner()

    def forward(
        self,
        src: Tensor,
        r1: Tensor | None = None,
        r2: Tensor | None = None,
        r3: Tensor | None = None,
        r4: Tensor | None = None,
        downsample_ratio: float = 1.0,
        segmentation_pass: bool = False,
    ) -> list[Tensor]:
        """Matte a clip (or one frame) and return the new recurrent states.

        Args:
            src: ``[B, T, 3, H, W]`` or ``[B, 3, H, W]``, RGB, float in [0, 1].
            r1, r2, r3, r4: recurrent states ``[B, C, h, w]`` from the previous call, or ``None``
                for the first call (zeros). ``h, w`` are 1/2, 1/4, 1/8, 1/16 of the downsampled size.
            downsample_ratio: scale at which the network runs; the guided-filter refiner brings
                the matte back to ``H, W``. At 1 the refiner is skipped.
            segmentation_pass: return segmentation logits instead of the matte.

        Returns:
            ``[fgr, pha, r1, r2, r3, r4]``: foreground ``[..., 3, H, W]`` and alpha ``[..., 1, H, W]``,
            both in [0, 1] with the rank of ``src``; or, with ``segmentation_pass``,
            ``[seg, r1, r2, r3, r4]``: raw logits ``[..., 1, h, w]`` at the downsampled size.
        """
        if src.ndim not in (4, 5) or src.shape[-3] != 3:
            raise ValueError(f"src must be [B, T, 3, H, W] or [B, 3, H, W], got {list(src.shape)}.")
        single_frame = src.ndim == 4
        clip = src.unsqueeze(1) if single_frame else src  # [B, T, 3, H, W]
        batch = clip.shape[0]
        frames = clip.flatten(0, 1)  # [B*T, 3, H, W]
        states = [r1, r2, r3, r4]
        outs, states = self._forward_frames(frames, states, batch, downsample_ratio, segmentation_pass)
        outs = [x.unflatten(0, (batch, -1)) for x in outs]  # [B, T, C, ., .]
        if single_frame:
            outs = [x.squeeze(1) for x in outs]
        return [*outs, *states]

    def _forward_frames(
        self,
        src: Tensor,
        states: list[Tensor | None],
        batch: int,
        downsample_ratio: float,
        segmentation_pass: bool,
    ) -> tuple[list[Tensor], list[Tensor]]:
        """The network on flattened frames ``[B*T, 3, H, W]``: backbone -> aspp -> decoder -> project."""
        src_sm = _downsample(src, downsample_ratio)  # [B*T, 3, h, w]
        f1, f2, f3, f4 = self.backbone(src_sm)
        f4 = self.aspp(f4)
        hid, states = self.decoder(src_sm, [f1, f2, f3, f4], states, batch)  # [B*T, 16, h, w]
        if segmentation_pass:
            return [self.project_seg(hid)], states
        fgr_residual, pha = self.project_mat(hid).split([3, 1], dim=1)
        if downsample_ratio != 1:
            fgr_residual, pha = self.refiner(src, src_sm, fgr_residual, pha, hid)
        fgr = (fgr_residual + src).clamp(0.0, 1.0)
        return [fgr, pha.clamp(0.0, 1.0)], states


def _downsample(x: Tensor, ratio: float) -> Tensor:
    """Bilinear resize by ``ratio`` (output ``floor(H * ratio)``, sampled at scale ``1 / ratio``)."""
    if ratio == 1:
        return x
    return F.interpolate(
        x, scale_factor=ratio, mode="bilinear", align_corners=False, recompute_scale_factor=False
    )


def drop_refiner_keys(state_dict: Mapping[str, Tensor]) -> OrderedDict[str, Tensor]:
    """A copy of ``state_dict`` without ``refiner.*`` entries.

    Official checkpoints hold the deep guided filter's 15 ``refiner.*`` tensors; the
    ``fast_guided_filter`` model has none, so load official files into it as
    ``model.load_state_dict(drop_refiner_keys(sd))``.
    """
    return OrderedDict((k, v) for k, v in state_dict.items() if not k.startswith("refiner."))


def rvm_mobilenetv3(*, refiner: str = "deep_guided_filter") -> MattingNetwork:
    """RVM with the MobileNetV3-Large backbone (matches ``rvm_mobilenetv3.pth``), randomly initialized."""
    return MattingNetwork("mobilenetv3", refiner=refiner)


def rvm_resnet50(*, refiner: str = "deep_guided_filter") -> MattingNetwork:
    """RVM with the ResNet-50 backbone (matches ``rvm_resnet50.pth``), randomly initialized."""
    return MattingNetwork("resnet50", refiner=refiner)
