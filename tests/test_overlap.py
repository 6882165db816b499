"""No tool writes over its own inputs: an output folder (or file) that is an input of the same run, holds one
or lies inside one is refused with one line, before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest
from mask_data import make_mask_dataset

from easyvolcap.cli import backgrounds, bgmv2, check, invert, merge, rvm, schp, visualize
from easyvolcap.errors import EvcError
from easyvolcap.overlap import check_overlap

CASES = [
    (check, ["--masks_dir", "rvm", "--repair_dir", "rvm"], "--repair_dir rvm: is the input --masks_dir rvm"),
    (check, ["--masks_dir", "rvm", "--repair_dir", "rvm/fixed"], "--repair_dir rvm/fixed: lies inside the input"),
    (merge, ["--out_dir", "rvm", "--overwrite"], "--out_dir rvm: is the input --rvm_dir rvm"),
    (merge, ["--out_dir", "mask", "--overwrite"], "--out_dir mask: is the input --schp_dir mask"),
    (merge, ["--out_dir", ".", "--overwrite"], "--out_dir .: holds the input --rvm_dir rvm"),
    (invert, ["--masks_dir", "rvm", "--inv_masks_dir", "rvm", "--overwrite"],
     "--inv_masks_dir rvm: is the input --masks_dir rvm"),
    (invert, ["--masks_dir", "mask", "--inv_masks_dir", "./mask/../mask", "--overwrite"],
     "--inv_masks_dir ./mask/../mask: is the input --masks_dir mask"),
    (visualize, ["--output", "rvm/review.mp4"], "--output rvm/review.mp4: lies inside the input --masks_dir rvm"),
    (rvm, ["--mask_dir", "images"], "--mask_dir images: is the input --image_dir images"),
    (rvm, ["--mask_dir", "rvm", "--fgr_dir", "images/fgr"], "--fgr_dir images/fgr: lies inside the input"),
    (bgmv2, ["--mask_dir", "bkgd"], "--mask_dir bkgd: is the input --bkgd_dir bkgd"),
    (schp, ["--schp_dir", "images"], "--schp_dir images: is the input --image_dir images"),
    (backgrounds, ["--masks_dir", "mask", "--bkgd_dir", "mask"], "--bkgd_dir mask: is the input --masks_dir mask"),
]


def files(folder: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(("tool", "argv", "message"), CASES, ids=[f"{c[0].TOOL}-{i}" for i, c in enumerate(CASES)])
def test_an_output_on_an_input_is_refused(tmp_path, capsys, tool, argv, message):
    data = make_mask_dataset(tmp_path / "d")
    (data / "bkgd").mkdir(exist_ok=True)
    before = files(data)
    assert tool.main(["--data_root", str(data), *argv]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"{tool.TOOL}: error: {message}"), err
    assert files(data) == before


def test_symlinked_and_separate_folders(tmp_path):
    (tmp_path / "masks").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "masks")
    with pytest.raises(EvcError, match="--repair_dir link: is the input --masks_dir masks"):
        check_overlap(tmp_path, {"--repair_dir": "link"}, {"--masks_dir": "masks"})
    check_overlap(tmp_path, {"--repair_dir": "masks_fixed", "--x": None}, {"--masks_dir": "masks", "--y": None})
    check_overlap(tmp_path, {"--out_dir": "a/b"}, {"--masks_dir": "a/c"})
