"""The declaration of an official checkpoint: plain data kept next to each model."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

__all__ = ["Checkpoint"]


@dataclass(frozen=True)
class Checkpoint:
    """An official checkpoint file of one model variant."""

    variant: str  # the variant it belongs to, e.g. "resnet50"
    file_name: str  # the official file name, also its name in the torch hub cache
    url: str | None  # the official direct download address; None when only a web page offers it
    sha256: str | None = None  # checked after download when known
    license: str = ""  # licence of the weights
    source: str = ""  # the page that lists the file, for a manual download
    meta: Mapping[str, object] = field(default_factory=dict)

    def cache_path(self) -> Path:
        """``torch.hub.get_dir()/checkpoints/<file_name>``, where a download is kept."""
        return Path(torch.hub.get_dir()) / "checkpoints" / self.file_name
