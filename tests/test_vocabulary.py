"""One vocabulary across the tools: one name per tool, the same flag for the same concept with the same default and
unit, mask types detected, input folders defaulting to what the previous tool writes, one-line flag errors."""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from easyvolcap.cli import backgrounds, bgmv2, check, invert, merge, rvm, schp, visualize
from easyvolcap.image_io import write_image
from easyvolcap.synthetic.capture import make_demo_dataset

REPO = Path(__file__).resolve().parents[1]
TOOLS = {"rvm": rvm, "bgmv2": bgmv2, "schp": schp, "bkgd": backgrounds, "merge": merge, "invert": invert,
         "visualize": visualize, "check": check}
READERS = {"bkgd": backgrounds, "invert": invert, "visualize": visualize, "check": check}  # one input mask folder


def defaults(module, *argv: str):
    return module.build_parser().parse_args(["--data_root", "x", *argv])


@pytest.mark.parametrize("name", [*TOOLS, "demo"])
def test_each_tool_has_one_name_in_usage_errors_and_the_console(name, tmp_path, capsys):
    module = importlib.import_module("easyvolcap.demo") if name == "demo" else TOOLS[name]
    tool = f"evc-{name}"
    assert tool == module.TOOL
    scripts = (REPO / "pyproject.toml").read_text()
    assert re.search(rf'^{tool} = "{module.__name__}:main"$', scripts, re.M)  # the console command
    if name == "demo":
        return
    assert module.build_parser().prog == tool and module.build_parser().format_usage().startswith(f"usage: {tool} ")
    assert module.main(["--data_root", str(tmp_path / "absent")]) == 1
    assert capsys.readouterr().err.startswith(f"{tool}: error: ")


@pytest.mark.parametrize("name", [*TOOLS, "demo"])
def test_a_bad_flag_is_one_line_pointing_at_help(name):
    module = "easyvolcap.demo" if name == "demo" else TOOLS[name].__name__
    done = subprocess.run([sys.executable, "-c", f"import sys; from {module} import main; sys.exit(main())",
                           "--data_root", "x", "--no_such_flag"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"evc-{name}: error: unrecognized arguments: --no_such_flag "
                                        f"(see evc-{name} --help)"], done.stderr


@pytest.mark.parametrize("name, flag", [("rvm", "--mask_ext"), ("bgmv2", "--mask_ext"), ("bkgd", "--mask_ext"),
                                        ("bkgd", "--ext"), ("bkgd", "--image_ext"), ("merge", "--rvm_ext"),
                                        ("merge", "--schp_ext"), ("merge", "--out_ext"), ("invert", "--mask_ext"),
                                        ("visualize", "--mask_ext"), ("check", "--mask_ext")])
def test_file_types_with_or_without_the_dot(name, flag):
    dest = flag.lstrip("-")
    for given in ("png", ".png", "PNG", ".PNG"):
        assert getattr(defaults(TOOLS[name], flag, given), dest) == ".png"


@pytest.mark.parametrize("name", ["bkgd", "merge", "invert", "visualize", "check"])
def test_thresholds_are_fractions_of_full_scale_everywhere(name, capsys):
    assert defaults(TOOLS[name]).threshold == 0.5
    assert defaults(TOOLS[name], "--threshold", "0.25").threshold == 0.25
    with pytest.raises(SystemExit):
        defaults(TOOLS[name], "--threshold", "128")  # a level: the one unit is the fraction
    assert "pass 0.502" in capsys.readouterr().err


def test_input_mask_folders_default_to_what_the_previous_tool_writes():
    rvm_out = defaults(rvm).mask_dir
    assert defaults(backgrounds).masks_dir == rvm_out == defaults(check).masks_dir == defaults(visualize).masks_dir
    assert defaults(merge).rvm_dir == rvm_out and defaults(merge).schp_dir == defaults(schp).mask_dir
    assert defaults(invert).masks_dir == defaults(merge).out_dir
    assert defaults(bgmv2).bkgd_dir == defaults(backgrounds).bkgd_dir


@pytest.mark.parametrize("name, old, dest", [
    ("rvm", "--masks_dir", "mask_dir"), ("bgmv2", "--masks_dir", "mask_dir"), ("schp", "--masks_dir", "mask_dir"),
    ("bkgd", "--mask_dir", "masks_dir"), ("invert", "--mask_dir", "masks_dir"),
    ("visualize", "--mask_dir", "masks_dir"), ("check", "--mask_dir", "masks_dir"),
    ("rvm", "--images_dir", "image_dir"), ("visualize", "--images_dir", "image_dir"),
])
def test_easyvolcaps_flag_names_still_work(name, old, dest):
    assert getattr(defaults(TOOLS[name], old, "somewhere"), dest) == "somewhere"


@pytest.fixture
def png_masks(tmp_path) -> Path:
    """A capture whose RVM and SCHP masks are PNGs (the tools' defaults would write JPEG RVM masks)."""
    root = make_demo_dataset(tmp_path / "d", cameras=2, frames=3, size=(32, 48), odd_size=None)
    shutil.copytree(root / "gt_masks", root / "rvm")
    shutil.copytree(root / "gt_masks", root / "mask")
    return root


def test_every_reader_detects_the_mask_type(png_masks, capsys):
    common = ["--data_root", str(png_masks), "--no_preview"]
    assert backgrounds.main([*common, "--jump", "1"]) == 0
    assert merge.main(common) == 0
    assert invert.main(common) == 0
    assert check.main([*common, "--device", "cpu"]) == 0
    assert visualize.main(["--data_root", str(png_masks), "--output", "review.mp4"]) == 0
    out = capsys.readouterr().out
    assert "wrote 2 backgrounds" in out and "wrote 6 merged masks" in out and "wrote 6 inverted masks" in out
    assert "checked 6 masks" in out and "wrote 3 frames" in out and "black tiles" not in out
    assert sorted(p.name for p in (png_masks / "merged_mask" / "00").iterdir()) == [f"{i:06d}.png" for i in range(3)]


def test_two_masks_of_one_frame_are_refused_by_every_reader(png_masks, capsys):
    write_image(png_masks / "rvm" / "01" / "000002.jpg", np.zeros((32, 48), np.uint8))
    common = ["--data_root", str(png_masks), "--no_preview"]
    for main in (backgrounds.main, merge.main, check.main):
        assert main([*common, *(["--device", "cpu"] if main is check.main else [])]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "000002" in err[0] and ("two masks" in err[0] or "share the frame name" in err[0])
    assert visualize.main(["--data_root", str(png_masks), "--output", "review.mp4"]) == 1
    assert "two masks of frame '000002'" in capsys.readouterr().err
    assert backgrounds.main([*common, "--mask_ext", "png", "--jump", "1"]) == 0  # one type named: no ambiguity


def test_invert_refuses_to_write_beside_a_mask_of_the_same_frame_of_another_type(png_masks, capsys):
    """Two mask folders of two types into one output folder: the second run would leave 000000.jpg and 000000.png
    side by side, which every reader refuses; it is refused before it writes anything."""
    root = png_masks
    for camera in ("00", "01"):
        for i in range(3):
            write_image(root / "merged_mask" / camera / f"{i:06d}.jpg", np.full((32, 48), 255, np.uint8))
    assert invert.main(["--data_root", str(root), "--no_preview"]) == 0  # .jpg masks: .jpg outputs
    before = {p: p.stat().st_mtime_ns for p in (root / "inv_maskes").rglob("*")}
    assert invert.main(["--data_root", str(root), "--masks_dir", "mask", "--no_preview"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("evc-invert: error: ") and "000000.jpg is already there" in err[0]
    assert {p: p.stat().st_mtime_ns for p in (root / "inv_maskes").rglob("*")} == before  # nothing written
    assert not list((root / "inv_maskes").rglob("*.png"))


@pytest.mark.slow
def test_rvm_recognises_its_variant_from_the_checkpoint(tmp_path, rvm_checkpoints, capsys):
    root = make_demo_dataset(tmp_path / "d", cameras=1, frames=2, size=(32, 48), odd_size=None)
    assert rvm.main(["--data_root", str(root), "--chkpt_path", str(rvm_checkpoints["mobilenetv3"]), "--device", "cpu",
                     "--no_preview"]) == 0  # no --variant: the file says mobilenetv3
    assert "; mobilenetv3, batch" in capsys.readouterr().out
    assert rvm.main(["--data_root", str(root), "--chkpt_path", str(rvm_checkpoints["mobilenetv3"]), "--variant",
                     "resnet50", "--device", "cpu", "--overwrite", "--no_preview"]) == 1
    assert "this checkpoint is for variant 'mobilenetv3'" in capsys.readouterr().err
