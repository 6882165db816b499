"""The host pipeline's ceiling: the RVM tool with a stand-in model that costs nothing, on 1080p JPEG in and out.

    python bench/host_ceiling.py                    # 2 cameras x 24 frames of 1080p, --workers 1, 2 and all cores
    python bench/host_ceiling.py --frames 48 --workers 4 8 16

Everything the tool does but the forward pass runs as it does at its defaults: frames read and decoded by the
reader threads, staged as the model's input, masks converted to 8 bits, encoded as JPEG (quality 85) and
written atomically (temp file, fsync, rename) by the writer threads. The model is replaced by one returning the
red channel as alpha, so the rate is the most masks per second this machine's host side can feed and drain: a GPU
whose model runs faster than this waits for the host. Each row is the fastest of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from easyvolcap.layout import DatasetLayout
from easyvolcap.runners.rvm import RvmOptions, run_rvm
from easyvolcap.synthetic.capture import make_demo_dataset


class FreeMatting(nn.Module):
    """A stand-in RVM that costs nothing: alpha is the red channel, the foreground the input."""

    variant = "mobilenetv3"  # whose pass cost plans the batches

    def forward(self, src, r1=None, r2=None, r3=None, r4=None, downsample_ratio=1.0):
        state = src.new_zeros(1)
        return [src, src[:, :, :1], state, state, state, state]


def measure(root: Path, workers: int, repeat: int) -> float:
    """The fastest rate (masks/s) of ``repeat`` runs with ``workers`` reader and writer threads."""
    layout = DatasetLayout.discover(root)
    best = 0.0
    for _ in range(repeat):
        shutil.rmtree(root / "rvm", ignore_errors=True)
        start = time.perf_counter()
        report = run_rvm(layout, FreeMatting(), torch.device("cpu"), torch.float32, RvmOptions(workers=workers),
                         progress=False)
        best = max(best, report.masks_written / (time.perf_counter() - start))
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--frames", type=int, default=24, help="frames per camera")
    parser.add_argument("--size", type=int, nargs=2, default=(1080, 1920), metavar=("H", "W"))
    parser.add_argument("--workers", type=int, nargs="+", default=None, help="default: 1, 2 and every core")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)
    cores = os.cpu_count() or 1
    workers = args.workers or sorted({1, 2, cores})
    with tempfile.TemporaryDirectory(prefix="host-ceiling-") as folder:
        root = make_demo_dataset(Path(folder) / "data", args.cameras, args.frames, tuple(args.size), odd_size=None)
        print(f"| host pipeline, {args.size[1]}x{args.size[0]} JPEG in and out, {args.cameras} x {args.frames} "
              f"frames, {cores} cores | masks/s | masks/s per worker thread |")
        print("| --- | ---: | ---: |")
        for count in workers:
            rate = measure(root, count, args.repeat)
            print(f"| `--workers {count}` | {rate:.1f} | {rate / count:.1f} |", flush=True)


if __name__ == "__main__":
    main()
