"""Benchmark of the mask check (``check_masks.py``) beside the RVM mobilenetv3 tool, in the same run.

    python bench/check.py            # 16 cameras x 4 frames of 1080p JPEG masks; CPU, and CUDA when present
    python bench/check.py --quick    # 8 cameras x 2 frames of 540p masks

Prints masks checked per second (the whole tool: reading the JPEG masks, the vote, the per-frame results,
the CSV) and its peak RSS, each in a fresh process, then RVM mobilenetv3's images per second at the same
resolution (bench/matting.py's measurement, synthesized weights) and the ratio (goal: at least 5x).
Measured numbers depend on the machine and on what else runs on it (the development machine is shared).
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

import matting
import numpy as np

SIZES = {"540p": (540, 960), "1080p": (1080, 1920)}


def make_dataset(root: Path, cameras: int, frames: int, size: tuple[int, int]) -> Path:
    """The calibrated synthetic scene's JPEG masks (rendered at a quarter size and scaled up: only the masks
    matter here)."""
    import cv2

    from easyvolcap.calibration import write_calibration
    from easyvolcap.image_io import write_image
    from easyvolcap.synthetic.scene import make_scene

    small = make_scene(cameras, frames, (size[0] // 4, size[1] // 4), seed=0)
    for c, name in enumerate(small.calibration.names):
        for f in range(frames):
            mask = cv2.resize(small.silhouette(c, f), (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
            write_image(root / "masks" / name / f"{f:06d}.jpg", mask, quality=85)
    full = small.calibration
    scale = np.diag([4.0, 4.0, 1.0])
    write_calibration(root, type(full)(full.names, scale @ full.K, full.R, full.T, full.D, full.H * 4, full.W * 4))
    return root


def child(root: str, device: str) -> None:
    """One timed run of the tool (after an untimed warm-up on a copy of one frame's settings)."""
    from easyvolcap.runners.check import CheckOptions, run_check

    start = time.perf_counter()
    _layout, report = run_check(root, CheckOptions(masks_dir="masks", device=device, overwrite=True, preview=False))
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    cuda = 0
    if device.startswith("cuda"):
        import torch

        cuda = torch.cuda.max_memory_allocated()
    print(json.dumps({"masks": report.masks_checked, "seconds": seconds, "peak_rss": peak, "cuda_peak": cuda}))


def measure(root: Path, device: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", str(root), device], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 cameras x 2 frames at 540p")
    parser.add_argument("--frames", type=int, default=4, help="frames (16 cameras each)")
    parser.add_argument("--no-rvm", action="store_true", help="skip the RVM row")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    import torch

    resolution = "540p" if args.quick else "1080p"
    cameras, frames = (8, 2) if args.quick else (16, args.frames)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"mask check, {cameras} cameras x {frames} frames of {resolution} JPEG masks (measured on a possibly "
          "shared machine)")
    with tempfile.TemporaryDirectory(prefix="bench-check-") as tmp:
        root = make_dataset(Path(tmp) / "d", cameras, frames, SIZES[resolution])
        rates = {}
        for device in devices:
            run = measure(root, device)
            rates[device] = run["masks"] / run["seconds"]
            print(f"check  {device:5s} {rates[device]:8.2f} masks/s  peak RSS {run['peak_rss'] / 2**20:.0f} MB"
                  + (f"  CUDA peak {run['cuda_peak'] / 2**20:.0f} MB" if run["cuda_peak"] else ""))
        if not args.no_rvm:
            margs = matting.build_parser().parse_args(["--tools", "rvm", "--device", "cpu", "--retries", "0",
                                                       "--quiet-timeout", "0"])
            case = matting.Case("defaults", "rvm", "mobilenetv3", resolution, 1, 8, "default", peers=False)
            row = matting.run_case(case, Path(tmp), margs)
            print(f"rvm    cpu   {row['tool_ips']:8.2f} images/s (mobilenetv3 at its defaults, batch "
                  f"{row['batch_text']}, {resolution}, synthesized weights)")
            print(f"check / rvm on the CPU: {rates['cpu'] / row['tool_ips']:.1f}x (goal: 5x)")


if __name__ == "__main__":
    main()
