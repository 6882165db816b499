"""Benchmark of background extraction: images/s and peak memory against a load-everything baseline.

    python bench/backgrounds.py                # 1080p: 1 camera x 10 and x 100 frames, 4 cameras x 10 frames
    python bench/backgrounds.py --rows 1x10 8x30 --height 540 --width 960

Rows are ``CAMERASxFRAMES``. Each measurement runs in a fresh process so that its peak RSS is its own;
the baseline, the mean and the median run in turn, three times, and the fastest of each is kept. The
baseline handles the cameras one after another, as a script looping over them would.
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


def make_dataset(root: Path, frames: int, height: int, width: int, cameras: int = 1) -> Path:
    """``cameras`` cameras of ``frames`` JPEG frames and JPEG masks of a moving disc."""
    from easyvolcap.image_io import write_image
    from easyvolcap.synthetic.capture import background

    for c in range(cameras):
        plate = background(height, width, seed=c)
        for f in range(frames):
            mask = np.zeros((height, width), np.uint8)
            cv2.circle(mask, (int(width * (0.2 + 0.6 * f / max(1, frames - 1))), height // 2), height // 4, 255, -1)
            image = plate.copy()
            image[mask > 0] = (200, 60, 50)
            write_image(root / "images" / f"cam{c:02d}" / f"{f:06d}.jpg", image, quality=90)
            write_image(root / "mask" / f"cam{c:02d}" / f"{f:06d}.jpg", mask, quality=90)
    return root


def baseline(root: Path) -> None:
    """The straightforward way, camera after camera: load every frame and mask, stack them, then average."""
    from easyvolcap.image_io import read_rgb

    for camera in sorted((root / "images").iterdir()):
        frames = sorted(camera.iterdir())
        images = np.stack([read_rgb(f) for f in frames]).astype(np.float32)
        masks = np.stack([cv2.imread(str(root / "mask" / camera.name / f.name), cv2.IMREAD_GRAYSCALE)
                          for f in frames])
        kernel = np.ones((20, 20), np.uint8)
        seen = np.stack([cv2.dilate((m > 128).astype(np.uint8), kernel) == 0 for m in masks])
        total = (images * seen[..., None]).sum(0)
        mean = total / np.maximum(seen.sum(0), 1)[..., None]
        cv2.imwrite(str(root / f"baseline_{camera.name}.png"), np.rint(mean[..., ::-1]).astype(np.uint8))  # BGR


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


def measure(mode: str, root: Path, method: str = "mean") -> dict:
    """One run in a fresh process: its seconds and peak RSS."""
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(root), method],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


HEADER = (f"{'cameras x frames':>16} {'method':>9} {'images/s':>9} {'peak RSS':>9} {'baseline i/s':>12} "
          f"{'baseline RSS':>12} {'speed-up':>8}")


def format_row(r: dict) -> str:
    return (f"{r['cameras']:>7} x {r['frames']:<6} {r['method']:>9} {r['rate']:>9.1f} {r['peak_rss'] / 2**20:>7.0f}MB "
            f"{r['baseline_rate']:>12.1f} {r['baseline_rss'] / 2**20:>10.0f}MB {r['speedup']:>7.2f}x")


def parse_row(text: str) -> tuple[int, int]:
    """``"4x10"`` -> ``(4, 10)``: cameras, frames per camera."""
    cameras, _, frames = text.lower().partition("x")
    try:
        return int(cameras), int(frames)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected CAMERASxFRAMES such as 4x10, got {text!r}") from None


def run(shapes: list[tuple[int, int]], height: int, width: int, echo=print, repeat: int = 3) -> list[dict]:
    """Measure the mean and the median for every ``(cameras, frames)``; ``echo`` gets the table as it grows."""
    echo(f"background extraction, {width}x{height} JPEG frames, dilation 20, all frames used (--jump 1)")
    echo(HEADER)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for cameras, frames in shapes:
            root = make_dataset(Path(tmp) / f"c{cameras}f{frames}", frames, height, width, cameras)
            runs: dict[str, list[dict]] = {"baseline": [], "mean": [], "median": []}
            for _ in range(max(1, repeat)):  # alternating: a machine whose speed drifts slows all alike
                for kind in runs:
                    runs[kind].append(measure("baseline" if kind == "baseline" else "tool", root, kind))
            base = min(runs["baseline"], key=lambda r: r["seconds"])
            images = cameras * frames
            for method in ("mean", "median"):
                tool = min(runs[method], key=lambda r: r["seconds"])
                rows.append({"cameras": cameras, "frames": frames, "method": method, "height": height,
                             "width": width, "rate": images / tool["seconds"], "peak_rss": tool["peak_rss"],
                             "baseline_rate": images / base["seconds"], "baseline_rss": base["peak_rss"],
                             "speedup": base["seconds"] / tool["seconds"]})
                echo(format_row(rows[-1]))
    return rows


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=parse_row, nargs="+", default=[(1, 10), (1, 100), (4, 10)],
                        metavar="CAMERASxFRAMES", help="datasets to measure (default: 1x10 1x100 4x10)")
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
    run(args.rows, args.height, args.width, repeat=args.repeat)


if __name__ == "__main__":
    main()
