"""A picture of a run's result: a contact sheet, one row per camera, a few frames spread over time.

Written to ``<data_root>/preview/<output folder name>.jpg``, never inside an output folder (downstream
loaders list those as cameras).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from .image_io import read_gray, write_image
from .layout import Camera, DatasetLayout

__all__ = ["MAX_CAMERAS", "TILE", "background_rows", "contact_sheet", "label_rows", "mask_overlay", "mask_rows",
           "spread", "write_preview"]

MAX_CAMERAS = 8  # rows
FRAMES = 4  # columns
TILE = (160, 240)  # (height, width) of one tile
GAP = 2  # pixels between tiles


def _frame(camera: Camera, t: int) -> np.ndarray:
    """Frame ``t`` of a camera, from its image file or its video."""
    return camera.read_frame(t, camera.size())


def fit_tile(image: np.ndarray) -> np.ndarray:
    """``image`` scaled to fit a tile, letterboxed in dark grey."""
    tile = np.full((*TILE, 3), 24, np.uint8)
    scale = min(TILE[0] / image.shape[0], TILE[1] / image.shape[1])
    height, width = max(1, round(image.shape[0] * scale)), max(1, round(image.shape[1] * scale))
    small = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    top, left = (TILE[0] - height) // 2, (TILE[1] - width) // 2
    tile[top:top + height, left:left + width] = small
    return tile


def contact_sheet(rows: list[list[np.ndarray]]) -> np.ndarray:
    """Tiles (RGB uint8, any size) laid out in a grid of ``len(rows)`` rows."""
    columns = max(len(row) for row in rows)
    sheet = np.full((len(rows) * (TILE[0] + GAP) - GAP, columns * (TILE[1] + GAP) - GAP, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            top, left = r * (TILE[0] + GAP), c * (TILE[1] + GAP)
            sheet[top:top + TILE[0], left:left + TILE[1]] = fit_tile(image)
    return sheet


def mask_overlay(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The image with its background dimmed and its foreground tinted green: ``mask`` uint8, 255 = person."""
    alpha = (mask.astype(np.float32) / 255)[..., None]
    tinted = image * (0.25 + 0.75 * alpha) + np.array([0, 90, 0], np.float32) * alpha * 0.5
    return np.clip(tinted, 0, 255).astype(np.uint8)


def spread(camera: Camera, count: int = FRAMES) -> list[int]:
    """Up to ``count`` frame indices evenly spread over the camera's frames."""
    n, k = len(camera), min(count, len(camera))
    return sorted({round(i * (n - 1) / max(1, k - 1)) for i in range(k)})


def write_preview(layout: DatasetLayout, name: str, row: Callable[[Camera], list[np.ndarray]]) -> Path | None:
    """Write ``preview/<name>.jpg``: one row of tiles, ``row(camera)``, for each of the first cameras.

    Returns the path, or ``None`` when there was nothing to show.
    """
    rows = [tiles for camera in layout.cameras[:MAX_CAMERAS] if (tiles := row(camera))]
    if not rows:
        return None
    path = layout.root / "preview" / f"{Path(name).name}.jpg"
    write_image(path, contact_sheet(rows), quality=85)
    return path


def mask_rows(layout: DatasetLayout, out_dir: str, ext: str) -> Callable[[Camera], list[np.ndarray]]:
    """Rows of frames spread over time with their masks from ``out_dir`` overlaid (missing masks skipped)."""
    def row(camera: Camera) -> list[np.ndarray]:
        paths = [(t, layout.output_path(out_dir, camera.name, camera.frames[t], ext)) for t in spread(camera)]
        return [mask_overlay(_frame(camera, t), read_gray(path)) for t, path in paths if path.exists()]
    return row


def label_rows(layout: DatasetLayout, out_dir: str, palette: np.ndarray) -> Callable[[Camera], list[np.ndarray]]:
    """Rows of frames spread over time, blended with the colours of their label maps from ``out_dir``."""
    def row(camera: Camera) -> list[np.ndarray]:
        tiles = []
        for t in spread(camera):
            path = layout.output_path(out_dir, camera.name, camera.frames[t], ".png")
            if path.exists():
                image, labels = _frame(camera, t), read_gray(path, indices=True)
                colours = palette[labels].astype(np.float32)
                blend = np.where((labels > 0)[..., None], 0.45 * image + 0.55 * colours, 0.6 * image)
                tiles.append(blend.astype(np.uint8))
        return tiles
    return row


def background_rows(layout: DatasetLayout, bkgd_dir: str, ext: str) -> Callable[[Camera], list[np.ndarray]]:
    """Rows of a camera's first frame beside its background; pixels never seen as background in magenta."""
    def row(camera: Camera) -> list[np.ndarray]:
        path = layout.root / bkgd_dir / f"{camera.name}{ext}"
        if not path.exists():
            return []
        with Image.open(path) as image:
            background = np.array(image.convert("RGB"))
            if image.mode == "RGBA":
                background[np.asarray(image.getchannel("A")) == 0] = (255, 0, 255)
        return [_frame(camera, 0), background]
    return row
