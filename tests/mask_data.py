"""A synthetic capture with RVM and SCHP masks for the mask helpers' tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from easyvolcap.image_io import read_gray, write_image
from easyvolcap.synthetic.capture import make_demo_dataset


def make_mask_dataset(root: Path, cameras: int = 3, frames: int = 4) -> Path:
    """The demo capture plus ``rvm/<cam>/<stem>.jpg`` (soft: the figure blurred, plus a prop) and
    ``mask/<cam>/<stem>.png`` (0/255: the figure plus a bystander far from it)."""
    data = make_demo_dataset(root, cameras=cameras, frames=frames, size=(48, 64), odd_size=(40, 56))
    for truth in sorted((data / "gt_masks").rglob("*.png")):
        camera, stem = truth.parent.name, truth.stem
        figure = read_gray(truth)
        rvm = cv2.GaussianBlur(figure, (7, 7), 2)
        rvm[2:8, :10] = 140  # a prop RVM keeps and SCHP does not
        schp = figure.copy()
        schp[-12:, -6:] = 255  # a bystander SCHP keeps and RVM does not
        write_image(data / "rvm" / camera / f"{stem}.jpg", rvm)
        write_image(data / "mask" / camera / f"{stem}.png", schp)
    return data


def reference_merge(rvm: np.ndarray, schp: np.ndarray, dilation: int, threshold: int = 128) -> np.ndarray:
    """EasyVolcap's rule stated plainly in numpy: foreground where the RVM mask scaled to its maximum 255
    exceeds ``threshold``, grown by a ``dilation x dilation`` square (cv2's anchor: offsets
    ``-(d // 2)`` .. ``(d - 1) // 2``), and the SCHP mask kept only there."""
    peak = float(rvm.max())
    foreground = rvm.astype(np.float64) * 255 / peak > threshold if peak else np.zeros(rvm.shape, bool)
    height, width = rvm.shape
    grown = np.zeros_like(foreground)
    offsets = range(-(dilation // 2), (dilation - 1) // 2 + 1) if dilation > 1 else [0]
    for dy in offsets:
        for dx in offsets:  # grown[y, x] |= foreground[y + dy, x + dx] where that is inside the image
            ys, xs = slice(max(0, -dy), min(height, height - dy)), slice(max(0, -dx), min(width, width - dx))
            grown[ys, xs] |= foreground[max(0, dy):min(height, height + dy), max(0, dx):min(width, width + dx)]
    return np.where(grown, schp, 0).astype(np.uint8)
