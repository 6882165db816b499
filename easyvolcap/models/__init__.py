"""Network definitions (torch and torchvision only; no file IO, no weights download)."""

from .rvm import MattingNetwork, rvm_mobilenetv3, rvm_resnet50

__all__ = ["MattingNetwork", "rvm_mobilenetv3", "rvm_resnet50"]
