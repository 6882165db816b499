"""Robust Video Matting network, with the official checkpoints' key names.

Its facts (variants, checkpoints, pass cost, internal scale) are in :mod:`.checkpoints`, which imports no
torch; the network (:mod:`.model`) is imported on first use of its names here.
"""

from importlib import import_module

__all__ = ["REFINERS", "VARIANTS", "MattingNetwork", "drop_refiner_keys", "rvm_mobilenetv3", "rvm_resnet50"]


def __getattr__(name: str):
    if name == "VARIANTS":
        return import_module(".checkpoints", __name__).VARIANTS
    if name in __all__:
        return getattr(import_module(".model", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
