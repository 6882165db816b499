"""SCHP label sets, input normalization and the label palette, as data."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["LABEL_SETS", "MEAN_BGR", "STD_BGR", "LabelSet", "get_palette", "label_set"]

# ImageNet's RGB statistics listed in B, G, R order: SCHP's input tensor is BGR.
MEAN_BGR = (0.406, 0.456, 0.485)
STD_BGR = (0.225, 0.224, 0.229)


class LabelSet(NamedTuple):
    """The classes of one SCHP training set and the network input size its checkpoint expects."""

    input_size: tuple[int, int]  # (height, width) of the network input
    labels: tuple[str, ...]  # class names, by label index; 0 is the background

    @property
    def num_classes(self) -> int:
        return len(self.labels)


_LIP = (
    "Background", "Hat", "Hair", "Glove", "Sunglasses", "Upper-clothes", "Dress", "Coat", "Socks", "Pants",
    "Jumpsuits", "Scarf", "Skirt", "Face", "Left-arm", "Right-arm", "Left-leg", "Right-leg", "Left-shoe",
    "Right-shoe",
)  # fmt: skip

_CIHP = (
    "Background", "Hat", "Hair", "Glove", "Sunglasses", "UpperClothes", "Dress", "Coat", "Socks", "Pants",
    "Torso-skin", "Scarf", "Skirt", "Face", "Left-arm", "Right-arm", "Left-leg", "Right-leg", "Left-shoe",
    "Right-shoe",
)  # fmt: skip

_ATR = (
    "Background", "Hat", "Hair", "Sunglasses", "Upper-clothes", "Skirt", "Pants", "Dress", "Belt", "Left-shoe",
    "Right-shoe", "Face", "Left-leg", "Right-leg", "Left-arm", "Right-arm", "Bag", "Scarf",
)  # fmt: skip

_PASCAL = ("Background", "Head", "Torso", "Upper Arms", "Lower Arms", "Upper Legs", "Lower Legs")

LABEL_SETS: dict[str, LabelSet] = {
    "cihp": LabelSet((473, 473), _CIHP),  # multi-person models (exp_schp_multi_cihp_*.pth), on person crops
    "lip": LabelSet((473, 473), _LIP),  # exp-schp-201908261155-lip.pth
    "atr": LabelSet((512, 512), _ATR),  # exp-schp-201908301523-atr.pth
    "pascal": LabelSet((512, 512), _PASCAL),  # exp-schp-201908270938-pascal-person-part.pth
}


def label_set(name: str) -> LabelSet:
    """The label set called ``name`` (one of :data:`LABEL_SETS`)."""
    try:
        return LABEL_SETS[name]
    except KeyError:
        raise ValueError(f"Unknown SCHP label set {name!r}; expected one of {tuple(LABEL_SETS)}.") from None


def get_palette(num_classes: int) -> np.ndarray:
    """The PASCAL VOC colormap: ``[num_classes, 3]`` uint8 RGB, one colour per label.

    Label ``j`` is read three bits at a time; bits 0, 1, 2 of each group go to R, G, B at bit 7, then 6,
    and so on. Colours 0..4 are black, (128, 0, 0), (0, 128, 0), (128, 128, 0), (0, 0, 128). Equals
    upstream's ``get_palette(num_classes)`` reshaped from its flat list.
    """
    if not 1 <= num_classes <= 256:
        raise ValueError(f"num_classes must be in [1, 256] (8-bit colours), got {num_classes}.")
    palette = np.zeros((num_classes, 3), dtype=np.uint8)
    for label in range(num_classes):
        code, bit = label, 7
        while code:
            for channel in range(3):
                palette[label, channel] |= ((code >> channel) & 1) << bit
            code >>= 3
            bit -= 1
    return palette
