"""Slim golden files: what the parity tests keep of the upstream outputs, and how they compare to them.

The full goldens (``shared/parity/*.golden.npz``, 17 MB) hold every upstream output whole. The slim ones in
``tests/parity/`` keep every input whole and exact, keep small arrays whole, and keep each large output
``x`` of shape ``[..., H, W]`` (``[H, W, C]`` for the names in ``CHANNELS_LAST``) as four pieces:

- ``shape``: its exact shape;
- ``border``: its first and last rows and columns, compared element by element with the test's ``atol``;
- ``grid``: ``x[..., ::8, ::8]``, compared element by element with ``atol``;
- ``mean``: the float64 mean of every 4x4 block (partial blocks at the far edges), stored as float32. If
  every element is within ``atol``, so is every block mean: they are compared with ``atol`` plus the
  float32 rounding of the stored value. Every pixel lies in one block, so a change of ``d`` at any single
  pixel moves a mean by ``d / 16``, and a wrong region, channel or shift moves every block it touches.

Storage only, no loss: ``src`` and ``bgr`` are ``uint8 / 255`` in float32 and are stored as uint8 (rebuilt
bit for bit); an array equal to an earlier one of its file is stored as ``name.same_as``; arrays equal in
every file of a family (``rvm_*``, ``bgmv2_*``) are stored once in ``<family>.common.npz``.
``tests/slim_goldens.py`` writes the slim files from the full ones; ``tests/parity/README.md`` explains why.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

GRID = 8  # step of the exact subsample in H and W
BLOCK = 4  # side of the averaged blocks
WHOLE_UP_TO = 16384  # elements; smaller arrays (late RVM states, BGMv2 1/4 maps, transforms) stay whole
U8_INPUTS = ("src", "bgr")  # float32 inputs that are exactly uint8 / 255
INPUTS = (*U8_INPUTS, "image_bgr_u8", "ns_image_bgr_u8")  # always whole
CHANNELS_LAST = ("ns_warped_bgr_u8",)  # [H, W, C] outputs
FLOAT32_EPS = float(np.finfo(np.float32).eps)


def block_means(x: np.ndarray, size: int = BLOCK) -> np.ndarray:
    """Float64 means of the ``size`` x ``size`` blocks of the last two axes; blocks at the far edges may be partial."""
    height, width = x.shape[-2:]
    rows, cols = np.arange(0, height, size), np.arange(0, width, size)
    sums = np.add.reduceat(np.add.reduceat(x.astype(np.float64), rows, axis=-2), cols, axis=-1)
    counts = np.minimum(size, height - rows)[:, None] * np.minimum(size, width - cols)[None, :]
    return sums / counts


def border(x: np.ndarray) -> np.ndarray:
    """First row, last row, first column and last column of the last two axes, concatenated."""
    return np.concatenate([x[..., 0, :], x[..., -1, :], x[..., :, 0], x[..., :, -1]], axis=-1)


def summarize(name: str, x: np.ndarray) -> dict[str, np.ndarray]:
    """The pieces a slim golden keeps of the large output ``name`` (``mean`` in float64)."""
    shape = np.asarray(x.shape, np.int64)
    if name in CHANNELS_LAST:
        x = np.moveaxis(x, -1, 0)
    return {"shape": shape, "border": border(x), "grid": x[..., ::GRID, ::GRID], "mean": block_means(x)}


def is_large_output(name: str, array: np.ndarray) -> bool:
    kept = name not in INPUTS and (array.dtype == np.float32 or name in CHANNELS_LAST)
    return kept and array.ndim >= 2 and array.size > WHOLE_UP_TO


def slim_arrays(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The slim form of one golden file's arrays (keys ``name``, ``name.u8``, ``name.same_as`` or ``name.<piece>``)."""
    out: dict[str, np.ndarray] = {}
    for index, (name, array) in enumerate(arrays.items()):
        earlier = [other for other, value in list(arrays.items())[:index] if identical(value, array)]
        if earlier:
            out[f"{name}.same_as"] = np.asarray(earlier[0])
        elif name in U8_INPUTS:
            as_u8 = np.rint(array * 255).astype(np.uint8)
            if not np.array_equal(as_u8.astype(np.float32) / np.float32(255), array):
                raise ValueError(f"{name} is not uint8 / 255: it cannot be stored as uint8")
            out[f"{name}.u8"] = as_u8
        elif is_large_output(name, array):
            for piece, value in summarize(name, array).items():
                out[f"{name}.{piece}"] = value.astype(np.float32) if piece == "mean" else np.ascontiguousarray(value)
        else:
            out[name] = array
    return out


def identical(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)


def common_path(path: Path) -> Path:
    """The file holding the arrays shared by every golden of ``path``'s family."""
    return path.with_name(f"{path.name.split('_')[0]}.common.npz")


def _close(actual: np.ndarray, expected: np.ndarray, atol: float, rtol: float, what: str) -> None:
    torch.testing.assert_close(torch.from_numpy(np.ascontiguousarray(actual)), torch.from_numpy(expected),
                               atol=atol, rtol=rtol, msg=lambda message: f"{what}: {message}")


def _count_beyond(actual: np.ndarray, expected: np.ndarray, rtol: float) -> int:
    """How many values differ by more than ``rtol`` times the expected value."""
    expected = expected.astype(np.float64)
    return int(np.count_nonzero(np.abs(actual.astype(np.float64) - expected) > rtol * np.abs(expected)))


class Golden:
    """One slim golden file (with its family's common file): whole arrays by name, :meth:`check` for any."""

    def __init__(self, path: Path) -> None:
        self.whole: dict[str, np.ndarray] = {}
        self.slimmed: dict[str, dict[str, np.ndarray]] = {}
        aliases: dict[str, str] = {}
        for file in (common_path(path), path):
            if file == path or file.exists():
                with np.load(file) as data:
                    for key in data.files:
                        self._add(key, data[key], aliases)
        for name, original in aliases.items():
            table = self.whole if original in self.whole else self.slimmed
            table[name] = table[original]

    def _add(self, key: str, value: np.ndarray, aliases: dict[str, str]) -> None:
        name, _, piece = key.partition(".")
        if piece == "u8":
            self.whole[name] = value.astype(np.float32) / np.float32(255)
        elif piece == "same_as":
            aliases[name] = str(value)
        elif piece:
            self.slimmed.setdefault(name, {})[piece] = value
        else:
            self.whole[name] = value

    def __getitem__(self, name: str) -> np.ndarray:
        if name in self.slimmed:
            raise KeyError(f"{name} is kept slim (border, grid, block means): compare with Golden.check")
        return self.whole[name]

    def tensor(self, name: str) -> torch.Tensor:
        return torch.from_numpy(self[name])

    def check(
        self, name: str, actual: torch.Tensor | np.ndarray, atol: float, max_differing: int | None = None
    ) -> None:
        """Assert ``actual`` matches the golden ``name`` within ``atol`` per element (``rtol`` 0).

        ``max_differing`` also bounds how many compared values may differ at all, beyond the rounding of stored
        means (elements of a whole array; border and grid elements plus block means of a slim one).
        """
        if isinstance(actual, torch.Tensor):
            actual = actual.detach().cpu().numpy()
        if name in self.whole:
            pairs = [(actual, self.whole[name], 0.0, name)]
        else:
            pieces = self.slimmed[name]
            shape = tuple(pieces["shape"])
            assert actual.shape == shape, f"{name}: shape {actual.shape}, golden {shape}"
            ours = summarize(name, actual)
            pairs = [(ours["border"], pieces["border"], 0.0, f"{name} first and last rows and columns"),
                     (ours["grid"], pieces["grid"], 0.0, f"{name}[..., ::{GRID}, ::{GRID}]"),
                     # stored in float32: allow its rounding on top of the per-element tolerance
                     (ours["mean"], pieces["mean"].astype(np.float64), FLOAT32_EPS,
                      f"{name} {BLOCK}x{BLOCK} block means")]
        for ours_piece, golden_piece, rtol, what in pairs:
            _close(ours_piece, golden_piece, atol, rtol, what)
        if max_differing is not None:
            differing = sum(_count_beyond(a, b, rtol) for a, b, rtol, _ in pairs)
            assert differing <= max_differing, f"{name}: {differing} compared values differ (at most {max_differing})"
