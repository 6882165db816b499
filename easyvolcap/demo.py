"""``evc-demo``: write a small synthetic capture to try the tools on.

``python -m easyvolcap.demo DATA_ROOT`` (or ``evc-demo``) writes ``DATA_ROOT/images/<camera>/*.jpg``
and the exact foreground masks under ``DATA_ROOT/gt_masks`` (see :mod:`easyvolcap.synthetic.capture`);
with ``--calibrated``, a ring of calibrated cameras around a walking body
(:mod:`easyvolcap.synthetic.scene`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .synthetic.capture import make_demo_dataset

__all__ = ["TOOL", "build_parser", "main"]

TOOL = "evc-demo"


def build_parser() -> argparse.ArgumentParser:
    """The demo's flags: ``DATA_ROOT`` (or ``--data_root``), the capture's size, ``--calibrated``."""
    from .cli.flags import ToolParser

    parser = ToolParser(prog=TOOL, description=__doc__.splitlines()[0],
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("root", nargs="?", metavar="DATA_ROOT", help="folder to create the dataset in")
    parser.add_argument("--data_root", default=None, help="the same folder, as the other tools name it")
    parser.add_argument("--cameras", type=int, default=3, help="number of cameras")
    parser.add_argument("--frames", type=int, default=24, help="frames per camera")
    parser.add_argument("--height", type=int, default=270, help="image height")
    parser.add_argument("--width", type=int, default=480, help="image width")
    parser.add_argument("--calibrated", action="store_true",
                        help="a real 3D scene: a ring of --cameras (8 or more advised) with lens distortion around "
                             "a walking body, intri.yml/extri.yml written, masks agreeing across views in "
                             "gt_masks/ (for evc-check)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m easyvolcap.demo`` and ``evc-demo``."""
    from .progress import progress_bar

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.root and args.data_root and Path(args.root) != Path(args.data_root):
        parser.error(f"two folders given: {args.root} and --data_root {args.data_root}; give one")
    data_root = args.data_root or args.root
    if not data_root:
        parser.error("give the folder to create: DATA_ROOT or --data_root DATA_ROOT")
    for flag in ("cameras", "frames", "height", "width"):
        if getattr(args, flag) < 1 or (flag in ("height", "width") and getattr(args, flag) < 16):
            least = 16 if flag in ("height", "width") else 1
            print(f"{TOOL}: error: --{flag} {getattr(args, flag)}: must be at least {least}", file=sys.stderr)
            return 1
    if args.calibrated:
        from .synthetic.scene import make_scene, write_scene

        scene = make_scene(args.cameras, args.frames, (args.height, args.width))
        with progress_bar(args.cameras * args.frames, TOOL) as bar:
            root = write_scene(data_root, scene, "gt_masks", ".png", images=True, tick=bar.update)
        print(f"{TOOL}: wrote {args.cameras} calibrated cameras x {args.frames} frames to {root / 'images'} "
              f"(intri.yml, extri.yml, gt_masks/)")
        return 0
    root = make_demo_dataset(data_root, args.cameras, args.frames, (args.height, args.width),
                             (args.height * 3 // 4, args.width * 3 // 4))
    print(f"{TOOL}: wrote {args.cameras} cameras x {args.frames} frames to {root / 'images'} (gt_masks/)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
