"""The scripts and entry points as a user runs them: separate processes, exit codes, output lines."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RVM_SCRIPT = REPO / "scripts" / "segmentation" / "inference_robust_video_matting.py"


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.mark.slow
def test_demo_then_rvm_script_end_to_end(tmp_path, rvm_checkpoints):
    demo = run("-m", "easyvolcap.demo", str(tmp_path / "demo"), "--frames", "3", "--height", "36", "--width", "64")
    assert demo.returncode == 0, demo.stderr
    assert sorted(p.name for p in (tmp_path / "demo" / "images").iterdir()) == ["00", "01", "02"]
    done = run(str(RVM_SCRIPT), "--data_root", str(tmp_path / "demo"), "--variant", "mobilenetv3",
               "--chkpt_path", str(rvm_checkpoints["mobilenetv3"]), "--device", "cpu", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no progress bar when stderr is not a terminal, no warnings
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("evc-rvm: wrote 9 masks to ")
    assert len(list((tmp_path / "demo" / "rvm").rglob("*.jpg"))) == 9


@pytest.mark.slow
def test_expected_fault_is_one_line_without_traceback(tmp_path):
    done = run(str(RVM_SCRIPT), "--data_root", str(tmp_path / "absent"))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"evc-rvm: error: --data_root {tmp_path / 'absent'}: not a directory"]
    debug = run(str(RVM_SCRIPT), "--data_root", str(tmp_path / "absent"), "--debug")
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_help_lists_every_flag():
    done = run(str(RVM_SCRIPT), "--help")
    assert done.returncode == 0
    for flag in ("--data_root", "--image_dir", "--mask_dir", "--mask_ext", "--batch_size", "--variant",
                 "--chkpt_path", "--downsample_ratio", "--fgr_dir", "--device", "--fp16", "--only",
                 "--overwrite", "--quality", "--workers", "--debug"):
        assert flag in done.stdout


@pytest.mark.skipif(shutil.which("evc-rvm") is None, reason="package not installed with its entry points")
def test_console_entry_point():
    done = subprocess.run(["evc-rvm", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "--data_root" in done.stdout


def test_backgrounds_script_end_to_end(tmp_path):
    assert run("-m", "easyvolcap.demo", str(tmp_path / "d"), "--frames", "4", "--height", "36",
               "--width", "64").returncode == 0
    done = run(str(REPO / "scripts" / "segmentation" / "extract_backgrounds.py"), "--data_root", str(tmp_path / "d"),
               "--masks_dir", "gt_masks", "--mask_ext", ".png", "--jump", "2", "--dilation", "3")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.startswith(f"evc-bkgd: wrote 3 backgrounds (mean of 6 frames) to {tmp_path / 'd' / 'bkgd'}")
    assert sorted(p.name for p in (tmp_path / "d" / "bkgd").iterdir()) == ["00.png", "01.png", "02.png"]


@pytest.mark.parametrize("script, flags", [
    ("inference_bkgdmattev2.py", ("--chkpt_path", "--bkgd_dir", "--chunk_size", "--backbone_scale", "--refine_mode",
                                  "--refine_sample_pixels", "--refine_threshold", "--resize_bkgd", "--fgr_dir")),
    ("inference_schp.py", ("--dataset", "--chkpt_dir", "--detector", "--restore", "--schp_dir", "--logits_dir")),
    ("extract_backgrounds.py", ("--masks_dir", "--bkgd_dir", "--jump", "--dilation", "--method", "--max_memory")),
])
def test_every_script_answers_help(script, flags):
    done = run(str(REPO / "scripts" / "segmentation" / script), "--help")
    assert done.returncode == 0 and all(flag in done.stdout for flag in flags)


@pytest.mark.slow
def test_mask_helper_scripts_chain_and_list_their_flags(tmp_path):
    from mask_data import make_mask_dataset

    data = make_mask_dataset(tmp_path / "d", cameras=2, frames=2)
    scripts = REPO / "scripts" / "segmentation"
    flags = {"merge_schp_rvm_mask.py": ("--data_root", "--rvm_dir", "--schp_dir", "--rvm_ext", "--schp_ext",
                                        "--out_dir", "--out_ext", "--dilation", "--threshold", "--only", "--shard",
                                        "--overwrite", "--workers", "--no_preview"),
             "invert_mask.py": ("--data_root", "--masks_dir", "--inv_masks_dir", "--only", "--shard", "--overwrite"),
             "visualize_masked_images.py": ("--data_root", "--image_dir", "--mask_dir", "--output", "--fps",
                                            "--ratio", "--max_length", "--only", "--label", "--no_visualize",
                                            "--no_store")}
    for script, names in flags.items():
        done = run(str(scripts / script), "--help")
        assert done.returncode == 0 and all(name in done.stdout for name in names), script
    steps = [("merge_schp_rvm_mask.py", "--data_root", str(data), "--rvm_dir", "rvm", "--schp_dir", "mask"),
             ("invert_mask.py", "--data_root", str(data)),
             ("visualize_masked_images.py", "--data_root", str(data), "--mask_dir", "merged_mask", "--no_visualize")]
    for script, *args in steps:
        done = run(str(scripts / script), *args)
        assert done.returncode == 0 and done.stderr == "", done.stderr
        assert len(done.stdout.strip().splitlines()) == 1
    assert len(list((data / "inv_maskes").rglob("*.jpg"))) == 4 and (data / "masked.mp4").stat().st_size > 0
