"""A calibrated synthetic capture: a ring of cameras with lens distortion around a walking person-shaped
body, its exact silhouettes, and the mask faults the multi-view check must find (or ignore).

The body is a union of ellipsoids (head, torso, pelvis, arms, legs) that walks a small circle while
its arms and legs swing. A silhouette is exact: each pixel's ray (through the pixel centre, undistorted
with OpenCV) is intersected with every ellipsoid. Used by the tests, ``bench/check.py`` and
``python -m easyvolcap.demo --cameras 8``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from ..calibration import Calibration, field_radius2, viewing_box, write_calibration
from ..image_io import write_image
from ..multiview import FrameGeometry, check_frame, repair_mask
from .capture import background, figure_mask

__all__ = ["CORRUPTIONS", "NOISES", "Scene", "check_scene", "corrupt", "corrupted_frame", "make_scene", "turned",
           "write_scene"]

CORRUPTIONS = ("empty", "shifted", "missing", "extra", "bystander")  # must be flagged
NOISES = ("eroded", "dilated", "soft")  # must not be flagged
UP = np.array([0.0, 0.0, 1.0])


def _rotation_x(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rotation_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def body(t: float) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, bool]]:
    """The body at time ``t`` in [0, 1]: ellipsoids ``(centre, rotation, radii, is_leg)`` in metres, z up."""
    heading = 2 * np.pi * t
    root = np.array([0.3 * np.cos(heading), 0.3 * np.sin(heading), 0.0])
    turn = _rotation_z(heading + np.pi / 2)
    swing = 0.3 * np.sin(4 * np.pi * t)
    parts = [(np.array([0, 0, 1.62]), np.eye(3), np.array([0.10, 0.11, 0.12]), False),
             (np.array([0, 0, 1.27]), np.eye(3), np.array([0.19, 0.12, 0.27]), False),
             (np.array([0, 0, 0.97]), np.eye(3), np.array([0.17, 0.12, 0.12]), False)]
    for side in (-1, 1):
        for pivot, length, radius, angle, leg in ((np.array([side * 0.23, 0, 1.48]), 0.33, 0.055, side * swing, False),
                                                  (np.array([side * 0.09, 0, 0.93]), 0.47, 0.075, -side * swing, True)):
            rotation = _rotation_x(angle)
            parts.append((pivot + rotation @ np.array([0, 0, -length]), rotation,
                          np.array([radius, radius, length + 0.02]), leg))
    return [(root + turn @ centre, turn @ rotation, radii, leg) for centre, rotation, radii, leg in parts]


def _look_at(centre: np.ndarray, target: np.ndarray) -> np.ndarray:
    forward = (target - centre) / np.linalg.norm(target - centre)
    right = np.cross(forward, UP)
    right /= np.linalg.norm(right)
    return np.stack([right, np.cross(forward, right), forward])


@dataclass(frozen=True)
class Scene:
    """Cameras (``calibration``, with ``H``/``W`` set) and ``frames`` time steps of the walking body, ``step``
    walk cycles apart."""

    calibration: Calibration
    frames: int
    step: float = 1 / 24  # walk cycles per frame

    def silhouette(self, camera: int, frame: int, legs: bool = True) -> np.ndarray:
        """The exact silhouette of ``frame`` in ``camera``: ``(H, W)`` uint8, 255 = body (``legs=False``: the
        legs alone are left out)."""
        cal = self.calibration
        height, width = int(cal.H[camera]), int(cal.W[camera])
        v, u = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
        pixels = np.stack([u.ravel(), v.ravel()], -1)[:, None, :]
        normalised = cv2.undistortPoints(pixels, cal.K[camera], cal.D[camera], None, None, None,
                                             (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 40, 1e-10))[:, 0]
        directions = np.concatenate([normalised, np.ones((len(normalised), 1))], 1) @ cal.R[camera]
        origin = cal.centres[camera]
        hit = np.zeros(len(directions), bool)
        for centre, rotation, radii, leg in body(frame * self.step):
            if leg and not legs:
                continue
            q = ((origin - centre) @ rotation) / radii
            e = (directions @ rotation) / radii
            a, b, c = (e * e).sum(1), 2 * (e @ q), q @ q - 1
            disc = b * b - 4 * a * c
            hit |= (disc >= 0) & (-b + np.sqrt(np.maximum(disc, 0)) > 0)
        return (hit.reshape(height, width) * 255).astype(np.uint8)


def make_scene(cameras: int = 8, frames: int = 6, size: tuple[int, int] = (120, 160), seed: int = 0,
               cut: int = 1, distortion: float = 0.12, step: float = 1 / 24) -> Scene:
    """A ring of ``cameras`` around the walking body, ``size`` = (H, W); the last ``cut`` cameras zoom in so
    that the person overflows their frame (partly outside the view). Radial distortion up to ``distortion``."""
    rng = np.random.default_rng(seed)
    height, width = size
    K, R, T, D = [], [], [], []
    for i in range(cameras):
        angle = 2 * np.pi * i / cameras + rng.uniform(-0.15, 0.15)
        radius = rng.uniform(2.8, 3.4)
        centre = np.array([radius * np.cos(angle), radius * np.sin(angle), rng.uniform(0.7, 1.5)])
        target = np.array([0, 0, 0.9]) + rng.uniform(-0.1, 0.1, 3)
        focal = 1.25 * height * radius / 3.0 * (1.9 if i >= cameras - cut else 1.0)
        K.append(np.array([[focal, 0, width / 2 + rng.uniform(-3, 3)], [0, focal, height / 2 + rng.uniform(-3, 3)],
                           [0, 0, 1]]))
        rotation = _look_at(centre, target)
        R.append(rotation)
        T.append(-rotation @ centre)
        D.append(np.array([rng.uniform(-distortion, distortion), rng.uniform(-0.02, 0.02),
                           rng.uniform(-1e-3, 1e-3), rng.uniform(-1e-3, 1e-3), 0.0]))
    names = tuple(f"{i:02d}" for i in range(cameras))
    calibration = Calibration(names, np.stack(K), np.stack(R), np.stack(T), np.stack(D),
                              np.full(cameras, height, np.int64), np.full(cameras, width, np.int64))
    return Scene(calibration, frames, step)


def turned(scene: Scene, cameras: list[int], degrees: float, axis: str = "y") -> Scene:
    """``scene`` with ``cameras`` turned by ``degrees`` about their own ``axis`` (``y``: pan, so the person walks out
    of view; 180 about ``y``: looking away), their centres kept; ``axis="zero"`` (``degrees`` unused): the rotation
    of all zeros (the identity), the translation kept, as a blanked ``R_`` in ``extri.yml`` reads."""
    from dataclasses import replace

    cal = scene.calibration
    R, T = cal.R.copy(), cal.T.copy()
    for c in cameras:
        if axis == "zero":
            R[c] = np.eye(3)
            continue
        a = np.radians(degrees)
        turn = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
        centre = cal.centres[c]
        R[c] = turn @ R[c]
        T[c] = -R[c] @ centre
    return replace(scene, calibration=replace(cal, R=R, T=T))


def _place(mask: np.ndarray, shape: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``shape`` (a small uint8 mask) pasted where it does not touch ``mask`` (grown by a margin)."""
    height, width = mask.shape
    grown = cv2.dilate(mask, np.ones((9, 9), np.uint8))
    h, w = shape.shape
    for _ in range(200):
        top, left = int(rng.integers(0, max(1, height - h))), int(rng.integers(0, max(1, width - w)))
        window = grown[top:top + h, left:left + w]
        if window.shape == shape.shape and not np.any(window & shape):
            out = mask.copy()
            out[top:top + h, left:left + w] |= shape
            return out
    raise ValueError("no room for the extra blob")


def corrupt(mask: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """``mask`` (uint8 0/255 silhouette) with one fault (``CORRUPTIONS``) or harmless noise (``NOISES``)."""
    height, width = mask.shape
    area = int(np.count_nonzero(mask))
    if kind == "empty":
        return np.zeros_like(mask)
    if kind == "shifted":
        shift = round(0.1 * width) * (1 if rng.random() < 0.5 else -1)
        out = np.zeros_like(mask)
        if shift > 0:
            out[:, shift:] = mask[:, :-shift]
        else:
            out[:, :shift] = mask[:, -shift:]
        return out
    if kind == "missing":  # the lower body: rows from the bottom until 35% of the silhouette is gone
        rows = np.cumsum(np.count_nonzero(mask, axis=1)[::-1])
        cut = height - int(np.searchsorted(rows, 0.35 * area))
        out = mask.copy()
        out[cut - 1:] = 0
        return out
    if kind == "extra":  # a limb-sized blob: an ellipse of ~12% of the silhouette's area
        minor = max(2, int(np.sqrt(0.12 * area / np.pi / 3)))
        blob = np.zeros((6 * minor + 1, 2 * minor + 1), np.uint8)
        cv2.ellipse(blob, (minor, 3 * minor), (minor, 3 * minor), 0, 0, 360, 255, -1)
        return _place(mask, blob, rng)
    if kind == "bystander":  # a second, smaller person seen by this camera only
        tall = max(12, height // 2)
        person = figure_mask(tall, tall, 0.5)
        columns = np.flatnonzero(person.any(0))
        return _place(mask, person[:, columns[0]:columns[-1] + 1], rng)
    if kind in ("eroded", "dilated"):
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
        return (cv2.erode if kind == "eroded" else cv2.dilate)(mask, kernel)
    if kind == "soft":  # a matte's soft edge; written as JPEG it also gets compression noise
        return cv2.GaussianBlur(mask, (0, 0), 1.2)
    raise ValueError(f"unknown corruption {kind!r}")


def corrupted_frame(scene: Scene, frame: int, bad: int, rng: np.random.Generator, quality: int = 75):
    """One frame of ``scene`` as a checker meets it: ``bad`` cameras corrupted (the kinds taking turns), about
    half of the others harmlessly noisy, every mask through JPEG at ``quality``.

    Returns:
        ``(masks, kinds, truths)``: per camera the uint8 mask as decoded, the corruption or noise applied
        (``None`` for an exact one) and the exact silhouette.
    """
    cameras = len(scene.calibration.names)
    truths = [scene.silhouette(c, frame) for c in range(cameras)]
    kinds: list[str | None] = [None] * cameras
    for c in rng.choice(cameras, bad, replace=False):
        kinds[c] = CORRUPTIONS[(frame + c) % len(CORRUPTIONS)]
    for c in range(cameras):
        if kinds[c] is None and rng.random() < 0.5:
            kinds[c] = NOISES[c % len(NOISES)]
    masks = []
    for c, kind in enumerate(kinds):
        mask = corrupt(truths[c], kind, rng) if kind else truths[c]
        masks.append(cv2.imdecode(cv2.imencode(".jpg", mask, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], 0))
    return masks, kinds, truths


def _iou(mask: np.ndarray, truth: np.ndarray) -> float:
    a, b = mask > 127, truth > 0
    return float((a & b).sum() / max(1, (a | b).sum()))


def check_scene(cameras: int, bad: int, seed: int, size: tuple[int, int] = (150, 200), frames: int = 2) -> list[dict]:
    """Run the multi-view check on ``frames`` frames of a scene with ``bad`` corrupted cameras in each
    (:func:`corrupted_frame`) and repair what it flags.

    Returns:
        One record per mask: ``kind`` (the corruption, or ``"clean"`` for exact and harmlessly noisy masks),
        ``flags``, ``missing``, ``extra``; a flagged mask also ``iou`` (with the exact silhouette,
        before and after its repair) and ``outside`` (repaired pixels farther than 4 pixels from the silhouette).
    """
    scene = make_scene(cameras, frames, size, seed=seed)
    cal = scene.calibration
    geometry = FrameGeometry.build(cal.K, cal.R, cal.T, cal.D, np.stack([cal.H, cal.W], 1), field_radius2(cal),
                                   viewing_box(cal), "cpu")
    rng = np.random.default_rng(seed)
    records = []
    for frame in range(frames):
        masks, kinds, truths = corrupted_frame(scene, frame, bad, rng)
        result = check_frame(torch.tensor(np.stack(masks) > 127), geometry)
        for c, kind in enumerate(kinds):
            record = {"kind": kind if kind in CORRUPTIONS else "clean", "flags": result.flags[c],
                      "missing": float(result.missing[c]), "extra": float(result.extra[c])}
            if result.flags[c]:  # every flagged mask is repaired, a wrongly flagged clean one too
                fixed = repair_mask(masks[c], (result.consensus[c] | result.unknown[c]).numpy(), result.flags[c],
                                    tuple(result.shift[c]), 2, result.fill[c].numpy())
                near = cv2.dilate(truths[c], np.ones((9, 9), np.uint8)) > 0
                record.update(iou=(_iou(masks[c], truths[c]), _iou(fixed, truths[c])),
                              outside=int(((fixed > 127) & ~near).sum()))
            records.append(record)
    return records


def write_scene(root: str | Path, scene: Scene, masks_dir: str = "masks", ext: str = ".jpg",
                faults: dict[tuple[int, int], str] | None = None, images: bool = False, seed: int = 0,
                calibration: bool = True, quality: int = 75, tick: Callable[[int], object] | None = None) -> Path:
    """Write the scene's masks (``<masks_dir>/<camera>/<frame:06d><ext>``, with ``faults[(camera, frame)]``
    applied), the exact silhouettes (``gt_masks/``, PNG), ``intri.yml``/``extri.yml`` (``calibration``) and,
    with ``images``, rendered images (a textured backdrop and a coloured figure); ``tick(1)`` after each
    camera's frame (progress). Returns ``root``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    faults = faults or {}
    cal = scene.calibration
    for c, name in enumerate(cal.names):
        plate = background(int(cal.H[c]), int(cal.W[c]), seed=c) if images else None
        for f in range(scene.frames):
            truth = scene.silhouette(c, f)
            kind = faults.get((c, f))
            mask = corrupt(truth, kind, rng) if kind else truth
            write_image(root / masks_dir / name / f"{f:06d}{ext}", mask, quality=quality)
            write_image(root / "gt_masks" / name / f"{f:06d}.png", truth)
            if plate is not None:
                image = plate.copy()
                image[truth > 0] = (200, 70, 60)
                write_image(root / "images" / name / f"{f:06d}.jpg", image, quality=92)
            if tick is not None:
                tick(1)
    if calibration:
        write_calibration(root, cal)
    return root
