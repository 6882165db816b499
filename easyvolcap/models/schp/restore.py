"""SCHP's crop and restore geometry: a person's box to a letterboxed network input and back.

Each detected box grows by 10% per side (upstream's ``bbox_expand``), is letterboxed to the network
input by SCHP's affine transform, and the parser's logits come back by the inverse transform: bilinear
on the logits then argmax (``restore="logits"``, SCHP's ``simple_extractor``), or argmax then nearest on
the labels (``restore="labels"``, the multi-person pipeline). A frame's crops are pasted on a
:class:`FrameCanvas` where a person label beats background and, between two of a kind, the more
confident one wins. Pure numpy and OpenCV: no files, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ...errors import EvcError
from .transforms import affine_transform, box_to_center_scale, warp_logit_channels

__all__ = ["RESTORE_MODES", "Crop", "FrameCanvas", "candidate_classes", "check_fusion_size", "crop_overlaps",
           "expand_box", "make_crop", "restore_crop"]

RESTORE_MODES = ("logits", "labels")


@dataclass(frozen=True)
class Crop:
    """One person's crop: its inclusive box in the frame and the maps to and from the network input."""

    box: tuple[int, int, int, int]  # x0, y0, x1, y1, inclusive
    trans: np.ndarray  # crop -> network input, [2, 3]
    inv_trans: np.ndarray  # network input -> crop, [2, 3]

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the crop."""
        return self.box[2] - self.box[0] + 1, self.box[3] - self.box[1] + 1


def make_crop(box: tuple[float, float, float, float], width: int, height: int, input_size: tuple[int, int]) -> Crop:
    """A detected person's ``(x0, y0, x1, y1)`` box expanded and clamped to the ``width`` x ``height`` frame
    (:func:`expand_box`), and SCHP's letterbox transform for it."""
    box = expand_box(box, width, height)
    crop_w, crop_h = box[2] - box[0] + 1, box[3] - box[1] + 1
    center, scale = box_to_center_scale((0, 0, crop_w - 1, crop_h - 1), input_size)
    return Crop(box, affine_transform(center, scale, input_size), affine_transform(center, scale, input_size, True))


def restore_crop(logits: np.ndarray, crop: Crop, mode: str, keep_logits: bool, confidence_at: np.ndarray | None = None,
                 classes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Bring a crop's ``[C, H, W]`` input-size logits back to the crop.

    Returns ``(labels uint8 [h, w], confidence float32 [h, w], logits float32 [h, w, C] or None)``;
    the confidence is the softmax probability of the chosen label, computed where ``confidence_at``
    (bool ``[h, w]``) is true and 0 elsewhere (``None``: everywhere). ``classes`` (from
    :func:`candidate_classes`) lets the logits mode warp only those classes when neither the
    confidence nor the logits are wanted; the labels are the same.
    """
    if mode == "labels":  # upstream multi-person: argmax at the input size, nearest warp of the labels
        labels_in = logits.argmax(axis=0).astype(np.uint8)
        top = np.take_along_axis(logits, labels_in[None].astype(np.intp), axis=0)[0]
        confidence_in = (1.0 / np.exp(logits - top[None]).sum(axis=0)).astype(np.float32)
        warp = {"dsize": crop.size, "flags": cv2.INTER_NEAREST, "borderMode": cv2.BORDER_CONSTANT, "borderValue": 0}
        labels = cv2.warpAffine(labels_in, crop.inv_trans, **warp)
        confidence = cv2.warpAffine(confidence_in, crop.inv_trans, **warp)
        if confidence_at is not None:
            confidence[~confidence_at] = 0
        channels = list(warp_logit_channels(logits, crop.inv_trans, crop.size)) if keep_logits else None
    else:  # simple_extractor: bilinear warp of every class's logits, argmax at full resolution
        labels, confidence, channels = _reduce_warped(logits, crop, keep_logits, confidence_at, classes)
    return labels, confidence, np.stack(channels, axis=-1) if keep_logits else None


def _reduce_warped(logits: np.ndarray, crop: Crop, keep_logits: bool, confidence_at: np.ndarray | None,
                   candidates: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, list[np.ndarray] | None]:
    """Labels and confidence of the warped logits, one class at a time: only one full-size class map
    is held (unless ``keep_logits``), and of the others only their values where the confidence is
    wanted. Labels are numpy's ``argmax`` over classes (the first largest).

    When neither the confidence nor the logits are wanted, only the ``candidates`` are warped.
    """
    height, width = crop.size[1], crop.size[0]
    where = np.ones((height, width), bool) if confidence_at is None else confidence_at
    wanted = bool(where.any())
    classes = np.arange(logits.shape[0])
    if not wanted and not keep_logits and candidates is not None and len(candidates) < len(classes):
        classes = candidates
        logits = logits[classes]
    labels, top = np.zeros((height, width), np.uint8), None
    kept: list[np.ndarray] | None = [] if keep_logits else None
    shared: list[np.ndarray] = []  # each class's logits where the confidence is wanted
    for label, channel in zip(classes.tolist(), warp_logit_channels(logits, crop.inv_trans, crop.size), strict=True):
        if top is None:
            top = channel.copy() if keep_logits else channel
            labels[:] = label
        else:  # classes come in increasing order: where this one is larger, max(labels, label) is label
            wins = cv2.compare(channel, top, cv2.CMP_GT)  # 255 where larger, 0 elsewhere (and for NaN)
            cv2.max(labels, cv2.min(wins, label), dst=labels)
            cv2.max(top, channel, dst=top)
        if wanted:
            shared.append(channel[where])
        if kept is not None:
            kept.append(channel)
    confidence = np.zeros((height, width), np.float32)
    if wanted:
        peak = top[where]
        total = np.zeros_like(peak)
        for values in shared:
            total += np.exp(values - peak)
        confidence[where] = 1.0 / total
    return labels, confidence, kept


def candidate_classes(fusion: np.ndarray) -> np.ndarray:
    """The classes that can be the argmax somewhere in a crop restored from ``[h, w, C]`` fusion logits
    (the network's output, before the upsampling to the input size), in order; always class 0 (it wins
    where the warp gives every class the border's 0).

    Both steps back to the crop are bilinear: each value is a weighted sum, with weights >= 0, of
    values around it, and (corners outside the input adding 0 to every class alike) classes rank
    as the normalised sum, which lies between the extremes of what it sums. A crop pixel draws on
    two neighbouring pixels of the input-size logits per axis, and those (the upsampling being about
    4x) on at most three neighbouring fusion pixels: so within every 3x3 window of fusion pixels, a
    class whose maximum is below the largest minimum of any class can never be the largest there.
    A small margin covers float rounding. Person crops are mostly a handful of classes.
    """
    padded = np.pad(np.asarray(fusion, np.float32), ((1, 1), (1, 1), (0, 0)), mode="edge")
    rows_low = np.minimum(np.minimum(padded[:-2], padded[1:-1]), padded[2:])
    rows_high = np.maximum(np.maximum(padded[:-2], padded[1:-1]), padded[2:])
    low = np.minimum(np.minimum(rows_low[:, :-2], rows_low[:, 1:-1]), rows_low[:, 2:])
    high = np.maximum(np.maximum(rows_high[:, :-2], rows_high[:, 1:-1]), rows_high[:, 2:])
    margin = 1e-4 * (1.0 + float(np.abs(padded).max()))
    can_win = (high >= low.max(axis=-1, keepdims=True) - margin).any(axis=(0, 1))
    can_win[0] = True
    return np.flatnonzero(can_win)


def check_fusion_size(fusion: tuple[int, int], network_input: tuple[int, int]) -> None:
    """The premise of :func:`candidate_classes`: the parser's fusion map is no finer than its input
    (the upsampling to the input size never skips a fusion pixel).

    Raises:
        EvcError: the parser returned a fusion map larger than its input.
    """
    if fusion[0] > network_input[0] or fusion[1] > network_input[1]:
        raise EvcError(f"the parser's fusion map is {fusion[1]}x{fusion[0]}, finer than its {network_input[1]}x"
                       f"{network_input[0]} input; the restore assumes a map no finer than the input (SCHP's is "
                       "a quarter of it): is the checkpoint or the model a SCHP parser?")


class FrameCanvas:
    """A frame's labels, assembled from its people's crops."""

    def __init__(self, height: int, width: int, num_classes: int, keep_logits: bool) -> None:
        self.labels = np.zeros((height, width), np.uint8)
        self.priority = np.full((height, width), -1.0, np.float32)  # person: 1 + confidence; background: confidence
        self.logits = np.zeros((height, width, num_classes), np.float32) if keep_logits else None

    def paste(self, crop: Crop, labels: np.ndarray, confidence: np.ndarray, logits: np.ndarray | None) -> None:
        """Write the crop where it beats what is there: people over background, then confidence."""
        x0, y0, x1, y1 = crop.box
        region = (slice(y0, y1 + 1), slice(x0, x1 + 1))
        priority = confidence + (labels > 0)
        wins = priority > self.priority[region]
        if wins.all():  # nothing there yet (a frame's only person): plain copies
            self.labels[region], self.priority[region] = labels, priority
            if self.logits is not None and logits is not None:
                self.logits[region] = logits
            return
        self.labels[region][wins] = labels[wins]
        self.priority[region][wins] = priority[wins]
        if self.logits is not None and logits is not None:
            self.logits[region][wins] = logits[wins]


def crop_overlaps(crops: list[Crop], height: int, width: int) -> list[np.ndarray]:
    """For each crop, where (bool ``[h, w]``) another crop of the frame covers it too: only there does a
    pixel's confidence decide which crop's label the frame keeps."""
    coverage = np.zeros((height, width), np.uint16)
    for crop in crops:
        x0, y0, x1, y1 = crop.box
        coverage[y0:y1 + 1, x0:x1 + 1] += 1
    return [coverage[c.box[1]:c.box[3] + 1, c.box[0]:c.box[2] + 1] > 1 for c in crops]


def expand_box(box: tuple[float, float, float, float], width: int, height: int,
               ratio: float = 0.1) -> tuple[int, int, int, int]:
    """Upstream's ``bbox_expand``: grow each side by ``ratio`` of the box size, round half to even,
    clamp to the image; returns inclusive integer ``(x0, y0, x1, y1)``."""
    x0, y0, x1, y1 = box
    ex, ey = ratio * (x1 - x0), ratio * (y1 - y0)
    left = 0 if x0 - ex < 0 else int(np.round(x0 - ex))
    top = 0 if y0 - ey < 0 else int(np.round(y0 - ey))
    right = width - 1 if x1 + ex > width - 1 else int(np.round(x1 + ex))
    bottom = height - 1 if y1 + ey > height - 1 else int(np.round(y1 + ey))
    return left, top, right, bottom
