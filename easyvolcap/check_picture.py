"""The picture of a mask check, ``<data_root>/preview/check_<masks_dir>.jpg``.

A title line (the tool, the mask folder, masks and flags counted, the date), then a key of the colours
and letters below. Then a cameras x frames grid, each cell coloured by its score (red 0 ... green 1) and marked
with the first letter of its flag (G garbage, E empty, A misaligned, X extra, M missing, T temporal); rows are
labelled with camera names, columns with frame stems. Bottom: the worst masks, each drawn against what the other cameras
see (white: the mask where they support it; red: what no other camera supports, i.e. extra, what a repair
removes; blue: what they need and the mask lacks, i.e. missing, what a repair adds; slate: the rest of their
consensus, a visual hull, fatter than any one view).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np

from .image_io import write_image
from .preview import TITLE_HEIGHT, Key, draw_text

__all__ = ["LETTERS", "OVERLAY_KEY", "overlay", "picture_key", "write_check_picture"]

LETTERS = {"garbage": "G", "empty": "E", "misaligned": "A", "extra": "X", "missing": "M", "temporal": "T"}
CELL = 18
LABEL = 64  # the camera-name column
TOP = 18  # the frame-name band above the grid
WORST = 6
TILE = 200
FONT = cv2.FONT_HERSHEY_SIMPLEX
MIN_WIDTH = 760  # the key's lines fit in this width
SUPPORTED, EXTRA, FILL, CONSENSUS = (235, 235, 235), (230, 40, 40), (50, 110, 255), (70, 80, 100)
OVERLAY_KEY = (  # the colours of the worst masks' pictures, as the key says them
    (SUPPORTED, "the mask, where other cameras support it"),
    (EXTRA, "extra: no other camera supports it (a repair removes it)"),
    (FILL, "missing: the others need it (a repair adds it)"),
    (CONSENSUS, "the rest of the others' consensus (a visual hull)"),
)


def _colour(score: float) -> tuple[int, int, int]:
    score = float(np.clip(score, 0, 1)) if np.isfinite(score) else 0.0
    return int(230 * (1 - score)), int(200 * score), 40


def overlay(mask: np.ndarray, consensus: np.ndarray, fill: np.ndarray | None = None, tolerance: int = 2) -> np.ndarray:
    """RGB uint8 picture of a mask (bool) against the other cameras' consensus (bool) and what they need that it
    lacks (``fill``, bool)."""
    from .multiview import unsupported

    band = cv2.dilate(consensus.astype(np.uint8), np.ones((2 * tolerance + 1,) * 2, np.uint8)) > 0
    image = np.full((*mask.shape, 3), 30, np.uint8)
    image[consensus] = CONSENSUS
    image[mask] = SUPPORTED
    image[unsupported(mask, band) if consensus.any() else mask] = EXTRA
    if fill is not None:
        image[fill & ~mask] = FILL
    return image


def _text(image: np.ndarray, text: str, origin: tuple[int, int], scale: float = 0.4,
          colour: tuple[int, int, int] = (20, 20, 20)) -> None:
    cv2.putText(image, text, origin, FONT, scale, colour, 1, cv2.LINE_AA)


def picture_key(width: int, tiles: bool) -> Key:
    """What the colours and letters mean: the grid's cells and, when there are tiles, the worst masks' pictures."""
    key = Key(width)
    key.text("cell colour: score")
    key.text("0")
    key.ramp(_colour)
    key.text("1 (0.5: at a threshold)")
    key.newline()
    key.text("letter: flag")
    for flag, letter in LETTERS.items():
        key.swatch(_colour(0.2), flag, letter)
    if tiles:
        key.newline()
        key.text("worst masks:")
        for colour, meaning in OVERLAY_KEY:
            key.swatch(colour, meaning)
    return key


def _title(width: int, text: str) -> np.ndarray:
    band = np.full((TITLE_HEIGHT, width, 3), (32, 32, 32), np.uint8)
    draw_text(band, text, 0, 3, width)
    return band


def _grid(rows: list[dict], frames: list[str], cameras: list[str]) -> np.ndarray:
    columns = max(1, min(len(frames), 1600 // CELL))
    per = -(-len(frames) // columns)  # frames per column: the worst cell of each bin is shown
    bins = [frames[i:i + per] for i in range(0, len(frames), per)]
    cells = {(r["camera"], r["frame"]): r for r in rows}
    grid = np.full((TOP + len(cameras) * CELL, LABEL + len(bins) * CELL, 3), 255, np.uint8)
    step = max(1, -(-56 // CELL))  # a frame label every few columns
    for c, group in enumerate(bins):
        x = LABEL + c * CELL
        if c % step == 0:
            _text(grid, group[0][-8:], (x, TOP - 6), 0.35)
        for r, camera in enumerate(cameras):
            found = [cells[camera, f] for f in group if (camera, f) in cells]
            if not found:
                continue
            worst = min(found, key=lambda row: (row["flag"] == "", _score(row)))
            y = TOP + r * CELL
            grid[y + 1:y + CELL - 1, x + 1:x + CELL - 1] = _colour(_score(worst))
            if worst["flag"]:
                _text(grid, LETTERS[worst["flag"]], (x + 4, y + CELL - 5), 0.4, (255, 255, 255))
    for r, camera in enumerate(cameras):
        _text(grid, camera[-9:], (2, TOP + r * CELL + CELL - 5), 0.4)
    return grid


def _score(row: dict) -> float:
    value = row.get("score", 1.0)
    return float(value) if value != "" else 1.0


def write_check_picture(root: Path, masks_dir: str, rows: list[dict], frames: list[str], cameras: list[str],
                        overlays: Callable[[str], dict[str, tuple[np.ndarray, ...]]]) -> Path:
    """Write the picture and return its path; ``overlays(frame)`` gives ``{camera: (mask, consensus, fill)}``."""
    grid = _grid(rows, frames, cameras)
    worst = sorted((r for r in rows if r["flag"]), key=_score)[:WORST]
    tiles = []
    by_frame: dict[str, dict] = {}
    for row in worst:
        if row["frame"] not in by_frame:
            by_frame[row["frame"]] = overlays(row["frame"])
        picture = overlay(*by_frame[row["frame"]][row["camera"]])
        scale = TILE / max(picture.shape[:2])
        shape = (max(1, round(picture.shape[1] * scale)), max(1, round(picture.shape[0] * scale)))
        picture = cv2.resize(picture, shape, interpolation=cv2.INTER_NEAREST)
        tile = np.full((TILE + 20, TILE, 3), 255, np.uint8)
        tile[20:20 + picture.shape[0], :picture.shape[1]] = picture
        _text(tile, f"{row['camera']}/{row['frame']} {row['flag']}"[:30], (2, 14), 0.4)
        tiles.append(tile)
    width = max(grid.shape[1], len(tiles) * (TILE + 4), MIN_WIDTH)
    flagged = sum(1 for row in rows if row["flag"])
    title = f"evc-check: {root / masks_dir}  {len(rows)} masks, {flagged} flagged  {datetime.now():%Y-%m-%d %H:%M}"
    parts = [_title(width, title), picture_key(width, bool(tiles)).render(),
             np.pad(grid, ((0, 0), (0, width - grid.shape[1]), (0, 0)), constant_values=255)]
    if tiles:
        strip = np.full((TILE + 24, width, 3), 255, np.uint8)
        for i, tile in enumerate(tiles):
            strip[4:, i * (TILE + 4):i * (TILE + 4) + TILE] = tile
        parts.append(strip)
    path = root / "preview" / f"check_{Path(masks_dir).name}.jpg"
    write_image(path, np.concatenate(parts, 0), quality=90)
    return path
