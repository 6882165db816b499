"""Robust Video Matting network, with the official checkpoints' key names."""

from .model import REFINERS, VARIANTS, MattingNetwork, drop_refiner_keys, rvm_mobilenetv3, rvm_resnet50

__all__ = ["REFINERS", "VARIANTS", "MattingNetwork", "drop_refiner_keys", "rvm_mobilenetv3", "rvm_resnet50"]
