"""Background Matting V2 networks, with the official checkpoints' key names.

Its facts (backbones, checkpoints, pass cost, scale rule) are in :mod:`.checkpoints`, which imports no torch;
the networks (:mod:`.model`) are imported on first use of their names here.
"""

from importlib import import_module

__all__ = ["BACKBONES", "REFINE_MODES", "CoarseOutputs", "MattingBase", "MattingRefine", "base_state_dict"]


def __getattr__(name: str):
    if name in ("BACKBONES", "REFINE_MODES"):
        return getattr(import_module(".checkpoints", __name__), name)
    if name in __all__:
        return getattr(import_module(".model", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
