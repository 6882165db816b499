"""Write the slim parity goldens of ``tests/parity/`` from the full upstream ones.

    python tests/slim_goldens.py ../shared/parity            # writes tests/parity/*.golden.npz

The full goldens come from the upstream code (see ``tests/parity/README.md``). This keeps what the tests
need (the rule is in ``tests/goldens.py``), then reloads every slim file and checks each full array against
it with a tolerance of 0, so a slim file always agrees with the full golden it came from.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from goldens import Golden, common_path, identical, slim_arrays

HERE = Path(__file__).resolve().parent / "parity"
# Arrays no test reads: SCHP's non-square path re-run under OpenCV 4.10 (our warp follows OpenCV 5).
UNUSED = ("cv4_opencv_version", "cv4_ns_warped_bgr_u8", "cv4_ns_label")


def _write(arrays: dict[str, np.ndarray], target: Path) -> None:
    temporary = target.with_name(f".{target.name}.tmp.npz")
    np.savez_compressed(temporary, **slim_arrays(arrays))
    os.replace(temporary, target)


def _read(source: Path) -> dict[str, np.ndarray]:
    with np.load(source) as data:
        return {name: data[name] for name in data.files if name not in UNUSED}


def slim_family(sources: list[Path], out: Path) -> list[Path]:
    """Write the slim goldens of one family (``rvm``, ``bgmv2``, ``schp``), checked; return the files written."""
    full = {source: _read(source) for source in sources}
    first, *others = full.values()
    common = {name: array for name, array in first.items()
              if others and all(name in arrays and identical(arrays[name], array) for arrays in others)}
    written = []
    if common:
        written.append(common_path(out / sources[0].name))
        _write(common, written[-1])
    for source, arrays in full.items():
        written.append(out / source.name)
        _write({name: array for name, array in arrays.items() if name not in common}, written[-1])
        golden = Golden(written[-1])
        for name, array in arrays.items():
            if array.dtype.kind in "fiu":
                golden.check(name, array, atol=0.0, max_differing=0)
            else:
                assert golden[name] == array, name
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="folder of the full goldens, e.g. ../shared/parity")
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write the slim goldens to")
    args = parser.parse_args(argv)
    sources = sorted(args.source.glob("*.golden.npz"))
    if not sources:
        parser.error(f"{args.source}: no *.golden.npz files")
    args.out.mkdir(parents=True, exist_ok=True)
    families: dict[str, list[Path]] = {}
    for source in sources:
        families.setdefault(source.name.split("_")[0], []).append(source)
    before = sum(source.stat().st_size for source in sources)
    after = 0
    for family, members in families.items():
        written = slim_family(members, args.out)
        sizes = {path.name: path.stat().st_size for path in written}
        after += sum(sizes.values())
        print(f"{family}: " + ", ".join(f"{name} {size:,}" for name, size in sizes.items()))
    print(f"{len(sources)} goldens: {before:,} -> {after:,} bytes, written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
