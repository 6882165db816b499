"""Deterministic synthetic weights (rule ``parity-synth-v1``) for tests, benchmarks and demos.

Official checkpoints cannot be downloaded everywhere, so tests build checkpoints of the official
key layout (a ``*.keys.json`` spec) with values that depend only on ``salt + key`` and the shape:

=====================================  =============================================
case (first match wins)                value
=====================================  =============================================
leaf ``num_batches_tracked``           int64 zeros
non-floating dtype                     zeros of that dtype
leaf ``running_var``                   ``0.5 + rand``
leaf ``running_mean`` or ``bias``      ``0.1 * randn``
1-D ``weight`` (norm layer)            ``1.0 + 0.1 * randn``
ndim >= 2                              ``randn * (1 / sqrt(prod(shape[1:])))``
anything else                          ``0.1 * randn``
=====================================  =============================================

Each tensor draws from its own CPU generator seeded with ``crc32(salt + key)``.
"""

from __future__ import annotations

import json
import math
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

__all__ = ["load_spec", "synth_state_dict", "synth_tensor"]

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "float64": torch.float64,
           "int64": torch.int64, "int32": torch.int32}


def load_spec(path: str | Path) -> dict[str, Any]:
    """Read a ``*.keys.json`` key-layout spec."""
    return json.loads(Path(path).read_text())


def synth_tensor(key: str, shape: list[int], dtype: str = "float32", salt: str = "") -> torch.Tensor:
    """The synthetic value of one state-dict entry, as the rule in the module docstring says."""
    shape = tuple(int(s) for s in shape)
    torch_dtype = _DTYPES[dtype]
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "num_batches_tracked":
        return torch.zeros(shape, dtype=torch.int64)
    if not torch_dtype.is_floating_point:
        return torch.zeros(shape, dtype=torch_dtype)
    generator = torch.Generator(device="cpu")
    generator.manual_seed(zlib.crc32((salt + key).encode("utf-8")))
    if leaf == "running_var":
        value = 0.5 + torch.rand(shape, generator=generator, dtype=torch.float32)
    elif leaf in ("running_mean", "bias"):
        value = 0.1 * torch.randn(shape, generator=generator, dtype=torch.float32)
    elif leaf == "weight" and len(shape) == 1:
        value = 1.0 + 0.1 * torch.randn(shape, generator=generator, dtype=torch.float32)
    elif len(shape) >= 2:
        scale = 1.0 / math.sqrt(math.prod(shape[1:]))
        value = torch.randn(shape, generator=generator, dtype=torch.float32) * scale
    else:
        value = 0.1 * torch.randn(shape, generator=generator, dtype=torch.float32)
    return value.to(torch_dtype).contiguous()


def synth_state_dict(spec: dict[str, Any]) -> OrderedDict[str, torch.Tensor]:
    """All tensors of a parsed ``*.keys.json`` spec, in the official file's key order."""
    salt = spec.get("salt", "")
    return OrderedDict((row[0], synth_tensor(row[0], row[1], row[2], salt)) for row in spec["tensors"])
