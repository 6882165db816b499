"""What the GPU-side benches share: a synthetic JPEG capture with backgrounds, synthesized checkpoints of the
tools' default models, and each tool's command line at its defaults (SCHP with ``--detector none``:
torchvision's COCO weights cannot be had offline)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PARITY = REPO / "tests" / "parity"
SCRIPTS = REPO / "scripts" / "segmentation"
TOOLS = ("rvm", "bgmv2", "schp")
# tool: (the default model's key layout, its official file name); SCHP's CIHP model has LIP's 20-class layout
CHECKPOINTS = {"rvm": ("rvm_resnet50", "rvm_resnet50.pth"), "bgmv2": ("bgmv2_resnet101", "pytorch_resnet101.pth"),
               "schp": ("schp_lip", "exp_schp_multi_cihp_local.pth")}
SCRIPT_NAMES = {"rvm": "inference_robust_video_matting.py", "bgmv2": "inference_bkgdmattev2.py",
                "schp": "inference_schp.py"}


def make_dataset(root: Path, size: tuple[int, int], cameras: int, frames: int, unique: int | None = None) -> Path:
    """``cameras`` x ``frames`` JPEG frames (hard links of ``unique`` rendered ones per camera, all rendered when
    ``None``) and a PNG background per camera in ``bkgd/``."""
    from easyvolcap.image_io import write_image
    from easyvolcap.synthetic.capture import background, make_demo_dataset

    unique = min(unique or frames, frames)
    make_demo_dataset(root, cameras, unique, size, odd_size=None)
    for c in range(cameras):
        folder = root / "images" / f"{c:02d}"
        for f in range(unique, frames):
            os.link(folder / f"{f % unique:06d}.jpg", folder / f"{f:06d}.jpg")
        write_image(root / "bkgd" / f"{c:02d}.png", background(*size, seed=c))
    return root


def synthesize(folder: Path, tools: tuple[str, ...] | list[str] = TOOLS) -> dict[str, Path]:
    """Each of ``tools``' default checkpoint, synthesized from the official key layout (the same every run)."""
    import torch

    from easyvolcap.synthetic.weights import load_spec, synth_state_dict

    paths = {}
    for tool in tools:
        keys, name = CHECKPOINTS[tool]
        state = synth_state_dict(load_spec(PARITY / f"{keys}.keys.json"))
        paths[tool] = folder / name
        torch.save({"state_dict": state} if tool == "schp" else state, paths[tool])
    return paths


def tool_argv(tool: str, root: Path, weights: Path, device: str, out: str) -> list[str]:
    """The command line of ``tool`` at its defaults, writing its masks to ``out`` (SCHP's labels to ``out_labels``)."""
    argv = [sys.executable, str(SCRIPTS / SCRIPT_NAMES[tool]), "--data_root", str(root), "--device", device,
            "--chkpt_path", str(weights), "--mask_dir", out, "--no_preview"]
    return argv + (["--detector", "none", "--schp_dir", f"{out}_labels"] if tool == "schp" else [])
