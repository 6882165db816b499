"""A small synthetic multi-view capture: a figure walking in front of static backgrounds.

``make_demo_dataset`` writes ``DATA_ROOT/images/<camera>/*.jpg`` and the exact foreground masks under
``DATA_ROOT/gt_masks`` (what ``evc-demo`` writes), so a newcomer can run every tool and tests can check
results against the truth.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..image_io import write_image

__all__ = ["background", "figure_mask", "make_demo_dataset"]


def background(height: int, width: int, seed: int) -> np.ndarray:
    """A static, textured RGB uint8 background (smooth colour blobs plus fine noise)."""
    rng = np.random.default_rng(seed)
    low = rng.integers(40, 220, size=(4, 6, 3)).astype(np.uint8)
    image = cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    image += rng.integers(-6, 7, size=image.shape, dtype=np.int16)
    return np.clip(image, 0, 255).astype(np.uint8)


def figure_mask(height: int, width: int, t: float) -> np.ndarray:
    """A person-like silhouette (head, torso, legs) at horizontal position ``t`` in [0, 1]."""
    mask = np.zeros((height, width), np.uint8)
    cx, unit = int((0.2 + 0.6 * t) * width), height / 10
    cv2.circle(mask, (cx, int(2 * unit)), int(0.8 * unit), 255, -1)
    cv2.ellipse(mask, (cx, int(4.6 * unit)), (int(1.1 * unit), int(1.9 * unit)), 0, 0, 360, 255, -1)
    for side in (-1, 1):
        cv2.line(mask, (cx + side * int(0.5 * unit), int(6 * unit)),
                 (cx + side * int(0.9 * unit), int(9.3 * unit)), 255, max(1, int(0.6 * unit)))
    return mask


def make_demo_dataset(root: str | Path, cameras: int = 3, frames: int = 8,
                      size: tuple[int, int] = (96, 128), odd_size: tuple[int, int] | None = (80, 112),
                      ext: str = ".jpg") -> Path:
    """Write the synthetic capture; the last camera has ``odd_size`` when given.

    Returns the dataset root. Images go to ``images/<camera>/<frame:06d><ext>``, truth masks to
    ``gt_masks/<camera>/<frame:06d>.png``.
    """
    root = Path(root)
    for c in range(cameras):
        height, width = odd_size if odd_size and c == cameras - 1 else size
        name = f"{c:02d}"
        plate = background(height, width, seed=c)
        clothes = np.array([[200, 60, 50], [50, 90, 200], [60, 170, 80]][c % 3], np.uint8)
        for f in range(frames):
            mask = figure_mask(height, width, (f / max(1, frames - 1) + 0.1 * c) % 1.0)
            image = plate.copy()
            image[mask > 0] = clothes
            write_image(root / "images" / name / f"{f:06d}{ext}", image, quality=95)
            write_image(root / "gt_masks" / name / f"{f:06d}.png", mask)
    return root
