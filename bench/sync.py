"""Cost of syncing outputs to disk before the rename (``atomic_write``'s ``os.fsync``).

    python bench/sync.py                       # 1080p masks (.jpg, .png) and an RGBA background, in ./bench_sync
    python bench/sync.py --dir /data/scratch --files 200

Writes the same encoded files with and without the sync (``os.fsync`` replaced by a no-op), in turn,
three times, keeping the fastest of each, and prints milliseconds per file. The figure depends on the
file system (and on what else writes to the disk): run it where the outputs go. In the tools the sync
waits in the writer threads, beside the model, not in its way.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def files(height: int, width: int) -> dict[str, bytes]:
    """Encoded outputs of one 1080p frame: a JPEG mask, a PNG mask, an RGBA background."""
    from easyvolcap.image_io import encode_image
    from easyvolcap.synthetic.capture import background, figure_mask

    mask = figure_mask(height, width, 0.3)
    rgba = np.dstack([background(height, width, seed=0), np.full((height, width), 255, np.uint8)])
    return {"mask .jpg": encode_image(mask, ".jpg", 85), "mask .png": encode_image(mask, ".png"),
            "background .png": encode_image(rgba, ".png")}


def write_all(folder: Path, data: bytes, count: int, sync: bool) -> float:
    """Seconds per file to write ``count`` copies of ``data`` atomically."""
    from easyvolcap import image_io

    real = image_io.os.fsync
    image_io.os.fsync = real if sync else (lambda fd: None)
    try:
        start = time.perf_counter()
        for i in range(count):
            image_io.atomic_write(folder / f"{i:06d}.bin", data)
        return (time.perf_counter() - start) / count
    finally:
        image_io.os.fsync = real


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("bench_sync"), help="where to write (removed after)")
    parser.add_argument("--files", type=int, default=100, help="files per measurement")
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--width", type=int, default=1920)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=args.dir))
    try:
        print(f"{'file':<16} {'size':>9} {'no sync ms':>11} {'sync ms':>8} {'cost ms':>8}   ({folder}, "
              f"{os.statvfs(folder).f_bsize} B blocks)")
        for name, data in files(args.height, args.width).items():
            best = {True: float("inf"), False: float("inf")}
            for _ in range(3):
                for sync in (False, True):
                    best[sync] = min(best[sync], write_all(folder, data, args.files, sync))
            print(f"{name:<16} {len(data) / 1024:>7.0f} K {1e3 * best[False]:>11.2f} {1e3 * best[True]:>8.2f} "
                  f"{1e3 * (best[True] - best[False]):>8.2f}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if args.dir.name == "bench_sync" and not any(args.dir.iterdir()):
            args.dir.rmdir()


if __name__ == "__main__":
    main()
