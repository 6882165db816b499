"""The official RVM checkpoints (release v1.0.0), declared as data."""

from __future__ import annotations

from functools import cache

from .._checkpoint import Checkpoint
from .model import VARIANTS, MattingNetwork

__all__ = ["CHECKPOINTS", "known_layouts"]

_RELEASE = "https://github.com/PeterL1n/RobustVideoMatting/releases/download/v1.0.0/"

CHECKPOINTS = {
    variant: Checkpoint(variant=variant, file_name=f"rvm_{variant}.pth", url=_RELEASE + f"rvm_{variant}.pth",
                        license="GPL-3.0 (code); the weights carry no separate licence")
    for variant in VARIANTS
}


@cache
def known_layouts() -> dict[str, frozenset[str]]:
    """The state-dict keys of every variant, to name the variant a mismatched checkpoint is for."""
    return {variant: frozenset(MattingNetwork(variant).state_dict()) for variant in VARIANTS}
