"""Mask arithmetic shared by the tools: EasyVolcap's binarisation, growing, merging and inverting.

Masks are ``(H, W)`` uint8 arrays as read by :func:`easyvolcap.image_io.read_gray`.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .errors import EvcError

__all__ = ["THRESHOLD", "binarize", "check_same_size", "grow", "invert_mask", "merge_masks"]

THRESHOLD = 128  # EasyVolcap's: foreground where the mask, scaled to its own maximum 255, is above 128


def binarize(mask: np.ndarray, threshold: int = THRESHOLD) -> np.ndarray:
    """EasyVolcap's reading of a mask: 1 where ``mask * 255 / mask.max() > threshold``, else 0 (uint8).

    A mask whose maximum is 0 has no foreground. Computed in integers: ``mask > floor(threshold * peak / 255)``.
    """
    peak = int(mask.max()) if mask.size else 0
    if not peak:
        return np.zeros_like(mask, dtype=np.uint8)
    return cv2.threshold(mask, (threshold * peak) // 255, 1, cv2.THRESH_BINARY)[1]


def grow(binary: np.ndarray, dilation: int) -> np.ndarray:
    """``binary`` (uint8 0/1) dilated by a ``dilation x dilation`` square (0 or 1: unchanged), as
    ``cv2.dilate`` with its default anchor (offsets ``-(d // 2)`` to ``(d - 1) // 2``)."""
    if dilation <= 1:
        return binary
    return cv2.dilate(binary, np.ones((dilation, dilation), np.uint8))


def merge_masks(foreground: np.ndarray, people: np.ndarray, dilation: int = 20, threshold: int = THRESHOLD
                ) -> np.ndarray:
    """EasyVolcap's merge: the ``people`` mask (a human parser's) kept only inside the binarised ``foreground``
    mask (a matting model's) grown by a ``dilation x dilation`` square, 0 elsewhere (``(H, W)`` uint8, the
    ``people`` mask's values)."""
    return np.where(grow(binarize(foreground, threshold), dilation) > 0, people, 0).astype(np.uint8)


def invert_mask(mask: np.ndarray, threshold: int = THRESHOLD) -> np.ndarray:
    """``255 - 255 * binarize(mask)``: 255 where the mask is background."""
    return (255 - 255 * binarize(mask, threshold)).astype(np.uint8)


def check_same_size(first: Path, first_mask: np.ndarray, second: Path, second_mask: np.ndarray) -> None:
    """Raise an :class:`EvcError` naming both files when two masks of a frame differ in size."""
    if first_mask.shape[:2] != second_mask.shape[:2]:
        (h1, w1), (h2, w2) = first_mask.shape[:2], second_mask.shape[:2]
        raise EvcError(f"{first} is {w1}x{h1} but {second} is {w2}x{h2}; the masks of a frame must have one size")
