"""The contact sheet a run writes at its end: seconds to build and write it for a capture of 1080p frames.

    python bench/preview.py                  # 8 cameras x 4 frames of 1080p (the sheet's most), 3 runs
    python bench/preview.py --size 2160 3840
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from easyvolcap.layout import DatasetLayout
from easyvolcap.preview import mask_rows, write_preview
from easyvolcap.synthetic.capture import make_demo_dataset


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs=2, default=(1080, 1920), metavar=("H", "W"))
    parser.add_argument("--cameras", type=int, default=8)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-preview-") as folder:
        root = make_demo_dataset(Path(folder) / "data", args.cameras, args.frames, tuple(args.size), odd_size=None)
        shutil.copytree(root / "gt_masks", root / "rvm")
        layout = DatasetLayout.discover(root)
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            write_preview(layout, "rvm", mask_rows(layout, "rvm", ".png"), "evc-rvm")
            times.append(time.perf_counter() - start)
        print(f"preview of {args.cameras} cameras x {args.frames} frames of {args.size[1]}x{args.size[0]}: "
              f"{min(times):.2f} s (fastest of {args.repeat})")


if __name__ == "__main__":
    main()
