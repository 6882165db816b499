"""How well the multi-view check finds corrupted masks and leaves clean ones alone, over many scenes.

    python bench/check_accuracy.py                    # 30 seeds of 8/1, 8/2, 12/3, 16/4, 6/1, 5/1 cameras/corrupted
    python bench/check_accuracy.py --seeds 5 --scenes 8/2,16/4

Each scene is ``easyvolcap.synthetic.scene``'s calibrated ring (radial distortion, the last camera zoomed in so that the
person overflows its view) with two frames of 150x200 masks; in every frame ``corrupted`` cameras get a fault
(empty, shifted by 10% of the width, lower body cut, limb-sized blob, bystander) and about half of the others
harmless noise (2-pixel erosion or dilation, a soft edge), all through JPEG. Prints per scene kind: clean masks
flagged (false alarms), corrupted masks found (per kind), the margins (the largest ``missing``/``extra`` of a
clean mask, the smallest of a corrupted one of that kind) and the repairs' IoU with the truth before and after.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np
import torch

from easyvolcap.synthetic.scene import check_scene


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--scenes", default="8/1,8/2,12/3,16/4,6/1,5/1", help="cameras/corrupted, comma-separated")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{'scene':>6} {'clean':>6} {'false':>6} {'corrupt':>8} {'found':>6}  per kind (found/all)"
          f"{'':>40} clean max missing/extra   repair IoU before -> after (worse)")
    for spec in args.scenes.split(","):
        cameras, bad = (int(x) for x in spec.split("/"))
        start = time.perf_counter()
        records = [r for seed in range(args.seeds) for r in check_scene(cameras, bad, seed)]
        clean = [r for r in records if r["kind"] == "clean"]
        corrupted = [r for r in records if r["kind"] != "clean"]
        per_kind = defaultdict(list)
        for r in corrupted:
            per_kind[r["kind"]].append(bool(r["flags"]))
        kinds = " ".join(f"{k} {sum(v)}/{len(v)}" for k, v in per_kind.items())
        repairs = [r["iou"] for r in corrupted if "iou" in r]
        worse = sum(after <= before for before, after in repairs)
        print(f"{spec:>6} {len(clean):6d} {sum(bool(r['flags']) for r in clean):6d} {len(corrupted):8d} "
              f"{sum(bool(r['flags']) for r in corrupted):6d}  {kinds:<80} "
              f"{max(r['missing'] for r in clean):.3f}/{max(r['extra'] for r in clean):.3f}   "
              f"{np.mean([b for b, _ in repairs]):.2f} -> {np.mean([a for _, a in repairs]):.2f} ({worse})   "
              f"[{time.perf_counter() - start:.0f} s]", flush=True)


if __name__ == "__main__":
    main()
