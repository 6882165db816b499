"""A picture of a run's result: a contact sheet, one row per camera, a few frames spread over time.

Written to ``<data_root>/preview/<output folder name>.jpg``, never inside an output folder (downstream
loaders list those as cameras). A title line names the tool, the output folder and the date of the
run; each row starts with its camera's name and each tile carries its frame's stem.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from .image_io import image_size, read_gray, read_rgb, write_image
from .layout import Camera, DatasetLayout

__all__ = ["LABEL_WIDTH", "MAX_CAMERAS", "TILE", "TITLE_HEIGHT", "Key", "Tile", "background_rows", "contact_sheet",
           "draw_text", "label_rows", "label_tile", "mask_file_rows", "mask_overlay", "mask_rows", "spread",
           "write_preview"]

MAX_CAMERAS = 8  # rows
FRAMES = 4  # columns
TILE = (160, 240)  # (height, width) of one tile
GAP = 2  # pixels between tiles
TITLE_HEIGHT = 20  # the title band above the rows
LABEL_WIDTH = 72  # the camera-name column left of the rows
TEXT_HEIGHT = 14  # a label band: one line of text
_FONT, _SCALE = cv2.FONT_HERSHEY_SIMPLEX, 0.4
_INK, _PAPER = (255, 255, 255), (32, 32, 32)

KEY_LINE = 20  # height of a line of a key
SWATCH = 18  # side of a key's colour cell
Tile = tuple[str, np.ndarray]  # (label, RGB uint8 image of any size)
Colour = tuple[int, int, int]  # RGB


class Key:
    """A picture's key, laid out left to right in lines ``width`` pixels wide, dark text on white: text, colour
    swatches with their meaning, a colour ramp. ``texts`` lists every text it holds."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.items: list = []  # (width, draw(image, x, y)); None: a new line
        self.texts: list[str] = []

    def text(self, text: str) -> None:
        self.texts.append(text)
        width = cv2.getTextSize(text, _FONT, _SCALE, 1)[0][0] + 10
        self.items.append((width, lambda image, x, y: _dark_text(image, text, x, y + 14)))

    def swatch(self, colour: Colour, text: str, letter: str = "") -> None:
        """A cell of ``colour`` (with ``letter`` on it) and its meaning, kept on one line."""
        self.texts.append(f"{letter} {text}" if letter else text)
        width = SWATCH + 4 + cv2.getTextSize(text, _FONT, _SCALE, 1)[0][0] + 12

        def draw(image: np.ndarray, x: int, y: int) -> None:
            cv2.rectangle(image, (x, y + 3), (x + SWATCH - 3, y + SWATCH), (120, 120, 120), 1)
            image[y + 4:y + SWATCH, x + 1:x + SWATCH - 3] = colour
            if letter:
                cv2.putText(image, letter, (x + 3, y + SWATCH - 4), _FONT, _SCALE, (255, 255, 255), 1, cv2.LINE_AA)
            _dark_text(image, text, x + SWATCH + 2, y + 14)
        self.items.append((width, draw))

    def ramp(self, colour: Callable[[float], Colour], length: int = 100) -> None:
        """``colour(v)`` for ``v`` from 0 (left) to 1 (right)."""
        def draw(image: np.ndarray, x: int, y: int) -> None:
            for i in range(length):
                image[y + 4:y + SWATCH, x + i] = colour(i / (length - 1))
        self.items.append((length + 6, draw))

    def newline(self) -> None:
        self.items.append(None)

    def render(self) -> np.ndarray:
        """The key as an RGB uint8 picture ``width`` wide."""
        lines, x = [[]], 0
        for item in self.items:
            if item is None or (x + item[0] > self.width and lines[-1]):
                lines.append([])
                x = 0
            if item is not None:
                lines[-1].append((x, item[1]))
                x += item[0]
        lines = [line for line in lines if line]
        image = np.full((len(lines) * KEY_LINE + 6, self.width, 3), 255, np.uint8)
        for row, line in enumerate(lines):
            for x, draw in line:
                draw(image, 4 + x, 3 + row * KEY_LINE)
        return image


def _dark_text(image: np.ndarray, text: str, x: int, baseline: int) -> None:
    cv2.putText(image, text.encode("ascii", "replace").decode(), (x, baseline), _FONT, _SCALE, (20, 20, 20), 1,
                cv2.LINE_AA)


def draw_text(image: np.ndarray, text: str, left: int, top: int, width: int) -> None:
    """Write ``text`` in white on a dark band ``TEXT_HEIGHT`` high and at most ``width`` wide at
    ``(left, top)`` of ``image`` (RGB uint8, in place); text too long for the band loses its start
    (``..`` then the end, which tells frames and cameras apart)."""
    text = text.encode("ascii", "replace").decode()  # the Hershey font draws ASCII only
    while len(text) > 2 and cv2.getTextSize(text, _FONT, _SCALE, 1)[0][0] > width - 6:
        text = ".." + text[3:] if text.startswith("..") else ".." + text[1:]
    text_width = cv2.getTextSize(text, _FONT, _SCALE, 1)[0][0]
    band = image[top:top + TEXT_HEIGHT, left:left + min(width, text_width + 6)]
    band[:] = _PAPER
    cv2.putText(band, text, (3, TEXT_HEIGHT - 4), _FONT, _SCALE, _INK, 1, cv2.LINE_AA)


def label_tile(image: np.ndarray, text: str, bottom: bool = False) -> np.ndarray:
    """``image`` (RGB uint8) with ``text`` written in its top-left corner (bottom-left with ``bottom``)."""
    labelled = image.copy()
    if image.shape[0] >= TEXT_HEIGHT and text:
        draw_text(labelled, text, 0, image.shape[0] - TEXT_HEIGHT if bottom else 0, image.shape[1])
    return labelled


def reduction(size: tuple[int, int]) -> int:
    """The largest of 1, 2, 4 and 8 by which an image of ``size`` can be shrunk and still fill its tile."""
    scale = min(TILE[0] / size[0], TILE[1] / size[1])
    return max(f for f in (1, 2, 4, 8) if f * scale <= 1 or f == 1)


def _frame(camera: Camera, t: int) -> np.ndarray:
    """Frame ``t`` of a camera, from its image file or its video, decoded at the smallest size its tile needs
    (a full-size 1080p decode and overlay per tile made a preview take seconds)."""
    factor = reduction(camera.size())
    if camera.video is None:
        return read_rgb(camera.frames[t], factor)
    return _fit(camera.read_frame(t, camera.size()), _reduced(camera.size(), factor))


def _reduced(size: tuple[int, int], factor: int) -> tuple[int, int]:
    """``size`` divided by ``factor``, rounded up (as JPEG's DCT scaling gives it)."""
    return -(-size[0] // factor), -(-size[1] // factor)


def _fit(image: np.ndarray, shape: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """``image`` resized to ``shape`` ``(height, width)`` (area averaging; labels: ``nearest``)."""
    if image.shape[:2] == shape:
        return image
    return cv2.resize(image, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)


def fit_tile(image: np.ndarray) -> np.ndarray:
    """``image`` scaled to fit a tile, letterboxed in dark grey."""
    tile = np.full((*TILE, 3), 24, np.uint8)
    scale = min(TILE[0] / image.shape[0], TILE[1] / image.shape[1])
    height, width = max(1, round(image.shape[0] * scale)), max(1, round(image.shape[1] * scale))
    small = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    top, left = (TILE[0] - height) // 2, (TILE[1] - width) // 2
    tile[top:top + height, left:left + width] = small
    return tile


def contact_sheet(rows: list[tuple[str, list[Tile]]], title: str = "",
                  key: list[tuple[Colour, str]] | None = None) -> np.ndarray:
    """Labelled tiles laid out in a grid: a title band ``TITLE_HEIGHT`` high, then a key of the colours
    (``(colour, meaning)`` pairs) when given, then one row per ``(row label, tiles)`` whose label fills a
    ``LABEL_WIDTH`` column on the left; each tile is fitted to ``TILE`` and its label written in its
    bottom-left corner."""
    columns = max(len(tiles) for _, tiles in rows)
    width = LABEL_WIDTH + columns * (TILE[1] + GAP) - GAP
    legend = None
    if key:
        legend = Key(width)
        for colour, meaning in key:
            legend.swatch(colour, meaning)
        legend = legend.render()
    head = TITLE_HEIGHT + (0 if legend is None else legend.shape[0])
    height = head + len(rows) * (TILE[0] + GAP)
    sheet = np.full((height, width, 3), 255, np.uint8)
    sheet[:TITLE_HEIGHT] = _PAPER
    draw_text(sheet, title, 0, (TITLE_HEIGHT - TEXT_HEIGHT) // 2, width)
    if legend is not None:
        sheet[TITLE_HEIGHT:head] = legend
    for r, (name, tiles) in enumerate(rows):
        top = head + GAP + r * (TILE[0] + GAP)
        draw_text(sheet, name, 0, top + (TILE[0] - TEXT_HEIGHT) // 2, LABEL_WIDTH - GAP)
        for c, (label, image) in enumerate(tiles):
            left = LABEL_WIDTH + c * (TILE[1] + GAP)
            sheet[top:top + TILE[0], left:left + TILE[1]] = label_tile(fit_tile(image), label, bottom=True)
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


def write_preview(layout: DatasetLayout, name: str, row: Callable[[Camera], list[Tile]], tool: str,
                  key: Callable[[], list[tuple[Colour, str]]] | None = None) -> Path | None:
    """Write ``preview/<name>.jpg``: one row of tiles, ``row(camera)``, for each of the first cameras,
    titled with ``tool``, the output folder ``<root>/<name>`` and the date; ``key()``, asked once the rows
    are made, gives the colours to explain.

    Returns the path, or ``None`` when there was nothing to show.
    """
    rows = [(camera.name, tiles) for camera in layout.cameras[:MAX_CAMERAS] if (tiles := row(camera))]
    if not rows:
        return None
    path = layout.root / "preview" / f"{Path(name).name}.jpg"
    title = f"{tool}: {layout.root / name}  {datetime.now():%Y-%m-%d %H:%M}"
    write_image(path, contact_sheet(rows, title, key() if key else None), quality=85)
    return path


def mask_rows(layout: DatasetLayout, out_dir: str, ext: str) -> Callable[[Camera], list[Tile]]:
    """Rows of frames spread over time with their masks from ``out_dir`` overlaid (missing masks skipped)."""
    def row(camera: Camera) -> list[Tile]:
        paths = [(t, layout.output_path(out_dir, camera.name, camera.frames[t], ext)) for t in spread(camera)]
        tiles = []
        for t, path in paths:
            if path.exists():
                image = _frame(camera, t)
                tiles.append((camera.frames[t].stem, mask_overlay(image, _fit(read_gray(path), image.shape[:2]))))
        return tiles
    return row


def label_rows(layout: DatasetLayout, out_dir: str, palette: np.ndarray,
               seen: set[int] | None = None) -> Callable[[Camera], list[Tile]]:
    """Rows of frames spread over time, blended with the colours of their label maps from ``out_dir``; the
    labels shown are added to ``seen`` (for the key)."""
    def row(camera: Camera) -> list[Tile]:
        tiles = []
        for t in spread(camera):
            path = layout.output_path(out_dir, camera.name, camera.frames[t], ".png")
            if path.exists():
                image = _frame(camera, t)
                labels = _fit(read_gray(path, indices=True), image.shape[:2], nearest=True)
                if seen is not None:
                    seen.update(int(label) for label in np.unique(labels))
                colours = palette[labels].astype(np.float32)
                blend = np.where((labels > 0)[..., None], 0.45 * image + 0.55 * colours, 0.6 * image)
                tiles.append((camera.frames[t].stem, blend.astype(np.uint8)))
        return tiles
    return row


def background_rows(layout: DatasetLayout, bkgd_dir: str, ext: str) -> Callable[[Camera], list[Tile]]:
    """Rows of a camera's first frame beside its background; pixels never seen as background in magenta."""
    def row(camera: Camera) -> list[Tile]:
        path = layout.root / bkgd_dir / f"{camera.name}{ext}"
        if not path.exists():
            return []
        with Image.open(path) as image:
            background = np.array(image.convert("RGB"))
            if image.mode == "RGBA":
                background[np.asarray(image.getchannel("A")) == 0] = (255, 0, 255)
        return [(camera.frames[0].stem, _frame(camera, 0)), (f"{camera.name}{ext}", background)]
    return row


def mask_file_rows(layout: DatasetLayout, output: Callable[[Camera, Path], Path],
                   image_dir: str) -> Callable[[Camera], list[Tile]]:
    """Rows for tools whose layout lists mask files: the output mask ``output(camera, frame)`` of frames
    spread over time, overlaid on the image of that camera and stem in ``image_dir`` (the mask alone,
    in grey, when there is no such image or it has another size)."""
    def row(camera: Camera) -> list[Tile]:
        tiles = []
        for t in spread(camera):
            frame = camera.frames[t]
            path = output(camera, frame)
            if not path.exists():
                continue
            mask = read_gray(path)
            folder = layout.root / image_dir / camera.name
            images = [folder / f"{frame.stem}{ext}" for ext in (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")]
            found = next((p for p in images if p.is_file()), None)
            if found is not None and image_size(found) == mask.shape:
                image = read_rgb(found, reduction(mask.shape))
                tiles.append((frame.stem, mask_overlay(image, _fit(mask, image.shape[:2]))))
            else:
                small = _fit(mask, _reduced(mask.shape, reduction(mask.shape)))
                tiles.append((frame.stem, cv2.cvtColor(small, cv2.COLOR_GRAY2RGB)))
        return tiles
    return row
