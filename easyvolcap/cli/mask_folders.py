"""Flags and layout discovery shared by the tools whose input is a folder of mask folders (merge, invert)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import EvcError
from ..layout import DatasetLayout
from . import resolve_shard, shard_spec

__all__ = ["add_mask_dataset_args", "discover_masks"]


def add_mask_dataset_args(parser: argparse.ArgumentParser) -> None:
    """``--data_root``, ``--image_dir`` (the preview's pictures), ``--only`` and ``--shard``."""
    parser.add_argument("--data_root", required=True, help="dataset root holding the mask folders")
    parser.add_argument("--image_dir", "--images_dir", dest="image_dir", default="images",
                        help="images shown under the masks in the preview (matched by camera and stem)")
    parser.add_argument("--only", nargs="+", metavar="CAM", default=None, help="process only these cameras")
    parser.add_argument("--shard", type=shard_spec, default=None, metavar="I/N",
                        help="process part I (from 0) of N: every N-th camera from the I-th "
                             "(default: SLURM_ARRAY_TASK_ID of SLURM_ARRAY_TASK_COUNT when set, else all)")


def discover_masks(args: argparse.Namespace, tool: str, folder: str, flag: str, extensions: tuple[str, ...]):
    """The layout of ``<data_root>/<folder>/<camera>/<frame><ext>`` masks, warning about cameras without any.

    Raises:
        EvcError: the root or the mask folder is missing, a camera of ``--only`` is not there, no camera
            has a mask, or a "camera" is a video file.
    """
    root = Path(args.data_root)
    if root.is_dir() and not (root / folder).is_dir():
        raise EvcError(f"{root / folder}: mask folder not found (set {flag})")
    shard = resolve_shard(args)
    layout = DatasetLayout.discover(root, folder, args.only, extensions, shard, flag=flag, kind="mask")
    for camera in layout.cameras:
        if camera.video is not None:
            raise EvcError(f"{camera.video}: a video in the mask folder {root / folder}; masks are image files")
    for camera in layout.skipped:
        print(f"{tool}: warning: camera {camera} has no {'/'.join(extensions)} masks in {root / folder}; skipped",
              file=sys.stderr)
    if shard is not None and not layout.cameras:
        print(f"{tool}: warning: shard {shard[0]}/{shard[1]} has no cameras", file=sys.stderr)
    return layout
