"""Background Matting V2 networks, with the official checkpoints' key names."""

from .model import BACKBONES, REFINE_MODES, MattingBase, MattingRefine, base_state_dict

__all__ = ["BACKBONES", "REFINE_MODES", "MattingBase", "MattingRefine", "base_state_dict"]
