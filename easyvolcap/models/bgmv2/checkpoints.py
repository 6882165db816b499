"""The official BGMv2 checkpoints, declared as data.

The authors publish PyTorch state dicts (``pytorch_<backbone>.pth``) and TorchScript exports
(``torchscript_<backbone>_fp32.pth`` / ``_fp16.pth``; their keys carry a ``model.`` prefix) on Google
Drive, which has no stable direct link: these files are taken from ``--chkpt_path`` or the hub cache.
No digests are published.
"""

from __future__ import annotations

from .._checkpoint import Checkpoint

__all__ = ["CHECKPOINTS", "DEFAULT_CHECKPOINT"]

_SOURCE = "https://github.com/PeterL1n/BackgroundMattingV2#download (Google Drive, folder 'Model')"
# A key only that backbone's files hold; ResNet-101 first: every ResNet-50 key is one of its keys too.
_SIGNATURES = {"resnet101": "backbone.layer3.22.conv1.weight", "resnet50": "backbone.layer1.0.conv1.weight",
               "mobilenetv2": "backbone.features.0.0.weight"}

CHECKPOINTS = {  # RGB in [0, 1] at any size (padded to a multiple of 4), with the background alike
    file_name: Checkpoint(variant=backbone, file_name=file_name, url=None, source=_SOURCE, license="MIT",
                          classes=("alpha",), signature=signature)
    for backbone, signature in _SIGNATURES.items()
    for file_name in (f"pytorch_{backbone}.pth", f"torchscript_{backbone}_fp32.pth",
                      f"torchscript_{backbone}_fp16.pth")
}
DEFAULT_CHECKPOINT = CHECKPOINTS["torchscript_resnet101_fp32.pth"]  # EasyVolcap's default
