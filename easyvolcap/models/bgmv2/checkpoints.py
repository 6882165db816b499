"""The official BGMv2 checkpoints, declared as data.

The authors publish PyTorch state dicts (``pytorch_<backbone>.pth``) and TorchScript exports
(``torchscript_<backbone>_fp32.pth`` / ``_fp16.pth``; their keys carry a ``model.`` prefix) on Google
Drive, which has no stable direct link: these files are taken from ``--chkpt_path`` or the hub cache.
"""

from __future__ import annotations

from functools import cache

from .._checkpoint import Checkpoint
from .model import BACKBONES, MattingBase, MattingRefine

__all__ = ["CHECKPOINTS", "DEFAULT_CHECKPOINT", "base_layouts", "known_layouts"]

_SOURCE = "https://github.com/PeterL1n/BackgroundMattingV2#download (Google Drive, folder 'Model')"

CHECKPOINTS = {
    file_name: Checkpoint(variant=backbone, file_name=file_name, url=None, source=_SOURCE, license="MIT")
    for backbone in BACKBONES
    for file_name in (f"pytorch_{backbone}.pth", f"torchscript_{backbone}_fp32.pth",
                      f"torchscript_{backbone}_fp16.pth")
}
DEFAULT_CHECKPOINT = CHECKPOINTS["torchscript_resnet101_fp32.pth"]  # EasyVolcap's default


@cache
def known_layouts() -> dict[str, frozenset[str]]:
    """The state-dict keys of ``MattingRefine`` for every backbone."""
    return {backbone: frozenset(MattingRefine(backbone).state_dict()) for backbone in BACKBONES}


@cache
def base_layouts() -> dict[str, frozenset[str]]:
    """The state-dict keys of ``MattingBase`` (no refiner) for every backbone."""
    return {backbone: frozenset(MattingBase(backbone).state_dict()) for backbone in BACKBONES}
