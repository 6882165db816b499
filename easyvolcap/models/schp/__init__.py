"""Self-Correction Human Parsing (SCHP): the ResNet-101 parser with official key names, its transforms and labels."""

from .abn import ActivatedBatchNorm2d
from .labels import LABEL_SETS, MEAN_BGR, STD_BGR, LabelSet, get_palette, label_set
from .network import SchpNetwork, schp_resnet101
from .transforms import (
    affine_transform,
    box_to_center_scale,
    logits_to_image,
    normalize,
    upsample_logits,
    warp_logit_channels,
    warp_to_input,
)

__all__ = [
    "LABEL_SETS",
    "MEAN_BGR",
    "STD_BGR",
    "ActivatedBatchNorm2d",
    "LabelSet",
    "SchpNetwork",
    "affine_transform",
    "box_to_center_scale",
    "get_palette",
    "label_set",
    "logits_to_image",
    "normalize",
    "schp_resnet101",
    "upsample_logits",
    "warp_logit_channels",
    "warp_to_input",
]
