"""Background Matting V2's facts, declared as data: backbones, the official checkpoints, the memory cost of a
pass and the coarse pass's scale rule.

The authors publish PyTorch state dicts (``pytorch_<backbone>.pth``) and TorchScript exports
(``torchscript_<backbone>_fp32.pth`` / ``_fp16.pth``; their keys carry a ``model.`` prefix) on Google
Drive, which has no stable direct link: these files are taken from ``--chkpt_path`` or the hub cache.
No digests are published.
"""

from __future__ import annotations

from .._checkpoint import Checkpoint, PassCost

__all__ = ["BACKBONES", "CHECKPOINTS", "DEFAULT_BACKBONE_SCALE", "DEFAULT_CHECKPOINT", "PASS_COSTS", "REFINE_MODES",
           "refine_settings"]

_SOURCE = "https://github.com/PeterL1n/BackgroundMattingV2#download (Google Drive, folder 'Model')"
# A key only that backbone's files hold; ResNet-101 first: every ResNet-50 key is one of its keys too.
_SIGNATURES = {"resnet101": "backbone.layer3.22.conv1.weight", "resnet50": "backbone.layer1.0.conv1.weight",
               "mobilenetv2": "backbone.features.0.0.weight"}
BACKBONES = ("mobilenetv2", "resnet50", "resnet101")
REFINE_MODES = ("full", "sampling", "thresholding")

CHECKPOINTS = {  # RGB in [0, 1] at any size (padded to a multiple of 4), with the background alike
    file_name: Checkpoint(variant=backbone, file_name=file_name, url=None, source=_SOURCE, license="MIT",
                          classes=("alpha",), signature=signature)
    for backbone, signature in _SIGNATURES.items()
    for file_name in (f"pytorch_{backbone}.pth", f"torchscript_{backbone}_fp32.pth",
                      f"torchscript_{backbone}_fp16.pth")
}
DEFAULT_CHECKPOINT = CHECKPOINTS["torchscript_resnet101_fp32.pth"]  # EasyVolcap's default

# Measured with bench/batch_sweep.py: the refiner works at full resolution, the coarse pass adds a fixed part.
PASS_COSTS = {
    "mobilenetv2": PassCost(full=240.0, low=0.0, fixed=100e6, base=0.75e9),
    "resnet50": PassCost(full=240.0, low=0.0, fixed=100e6, base=0.9e9),
    "resnet101": PassCost(full=240.0, low=0.0, fixed=100e6, base=1.0e9),
}

DEFAULT_BACKBONE_SCALE = 0.25  # EasyVolcap's
_HD_PIXELS = 1920 * 1080


def refine_settings(size: tuple[int, int], backbone_scale: float | None, sample_pixels: int) -> tuple[float, int]:
    """``(backbone_scale, refine_sample_pixels)`` for images of ``size`` (height, width).

    With ``backbone_scale`` ``None`` (auto), 0.25 up to 2K (long side <= 2048) and 0.125 above, and the
    sample pixels scaled with the image area from ``sample_pixels`` at 1080p (80,000 gives 320,000 at 4K,
    the BGMv2 authors' advice). Otherwise both are taken as given.
    """
    if backbone_scale is not None:
        return backbone_scale, sample_pixels
    scale = 0.25 if max(size) <= 2048 else 0.125
    return scale, max(16, round(sample_pixels * size[0] * size[1] / _HD_PIXELS))
