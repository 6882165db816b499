"""SCHP pre- and post-processing: letterbox affine, normalization, and the inverse warp of the logits.

The forward path (upstream ``SimpleFolderDataset`` / ``CropDataValSet``)::

    center, scale = box_to_center_scale((0, 0, w - 1, h - 1), input_size)   # whole image (or crop)
    trans = affine_transform(center, scale, input_size)                     # image -> network input
    x = normalize(warp_to_input(image_bgr_u8, trans, input_size))            # [1, 3, H, W]

and back (upstream ``simple_extractor``)::

    fusion = model(x)[0][-1]                                                 # [1, C, h, w]
    logits = upsample_logits(fusion, input_size)[0]                          # [C, H, W]
    inv_trans = affine_transform(center, scale, input_size, inverse=True)
    labels = logits_to_image(logits, inv_trans, (w, h)).argmax(axis=0)       # [h, w]

Sizes: ``input_size``/``output_size``/``size`` are the network input ``(height, width)``, upstream's
order; ``dsize`` in :func:`logits_to_image` is ``(width, height)``, OpenCV's order, as upstream passes it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .labels import MEAN_BGR, STD_BGR

__all__ = [
    "affine_transform",
    "box_to_center_scale",
    "logits_to_image",
    "normalize",
    "upsample_logits",
    "warp_logit_channels",
    "warp_to_input",
]


def box_to_center_scale(box: Sequence[float], input_size: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Upstream ``_box2cs``: a box to its center and its size grown to the input's aspect ratio.

    Args:
        box: ``(x, y, w, h)`` in upstream's convention; the whole ``W x H`` image is ``(0, 0, W - 1, H - 1)``.
        input_size: network input ``(height, width)``.

    Returns:
        ``center = (x + w / 2, y + h / 2)`` and ``scale = (w', h')`` in pixels, both float32 ``[2]``: the
        shorter side is enlarged to the aspect ratio ``width / height`` of ``input_size`` (no padding).
    """
    x, y, w, h = box
    aspect_ratio = input_size[1] * 1.0 / input_size[0]
    center = np.array([x + w * 0.5, y + h * 0.5], dtype=np.float32)
    if w > aspect_ratio * h:
        h = w * 1.0 / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    return center, np.array([w, h], dtype=np.float32)


def _third_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``b`` plus ``a - b`` rotated by 90 degrees (float32, as upstream)."""
    d = a - b
    return b + np.array([-d[1], d[0]], dtype=np.float32)


def affine_transform(
    center: Sequence[float], scale: Sequence[float], output_size: Sequence[int], inverse: bool = False
) -> np.ndarray:
    """Upstream ``get_affine_transform(center, scale, 0, output_size, inv=inverse)`` (no rotation or shift).

    Maps ``center`` to the output's centre ``((W - 1) / 2, (H - 1) / 2)`` with a uniform scale
    ``(W - 1) / scale[0]``; like upstream, only ``scale[0]`` is used, so ``scale`` must already have the
    output's aspect ratio (see :func:`box_to_center_scale`).

    Args:
        center: ``(x, y)`` in image pixels.
        scale: ``(w, h)`` of the region in image pixels.
        output_size: network input ``(height, width)``.
        inverse: return the map from the network input back to the image instead.

    Returns:
        ``[2, 3]`` float64 matrix for ``cv2.warpAffine``, bit-identical to upstream's (same float32
        points, solved by ``cv2.getAffineTransform``).
    """
    center64 = np.asarray(center, dtype=np.float32).astype(np.float64)
    src_w = float(np.asarray(scale, dtype=np.float32)[0])  # upstream uses scale[0] only
    dst_h, dst_w = output_size[0], output_size[1]
    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    src[0] = center64
    src[1] = center64 + np.array([0.0, src_w * -0.5])
    dst[0] = [(dst_w - 1) * 0.5, (dst_h - 1) * 0.5]
    dst[1] = np.array([(dst_w - 1) * 0.5, (dst_h - 1) * 0.5]) + np.array([0.0, (dst_w - 1) * -0.5])
    src[2] = _third_point(src[0], src[1])
    dst[2] = _third_point(dst[0], dst[1])
    if inverse:
        return cv2.getAffineTransform(dst, src)
    return cv2.getAffineTransform(src, dst)


def warp_to_input(image_bgr_u8: np.ndarray, trans: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Warp an ``[h, w, 3]`` uint8 BGR image (or RGB: channels are warped alike) to the ``size = (height, width)``
    network input.

    Bilinear (``INTER_LINEAR``) with a constant black border, as upstream; returns ``[H, W, 3]`` uint8.
    """
    if image_bgr_u8.ndim != 3 or image_bgr_u8.shape[2] != 3:
        raise ValueError(f"image must be [h, w, 3] BGR, got shape {image_bgr_u8.shape}.")
    dsize = (int(size[1]), int(size[0]))
    return cv2.warpAffine(
        image_bgr_u8, trans, dsize, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0)
    )


def normalize(image_bgr_u8: np.ndarray) -> Tensor:
    """``[H, W, 3]`` or ``[B, H, W, 3]`` uint8 BGR -> the model input ``[B, 3, H, W]`` float32, BGR.

    ``(x / 255 - MEAN_BGR) / STD_BGR`` per channel, in the order of torchvision's ``ToTensor`` then
    ``Normalize`` (bitwise equal to upstream's input).
    """
    if image_bgr_u8.dtype != np.uint8 or image_bgr_u8.ndim not in (3, 4) or image_bgr_u8.shape[-1] != 3:
        raise ValueError(
            f"image must be uint8 [H, W, 3] or [B, H, W, 3] BGR, got {image_bgr_u8.dtype} {image_bgr_u8.shape}."
        )
    batch = image_bgr_u8 if image_bgr_u8.ndim == 4 else image_bgr_u8[None]
    x = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float().div(255)
    mean = torch.tensor(MEAN_BGR, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(STD_BGR, dtype=torch.float32).view(1, 3, 1, 1)
    return x.sub(mean).div(std).contiguous()


def upsample_logits(logits: Tensor, size: Sequence[int]) -> Tensor:
    """``[B, C, h, w] -> [B, C, H, W]`` bilinear with ``align_corners=True`` (upstream's ``nn.Upsample``)."""
    return F.interpolate(logits, size=(int(size[0]), int(size[1])), mode="bilinear", align_corners=True)


def logits_to_image(logits: np.ndarray | Tensor, inv_trans: np.ndarray, dsize: Sequence[int]) -> np.ndarray:
    """Upstream ``transform_logits``: warp each class channel from the network input back to the image.

    Args:
        logits: ``[C, H, W]`` float32 logits at the network input size (see :func:`upsample_logits`).
        inv_trans: ``affine_transform(..., inverse=True)``, the map from the network input to the image.
        dsize: ``(width, height)`` of the image (OpenCV's order).

    Returns:
        ``[C, height, width]`` float32; bilinear, 0 outside the network input. ``argmax(axis=0)`` gives
        upstream's label map (numpy takes the first class on ties).
    """
    if isinstance(logits, Tensor):
        logits = logits.detach().cpu().numpy()
    return np.stack(list(warp_logit_channels(logits, inv_trans, dsize)), axis=0)


def warp_logit_channels(logits: np.ndarray, inv_trans: np.ndarray, dsize: Sequence[int]) -> Iterator[np.ndarray]:
    """:func:`logits_to_image` one class at a time: each ``[height, width]`` map in class order, so that a
    caller reducing them holds one at a time. One OpenCV call per class, as upstream (OpenCV's
    multi-channel warps are no faster once their output is split, and round 2-channel images differently).
    """
    if logits.ndim != 3:
        raise ValueError(f"logits must be [C, H, W], got shape {logits.shape}.")
    size = (int(dsize[0]), int(dsize[1]))
    for channel in logits:
        yield cv2.warpAffine(np.ascontiguousarray(channel, dtype=np.float32), inv_trans, size, flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0)
