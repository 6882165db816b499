"""Tensors of a TorchScript archive, read without running any of its code.

``torch.jit.load`` compiles and runs the archive's TorchScript. We only need the weights, so the
archive's ``data.pkl`` is read with a restricted unpickler: TorchScript classes become inert
records, tensors are rebuilt from the archive's ``data/`` entries, and any other global refuses
to load.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

import torch
from torch._utils import _rebuild_tensor_v2

__all__ = ["is_torchscript_archive", "read_torchscript_tensors"]

_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "HalfStorage": torch.float16, "DoubleStorage": torch.float64,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


class _ScriptObject:
    """Stands in for any TorchScript class; keeps the state it is given."""

    def __setstate__(self, state: object) -> None:
        self.state = state


class _StorageType:
    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype


def _identity(value, *args):  # torch.jit._pickle.build_* / restore_type_tag: the value itself
    return value


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(io.BytesIO(data))
        self.archive, self.prefix = archive, prefix

    def find_class(self, module: str, name: str):
        if module.startswith("__torch__"):
            return type(name, (_ScriptObject,), {})
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module == "torch.jit._pickle" and (name.startswith("build_") or name == "restore_type_tag"):
            return _identity
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a weights file")

    def persistent_load(self, pid):
        kind, storage_type, key, _location, _numel = pid
        if kind != "storage" or not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        raw = bytearray(self.archive.read(f"{self.prefix}data/{key}"))
        untyped = torch.UntypedStorage.from_buffer(raw, dtype=torch.uint8) if raw else torch.UntypedStorage(0)
        return torch.storage.TypedStorage(wrap_storage=untyped, dtype=storage_type.dtype, _internal=True)


def _archive_prefix(archive: zipfile.ZipFile) -> str | None:
    for name in archive.namelist():
        parts = name.split("/")
        if len(parts) == 2 and parts[1] == "constants.pkl":
            return parts[0] + "/"
    return None


def is_torchscript_archive(path: str | Path) -> bool:
    """Whether ``path`` is a zip archive written by ``torch.jit.save``."""
    try:
        with zipfile.ZipFile(path) as archive:
            return _archive_prefix(archive) is not None
    except (zipfile.BadZipFile, OSError):
        return False


def read_torchscript_tensors(path: str | Path) -> OrderedDict[str, torch.Tensor]:
    """Every tensor attribute of the archived module tree, named like a state dict (``model.conv.weight``).

    Raises:
        pickle.UnpicklingError: the archive refers to something other than modules and tensors.
        zipfile.BadZipFile, KeyError: the archive is damaged.
    """
    with zipfile.ZipFile(path) as archive:
        prefix = _archive_prefix(archive)
        if prefix is None:
            raise zipfile.BadZipFile(f"{path} is not a TorchScript archive")
        root = _Unpickler(archive.read(prefix + "data.pkl"), archive, prefix).load()
    tensors: OrderedDict[str, torch.Tensor] = OrderedDict()
    _collect(root, "", tensors)
    return tensors


def _collect(node: object, prefix: str, out: dict[str, torch.Tensor]) -> None:
    state = node.state if isinstance(node, _ScriptObject) else None
    if not isinstance(state, dict):
        return
    for name, value in state.items():
        if isinstance(value, torch.Tensor):
            out[prefix + name] = value
        elif isinstance(value, _ScriptObject):
            _collect(value, f"{prefix}{name}.", out)
