"""Checkpoints: where the file is, download, unwrapping, and a strict load with clear errors.

Every model declares its official checkpoints as :class:`Checkpoint` data; this module is the only
place that touches checkpoint files.
"""

from __future__ import annotations

import hashlib
import urllib.error
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from .errors import EvcError
from .models._checkpoint import Checkpoint
from .torchscript_archive import is_torchscript_archive, read_torchscript_tensors

__all__ = ["Checkpoint", "clean_state_dict", "identify_layout", "load_checkpoint", "load_strict", "resolve_checkpoint"]


def resolve_checkpoint(checkpoint: Checkpoint, chkpt_path: str | Path | None = None,
                       progress: bool = True, flag: str = "--chkpt_path") -> Path:
    """The local file of ``checkpoint``: ``chkpt_path`` if given, else the hub cache, downloading it.
    ``flag`` is the command-line flag that gives this file, named in the errors.

    Raises:
        EvcError: ``chkpt_path`` does not exist, or the download fails (the message names the URL
            to fetch by hand, where to put the file and the flag that takes it).
    """
    if chkpt_path is not None:
        path = Path(chkpt_path)
        if not path.is_file():
            raise EvcError(f"{flag} {path}: no such file")
        return path
    path = checkpoint.cache_path()
    if path.is_file():
        return path
    if checkpoint.url is None:
        raise EvcError(f"no checkpoint given and {path} does not exist; download {checkpoint.file_name} "
                       f"from {checkpoint.source} and pass {flag} FILE (or save it there)")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(checkpoint.url, str(path), hash_prefix=checkpoint.hash_prefix, progress=progress)
    except RuntimeError as error:
        if "hash" in str(error):  # torch.hub: the file's sha256 does not start with hash_prefix (file removed)
            raise EvcError(f"{checkpoint.url}: downloaded file does not match its sha256; try again") from error
        raise EvcError(f"cannot download {checkpoint.file_name} ({error}); fetch {checkpoint.url} "
                       f"and save it as {path}, or pass {flag} FILE") from error
    except (urllib.error.URLError, OSError) as error:
        raise EvcError(f"cannot download {checkpoint.file_name} ({error}); fetch {checkpoint.url} "
                       f"and save it as {path}, or pass {flag} FILE") from error
    if checkpoint.sha256 and _sha256(path) != checkpoint.sha256:
        path.unlink(missing_ok=True)
        raise EvcError(f"{checkpoint.url}: downloaded file does not match its sha256; try again")
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint file without running code in it, and return its cleaned state dict.

    Pickled checkpoints load with ``weights_only=True``, memory-mapped (the file's pages are read as the
    weights are used, not copied first) where the file is of torch's zip format; TorchScript archives are
    read by :mod:`easyvolcap.torchscript_archive`, which never runs the archive's code.

    Raises:
        EvcError: the file is not a torch checkpoint, is corrupt, or holds no tensors.
    """
    try:
        if is_torchscript_archive(path):  # e.g. BGMv2's official TorchScript exports
            return clean_state_dict(read_torchscript_tensors(path), source=str(path))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # pickle-protocol chatter on garbage input
            try:
                obj = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as error:
                if "mmap" not in str(error):
                    raise
                obj = torch.load(str(path), map_location="cpu", weights_only=True)  # torch's legacy format
    except OSError as error:
        raise EvcError(f"{path}: cannot read ({error.strerror or error})") from error
    except Exception as error:  # the unpickler raises anything on foreign bytes: all mean "not weights"
        text = str(error).strip()
        first_line = text.splitlines()[0][:200] if text else type(error).__name__
        raise EvcError(f"{path}: not a readable weights file ({first_line})") from error
    return clean_state_dict(obj, source=str(path))


def clean_state_dict(obj: object, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Unwrap ``{'state_dict': ...}`` / ``{'model': ...}`` and strip a ``module.`` (DataParallel) or
    ``model.`` (wrapper module) prefix where every key has it."""
    if isinstance(obj, Mapping):
        for wrapper in ("state_dict", "model"):
            if isinstance(obj.get(wrapper), Mapping):
                obj = obj[wrapper]
                break
    if not isinstance(obj, Mapping) or not obj or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise EvcError(f"{source}: holds no state dict of tensors")
    for prefix in ("module.", "model."):
        if all(key.startswith(prefix) for key in obj):
            obj = {key[len(prefix):]: value for key, value in obj.items()}
    return dict(obj)


def load_strict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str,
                known_layouts: Mapping[str, set[str]] | None = None, assign: bool = False) -> None:
    """Load ``state_dict`` into ``model`` requiring the exact key set and shapes.

    ``known_layouts`` maps variant names to their key sets; when the keys match another variant,
    the error says which one the file looks like. ``assign``: the model takes the file's tensors
    themselves (for a model built on the ``meta`` device, without memory or initialisation).

    Raises:
        EvcError: missing or unexpected keys, or a shape mismatch, named in the message.
    """
    expected = model.state_dict()
    got = set(state_dict)
    if got != set(expected):
        for variant, keys in (known_layouts or {}).items():
            if got == keys:
                raise EvcError(f"{source}: this checkpoint is for variant {variant!r}; "
                               f"pass the matching --variant")
        missing = [k for k in expected if k not in got]
        unexpected = [k for k in state_dict if k not in expected]
        parts = [f"{len(missing)} missing keys (first {missing[0]!r})" if missing else "",
                 f"{len(unexpected)} unexpected keys (first {unexpected[0]!r})" if unexpected else ""]
        raise EvcError(f"{source}: not a checkpoint of this model: " + ", ".join(p for p in parts if p))
    for key, value in expected.items():
        if tuple(state_dict[key].shape) != tuple(value.shape):
            raise EvcError(f"{source}: {key} has shape {tuple(state_dict[key].shape)}, "
                           f"the model expects {tuple(value.shape)}")
    model.load_state_dict(state_dict, strict=True, assign=assign)


def identify_layout(state_dict: Mapping[str, torch.Tensor], layouts: Mapping[str, frozenset[str]], source: str) -> str:
    """The name of the layout whose keys ``state_dict`` has exactly (e.g. a backbone recognised from a file).

    Raises:
        EvcError: no layout matches; the message names the closest one and its first missing and
            unexpected keys.
    """
    got = set(state_dict)
    for name, keys in layouts.items():
        if got == keys:
            return name
    closest = max(layouts, key=lambda name: len(got & layouts[name]) - len(got ^ layouts[name]))
    missing = sorted(layouts[closest] - got)
    unexpected = sorted(got - layouts[closest])
    parts = [f"{len(missing)} missing keys (first {missing[0]!r})" if missing else "",
             f"{len(unexpected)} unexpected keys (first {unexpected[0]!r})" if unexpected else ""]
    raise EvcError(f"{source}: not a checkpoint of any known variant ({', '.join(layouts)}); closest is "
                   f"{closest!r} with " + ", ".join(p for p in parts if p))
