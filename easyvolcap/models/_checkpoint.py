"""What a model family declares next to its network, as plain data (no torch): its official checkpoint files
and the memory cost of its forward pass, which batch planning (:mod:`easyvolcap.batching`) takes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["Checkpoint", "PassCost", "recognise"]


@dataclass(frozen=True)
class Checkpoint:
    """An official checkpoint file of one model variant, and what its weights fix."""

    variant: str  # the variant it belongs to, e.g. "resnet50"
    file_name: str  # the official file name, also its name in the torch hub cache
    url: str | None  # the official direct download address; None when only a web page offers it
    sha256: str | None = None  # the whole file's digest where its publisher gives one (checked after download)
    hash_prefix: str | None = None  # a leading part of the sha256 (torchvision names its files by it)
    license: str = ""  # licence of the weights
    source: str = ""  # the page that lists the file, for a manual download
    classes: tuple[str, ...] = ()  # output classes by index, where the model has classes
    input_size: tuple[int, int] | None = None  # (height, width) the network takes; None: any size
    mean: tuple[float, float, float] | None = None  # input normalisation, in the network's channel order
    std: tuple[float, float, float] | None = None
    signature: str = ""  # a state-dict key that only this variant's files hold, to recognise a file

    def cache_path(self) -> Path:
        """``torch.hub.get_dir()/checkpoints/<file_name>``, where a download is kept."""
        import torch

        return Path(torch.hub.get_dir()) / "checkpoints" / self.file_name


def recognise(keys: set[str] | frozenset[str], checkpoints: dict[str, Checkpoint]) -> str | None:
    """The variant whose ``signature`` key is among ``keys`` (the first one, in declaration order), or
    ``None``: recognises a file's variant from the data, without building any network."""
    return next((c.variant for c in checkpoints.values() if c.signature and c.signature in keys), None)


@dataclass(frozen=True)
class PassCost:
    """Memory of a float32 forward pass on the CPU, per image, and of the process around it.

    One image's share of a pass is ``full`` bytes per input pixel, plus ``low`` bytes per pixel at the
    model's internal scale (RVM's downsample ratio, BGMv2's backbone scale), plus ``fixed`` bytes (e.g.
    a crop of fixed size). Measured with ``bench/batch_sweep.py``; a slight overestimate is safe.
    """

    full: float  # bytes per input pixel (full resolution)
    low: float  # bytes per pixel at the model's internal scale
    fixed: float  # bytes per image, whatever its size
    base: float  # bytes of the process besides the passes: runtime, weights, libraries
    cpu_max: int = 16  # images per pass on the CPU at most, whatever the memory
