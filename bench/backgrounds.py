"""Benchmark of background extraction: frames/s and peak memory against a load-everything baseline.

    python bench/backgrounds.py                # 1080p, 10 and 100 frames, one camera
    python bench/backgrounds.py --frames 10 30 --height 540 --width 960

Each measurement runs in a fresh process so that its peak RSS is its own; the fastest of three
runs is kept.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np


def make_dataset(root: Path, frames: int, height: int, width: int) -> Path:
    """One camera of ``frames`` JPEG frames and JPEG masks of a moving disc."""
    from easyvolcap.demo import background
    from easyvolcap.image_io import write_image

    plate = background(height, width, seed=0)
    for f in range(frames):
        mask = np.zeros((height, width), np.uint8)
        cv2.circle(mask, (int(width * (0.2 + 0.6 * f / max(1, frames - 1))), height // 2), height // 4, 255, -1)
        image = plate.copy()
        image[mask > 0] = (200, 60, 50)
        write_image(root / "images" / "cam" / f"{f:06d}.jpg", image, quality=90)
        write_image(root / "mask" / "cam" / f"{f:06d}.jpg", mask, quality=90)
    return root


def baseline(root: Path) -> None:
    """The straightforward way: load every frame and mask, stack them, then average."""
    from easyvolcap.image_io import read_rgb

    frames = sorted((root / "images" / "cam").iterdir())
    images = np.stack([read_rgb(f) for f in frames]).astype(np.float32)
    masks = np.stack([cv2.imread(str(root / "mask" / "cam" / f.name), cv2.IMREAD_GRAYSCALE) for f in frames])
    kernel = np.ones((20, 20), np.uint8)
    seen = np.stack([cv2.dilate((m > 128).astype(np.uint8), kernel) == 0 for m in masks])
    total = (images * seen[..., None]).sum(0)
    mean = total / np.maximum(seen.sum(0), 1)[..., None]
    cv2.imwrite(str(root / "baseline.png"), np.rint(mean).astype(np.uint8))


def child(mode: str, root: Path, method: str) -> None:
    """One timed run (imports done before the clock starts; the tool without its preview sheet)."""
    from easyvolcap.cli.backgrounds import main
    from easyvolcap.image_io import read_rgb  # noqa: F401  (the baseline's import)

    start = time.perf_counter()
    if mode == "baseline":
        baseline(root)
    else:
        main(["--data_root", str(root), "--jump", "1", "--method", method, "--overwrite", "--bkgd_dir", "bench",
              "--no_preview"])
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "peak_rss": peak}))


def measure(mode: str, root: Path, method: str = "mean", repeat: int = 3) -> dict:
    """The fastest of ``repeat`` runs, each in a fresh process (short runs vary by tens of percent)."""
    runs = []
    for _ in range(max(1, repeat)):
        out = subprocess.run([sys.executable, __file__, "--child", mode, str(root), method],
                             capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return min(runs, key=lambda r: r["seconds"])


HEADER = (f"{'frames':>6} {'method':>9} {'frames/s':>9} {'peak RSS':>9} {'baseline f/s':>12} "
          f"{'baseline RSS':>12} {'speed-up':>8}")


def format_row(r: dict) -> str:
    return (f"{r['frames']:>6} {r['method']:>9} {r['rate']:>9.1f} {r['peak_rss'] / 2**20:>7.0f}MB "
            f"{r['baseline_rate']:>12.1f} {r['baseline_rss'] / 2**20:>10.0f}MB {r['speedup']:>7.2f}x")


def run(frame_counts: list[int], height: int, width: int, echo=print, repeat: int = 3) -> list[dict]:
    """Measure the mean and the median for every frame count; ``echo`` gets the table as it grows."""
    echo(f"background extraction, {width}x{height} JPEG frames, one camera, dilation 20")
    echo(HEADER)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for frames in frame_counts:
            root = make_dataset(Path(tmp) / f"f{frames}", frames, height, width)
            base = measure("baseline", root, repeat=repeat)
            for method in ("mean", "median"):
                tool = measure("tool", root, method, repeat)
                rows.append({"frames": frames, "method": method, "height": height, "width": width,
                             "rate": frames / tool["seconds"], "peak_rss": tool["peak_rss"],
                             "baseline_rate": frames / base["seconds"], "baseline_rss": base["peak_rss"],
                             "speedup": base["seconds"] / tool["seconds"]})
                echo(format_row(rows[-1]))
    return rows


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the fastest is kept")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    return parser


def main() -> None:
    args = build_parser().parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), args.child[2])
        return
    run(args.frames, args.height, args.width, repeat=args.repeat)


if __name__ == "__main__":
    main()
