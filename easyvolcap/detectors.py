"""Person detectors behind one small interface, and the box and overlap rules of the SCHP pipeline.

Backends: the whole frame as one person (``none``), torchvision's Mask R-CNN with COCO weights
(``torchvision``), and the upstream CIHP-finetuned Cascade Mask R-CNN when detectron2 is importable
(``detectron2``). Each returns, per image, the people found with score >= 0.5, best first.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from .errors import EvcError

if TYPE_CHECKING:
    import torch

__all__ = ["DETECTORS", "SCORE_THRESHOLD", "Detector", "Detectron2Detector", "Person", "TorchvisionDetector",
           "WholeFrameDetector", "expand_box", "suppress_covered"]

DETECTORS = ("torchvision", "detectron2", "none")
SCORE_THRESHOLD = 0.5


@dataclass(frozen=True)
class Person:
    """One detected person: ``box`` is ``(x0, y0, x1, y1)`` in pixels, ``mask`` an ``(H, W)`` bool or None."""

    box: tuple[float, float, float, float]
    score: float
    mask: np.ndarray | None = None


class Detector(Protocol):
    """Finds people in RGB uint8 ``(H, W, 3)`` images."""

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Person]]:
        """The people of each image with score >= 0.5, in descending score."""
        ...


class WholeFrameDetector:
    """``--detector none``: every frame is one person filling it (single-person captures)."""

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Person]]:
        return [[Person((0.0, 0.0, float(i.shape[1] - 1), float(i.shape[0] - 1)), 1.0)] for i in images]


class TorchvisionDetector:
    """torchvision's Mask R-CNN (ResNet-50 FPN, COCO), class person only.

    Its transform resizes to a short side of 800 and a long side of at most 1333, as upstream's
    detector does; masks are thresholded at 0.5.
    """

    def __init__(self, model: torch.nn.Module, device: torch.device) -> None:
        self.model = model  # maskrcnn_resnet50_fpn in eval mode on ``device`` (see easyvolcap.pretrained)
        self.device = device

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Person]]:
        import torch

        batch = [torch.from_numpy(image).to(self.device).permute(2, 0, 1).float().div_(255) for image in images]
        with torch.inference_mode():
            outputs = self.model(batch)
        people = []
        for out in outputs:
            keep = (out["labels"] == 1) & (out["scores"] >= SCORE_THRESHOLD)  # COCO label 1 is person
            order = torch.argsort(out["scores"][keep], descending=True, stable=True)
            boxes = out["boxes"][keep][order].tolist()
            scores = out["scores"][keep][order].tolist()
            masks = (out["masks"][keep][order][:, 0] > 0.5).cpu().numpy()
            people.append([Person(tuple(b), s, m) for b, s, m in zip(boxes, scores, masks, strict=True)])
        return people


class Detectron2Detector:
    """Upstream's detector: detectron2 Cascade Mask R-CNN X-152 (GN, DCN) finetuned on CIHP, one class.

    Config as upstream's ``demo.yaml``: score threshold 0.5, box NMS 0.95, no test-time augmentation,
    short side 800 / long side <= 1333, BGR input.
    """

    @staticmethod
    def require() -> None:
        """Raises EvcError with the install command when detectron2 is not importable."""
        if importlib.util.find_spec("detectron2") is None:
            raise EvcError("--detector detectron2 needs detectron2, which is not installed; install it with "
                           "pip install 'git+https://github.com/facebookresearch/detectron2.git' "
                           "(see 3rdparty/README.md), or use --detector torchvision")

    def __init__(self, weights: Path, device: torch.device) -> None:
        self.require()
        from detectron2 import model_zoo
        from detectron2.config import get_cfg
        from detectron2.engine import DefaultPredictor

        cfg = get_cfg()
        cfg.merge_from_file(model_zoo.get_config_file("Misc/cascade_mask_rcnn_X_152_32x8d_FPN_IN5k_gn_dconv.yaml"))
        cfg.MODEL.ROI_HEADS.NUM_CLASSES = 1
        cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = SCORE_THRESHOLD
        cfg.MODEL.ROI_HEADS.NMS_THRESH_TEST = 0.95
        cfg.TEST.AUG.ENABLED = False
        cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST = 800, 1333
        cfg.MODEL.WEIGHTS = str(weights)
        cfg.MODEL.DEVICE = str(device)
        self.predictor = DefaultPredictor(cfg)

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Person]]:
        import torch

        people = []
        for image in images:
            instances = self.predictor(np.ascontiguousarray(image[..., ::-1]))["instances"].to("cpu")
            order = torch.argsort(instances.scores, descending=True, stable=True)
            people.append([Person(tuple(instances.pred_boxes.tensor[i].tolist()), float(instances.scores[i]),
                                  instances.pred_masks[i].numpy()) for i in order.tolist()])
        return people


def suppress_covered(people: list[Person], threshold: float = 0.5) -> list[Person]:
    """Upstream's mask NMS: in score order, drop a person whose mask is more than ``threshold`` covered
    by the people already kept (or whose mask is empty). People without masks are all kept."""
    kept, claimed = [], None
    for person in people:
        if person.mask is None:
            kept.append(person)
            continue
        area = int(person.mask.sum())
        if claimed is None:
            claimed = np.zeros_like(person.mask, dtype=bool)
        if area == 0 or int((person.mask & claimed).sum()) / area > threshold:
            continue
        claimed |= person.mask
        kept.append(person)
    return kept


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
