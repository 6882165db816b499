"""Network definitions (torch and torchvision only; no file IO, no weights download)."""

from .bgmv2 import MattingBase, MattingRefine
from .rvm import MattingNetwork, rvm_mobilenetv3, rvm_resnet50
from .schp import SchpNetwork, schp_resnet101

__all__ = ["MattingBase", "MattingNetwork", "MattingRefine", "SchpNetwork", "rvm_mobilenetv3", "rvm_resnet50",
           "schp_resnet101"]
