"""The official models, ready for inference: one builder per family.

Each builder resolves the checkpoint file (``checkpoint`` given, else the torch hub cache, downloading
it where the publisher has a direct link), reads it without running code, checks what the weights fix
(RVM's variant, BGMv2's backbone, SCHP's class count) against what was asked, loads it strictly into our
own network and returns the model in eval mode on ``device`` in ``dtype``. The checkpoints are declared
as data next to their models (``models/<family>/checkpoints.py``); the networks know nothing of files.

    model = rvm("mobilenetv3", checkpoint="rvm_mobilenetv3.pth", device=torch.device("cuda"))
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from .detectors import DETECTORS, Detector, Detectron2Detector, TorchvisionDetector, WholeFrameDetector
from .errors import EvcError
from .models._checkpoint import Checkpoint, recognise
from .weights import identify_layout, load_checkpoint, load_strict, resolve_checkpoint

__all__ = ["DETECTRON2_CIHP", "bgmv2", "person_detector", "rvm", "schp", "torchvision_maskrcnn"]

DETECTRON2_CIHP = Checkpoint(
    variant="cascade_mask_rcnn_x152_cihp", file_name="detectron2_maskrcnn_cihp_finetune.pth", url=None,
    source="Google Drive id 1T797HPC9V1mmw0cDoVOPSF1F_rrTcGPG (SCHP mhp_extension/demo.ipynb)", license="MIT",
    classes=("person",))
PathLike = str | Path


def _ready(model: nn.Module, device: torch.device | None, dtype: torch.dtype) -> nn.Module:
    return model.eval().to(device=device or torch.device("cpu"), dtype=dtype)


def rvm(variant: str = "resnet50", *, checkpoint: PathLike | None = None, device: torch.device | None = None,
        dtype: torch.dtype = torch.float32) -> nn.Module:
    """Robust Video Matting (``mobilenetv3`` or ``resnet50``) with its official weights.

    Raises:
        EvcError: the file is missing, unreadable, of the other variant (named), or of another model.
    """
    from .models.rvm import MattingNetwork
    from .models.rvm.checkpoints import CHECKPOINTS

    if variant not in CHECKPOINTS:
        raise EvcError(f"RVM variant {variant!r}: unknown; use one of {', '.join(CHECKPOINTS)}")
    path = resolve_checkpoint(CHECKPOINTS[variant], checkpoint)
    state_dict = load_checkpoint(path)
    found = recognise(set(state_dict), CHECKPOINTS)
    if found is not None and found != variant:
        raise EvcError(f"{path}: this checkpoint is for variant {found!r}; pass the matching --variant "
                       f"(asked for {variant!r})")
    model = MattingNetwork(variant)
    load_strict(model, state_dict, str(path))
    return _ready(model, device, dtype)


def bgmv2(*, checkpoint: PathLike | None = None, backbone: str | None = None, device: torch.device | None = None,
          dtype: torch.dtype = torch.float32) -> nn.Module:
    """Background Matting V2 (``MattingRefine``) from an official PyTorch or TorchScript file; the backbone
    is recognised from the file (``backbone``, when given, must agree). Default file: EasyVolcap's
    ``torchscript_resnet101_fp32.pth``. The refine settings are the model's attributes, the runner's to set.

    Raises:
        EvcError: the file is missing or unreadable, is of no known backbone (naming the closest layout and
            its first missing and unexpected keys), or of another backbone than asked.
    """
    from .models.bgmv2 import BACKBONES, MattingRefine
    from .models.bgmv2.checkpoints import CHECKPOINTS, DEFAULT_CHECKPOINT

    path = resolve_checkpoint(DEFAULT_CHECKPOINT, checkpoint)
    state_dict = load_checkpoint(path)
    found = recognise(set(state_dict), CHECKPOINTS)
    model = MattingRefine(found) if found is not None else None
    if model is None or set(state_dict) != set(model.state_dict()):  # a file of no backbone: name the closest one
        layouts = {name: frozenset(MattingRefine(name).state_dict()) for name in BACKBONES}  # this error path only
        identify_layout(state_dict, layouts, str(path))
    if backbone is not None and backbone != found:
        raise EvcError(f"{path}: a BGMv2 {found} checkpoint, but backbone {backbone} was asked")
    load_strict(model, state_dict, str(path))
    return _ready(model, device, dtype)


def schp(dataset: str = "cihp", *, checkpoint: PathLike | None = None, checkpoint_dir: PathLike | None = None,
         device: torch.device | None = None, dtype: torch.dtype = torch.float32) -> nn.Module:
    """The SCHP ResNet-101 parser of ``dataset`` (``cihp``, ``lip``, ``atr``, ``pascal``), from ``checkpoint``,
    else its official file name in ``checkpoint_dir``, else in the hub cache. Its label set (classes, input
    size) is the returned network's ``label_set``; its normalisation is in
    ``models.schp.checkpoints.CHECKPOINTS[dataset]``.

    Raises:
        EvcError: the file is missing or unreadable, or its class count is another dataset's (both named).
    """
    from .models.schp import label_set, schp_resnet101
    from .models.schp.checkpoints import CHECKPOINTS, CLASSES_KEY

    if dataset not in CHECKPOINTS:
        raise EvcError(f"SCHP dataset {dataset!r}: unknown; use one of {', '.join(CHECKPOINTS)}")
    declared = CHECKPOINTS[dataset]
    if checkpoint is None and checkpoint_dir is not None:
        checkpoint = Path(checkpoint_dir) / declared.file_name
    path = resolve_checkpoint(declared, checkpoint)
    state_dict = load_checkpoint(path)
    classes = state_dict[CLASSES_KEY].shape[0] if CLASSES_KEY in state_dict else None
    if classes is not None and classes != len(declared.classes):
        fits = [name for name, c in CHECKPOINTS.items() if len(c.classes) == classes] or ["none"]
        raise EvcError(f"{path}: a {classes}-class SCHP checkpoint (dataset {' or '.join(fits)}), but --dataset "
                       f"{dataset} has {len(declared.classes)} classes")
    model = schp_resnet101(num_classes=len(declared.classes))
    load_strict(model, state_dict, str(path))
    model.label_set = label_set(dataset)  # the classes and input size the runner needs
    return _ready(model, device, dtype)


def torchvision_maskrcnn() -> Checkpoint:
    """torchvision's Mask R-CNN ResNet-50 FPN COCO weights (its ``Weights`` enum), as a declaration: the
    download is checked against the sha256 prefix in torchvision's file name."""
    from torchvision.models.detection import MaskRCNN_ResNet50_FPN_Weights

    weights = MaskRCNN_ResNet50_FPN_Weights.COCO_V1
    file_name = weights.url.rsplit("/", 1)[-1]
    prefix = re.search(r"-([a-f0-9]+)\.", file_name)
    return Checkpoint(variant="maskrcnn_resnet50_fpn", file_name=file_name, url=weights.url,
                      hash_prefix=prefix[1] if prefix else None, license="BSD-3-Clause (torchvision); COCO-trained",
                      source=weights.meta["recipe"], classes=tuple(weights.meta["categories"]))


def person_detector(kind: str = "torchvision", *, checkpoint: PathLike | None = None,
                    checkpoint_dir: PathLike | None = None, device: torch.device | None = None) -> Detector:
    """A person detector: ``torchvision`` (Mask R-CNN, COCO), ``detectron2`` (upstream's CIHP Cascade Mask
    R-CNN; needs detectron2 and its file in ``checkpoint_dir``) or ``none`` (the whole frame is one person).

    Raises:
        EvcError: weights missing or wrong, detectron2 not installed, or an unknown ``kind``.
    """
    device = device or torch.device("cpu")
    if kind == "none":
        return WholeFrameDetector()
    if kind == "detectron2":
        Detectron2Detector.require()  # before looking for its weights
        given = checkpoint or (Path(checkpoint_dir) / DETECTRON2_CIHP.file_name if checkpoint_dir else None)
        return Detectron2Detector(resolve_checkpoint(DETECTRON2_CIHP, given), device)
    if kind != "torchvision":
        raise EvcError(f"--detector {kind}: unknown; use one of {', '.join(DETECTORS)}")
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    from .detectors import SCORE_THRESHOLD

    path = resolve_checkpoint(torchvision_maskrcnn(), checkpoint)
    model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91,
                                  box_score_thresh=SCORE_THRESHOLD)
    load_strict(model, load_checkpoint(path), str(path))
    return TorchvisionDetector(model.eval().to(device), device)
