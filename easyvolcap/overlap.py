"""One rule for every tool that writes: an output folder (or file) must not be one of the run's inputs, hold
one, or lie inside one. Paths are compared resolved (symlinks, ``..``), relative ones against the data root."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from pathlib import Path

from .errors import EvcError

__all__ = ["check_overlap", "refuse_overlap"]


def check_overlap(root: str | Path, outputs: Mapping[str, str | Path | None],
                  inputs: Mapping[str, str | Path | None]) -> None:
    """Refuse a run whose output (``{flag: path}``) is an input (``{flag: path}``) of the same run, a parent of
    one (the run writes ``<output>/<camera>/...``, where the input may be) or inside one; ``None`` entries are
    ignored, relative paths are taken from ``root``.

    Raises:
        EvcError: one line naming both flags and the folder.
    """
    root = Path(root)
    for out_flag, out in outputs.items():
        if out is None:
            continue
        out_path = (root / out).resolve()
        for in_flag, source in inputs.items():
            if source is None:
                continue
            in_path = (root / source).resolve()
            if out_path == in_path:
                how = "is"
            elif out_path in in_path.parents:
                how = "holds"
            elif in_path in out_path.parents:
                how = "lies inside"
            else:
                continue
            raise EvcError(f"{out_flag} {out}: {how} the input {in_flag} {source} ({in_path}); a run never "
                           f"writes over its own inputs: choose another {out_flag}")


def refuse_overlap(args: argparse.Namespace, outputs: Iterable[str], inputs: Iterable[str]) -> None:
    """:func:`check_overlap` for a tool's parsed flags: ``outputs`` and ``inputs`` name attributes of ``args``
    (``"mask_dir"`` for ``--mask_dir``), taken from ``args.data_root``."""
    def flags(names: Iterable[str]) -> dict[str, str | None]:
        return {f"--{name}": getattr(args, name) for name in names}

    check_overlap(args.data_root, flags(outputs), flags(inputs))
