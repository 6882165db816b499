"""merge_schp_rvm_mask.py and invert_mask.py on a synthetic capture: outputs, resume, bad input, shards."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from mask_data import make_mask_dataset, reference_merge

from easyvolcap.cli import invert, merge
from easyvolcap.image_io import read_gray, write_image
from easyvolcap.masks import binarize


@pytest.fixture
def data(tmp_path) -> Path:
    return make_mask_dataset(tmp_path / "d")


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize(("dilation", "threshold"), [(20, 128), (4, 128), (1, 128), (0, 60), (5, 200)])
def test_merge_equals_easyvolcaps_rule(data, dilation, threshold, capsys):
    assert merge.main(["--data_root", str(data), "--out_ext", ".png", "--dilation", str(dilation),
                       "--threshold", str(threshold / 255), "--no_preview"]) == 0  # a fraction: level / 255
    rvms = sorted((data / "rvm").rglob("*.jpg"))
    assert len(rvms) == 12 and sorted(p.relative_to(data / "merged_mask") for p in (data / "merged_mask").rglob("*")
                                      if p.is_file()) == [p.relative_to(data / "rvm").with_suffix(".png") for p in rvms]
    removed = 0
    for rvm in rvms:
        schp = read_gray(data / "mask" / rvm.parent.name / f"{rvm.stem}.png")
        expected = reference_merge(read_gray(rvm), schp, dilation, threshold)
        merged = read_gray(data / "merged_mask" / rvm.parent.name / f"{rvm.stem}.png")
        assert np.array_equal(merged, expected), rvm
        removed += int((schp > 0).sum() - (merged > 0).sum())
    assert removed > 0  # the bystander is dropped somewhere: the rule is not the identity on this data
    assert capsys.readouterr().out.startswith(f"evc-merge: wrote 12 merged masks to {data / 'merged_mask'}")


def test_merge_defaults_name_outputs_after_rvm_files_single_channel(data, capsys):
    assert merge.main(["--data_root", str(data)]) == 0
    outputs = sorted((data / "merged_mask").rglob("*.*"))
    assert len(outputs) == 12 and {p.suffix for p in outputs} == {".jpg"}
    with open(outputs[0], "rb") as handle:  # JPEG SOF0 component count: 1 (grey)
        data_bytes = handle.read()
    sof = data_bytes.index(b"\xff\xc0")
    assert data_bytes[sof + 9] == 1
    assert (data / "preview" / "merged_mask.jpg").is_file() and not (data / "merged_mask" / "preview").exists()
    assert capsys.readouterr().out.rstrip().endswith(f"preview {data / 'preview' / 'merged_mask.jpg'}")


def test_merge_resumes_and_keeps_finished_files(data, capsys):
    args = ["--data_root", str(data), "--out_ext", ".png", "--no_preview"]
    assert merge.main(args) == 0
    first = files(data / "merged_mask")
    (data / "merged_mask" / "01" / "000002.png").unlink()
    (data / "merged_mask" / "00" / ".000001.png.x.tmp").write_bytes(b"half")  # a killed run's temporary file
    stamp = (data / "merged_mask" / "00" / "000000.png").stat().st_mtime_ns
    assert merge.main(args) == 0
    assert files(data / "merged_mask") == first
    assert (data / "merged_mask" / "00" / "000000.png").stat().st_mtime_ns == stamp
    os.utime(data / "merged_mask" / "00" / "000000.png", ns=(1, 1))
    assert merge.main([*args, "--overwrite"]) == 0 and files(data / "merged_mask") == first
    assert (data / "merged_mask" / "00" / "000000.png").stat().st_mtime_ns != 1


def test_merge_resume_summary_counts(data, capsys):
    args = ["--data_root", str(data), "--no_preview"]
    assert merge.main(args) == 0
    (data / "merged_mask" / "01" / "000002.jpg").unlink()
    capsys.readouterr()
    assert merge.main(args) == 0
    out = capsys.readouterr().out
    assert "wrote 1 merged masks" in out and "11 already there" in out


def test_merge_skips_frames_of_one_input_with_one_warning(data, capsys):
    (data / "mask" / "00" / "000001.png").unlink()
    (data / "mask" / "02" / "000003.png").rename(data / "mask" / "02" / "000003.jpg")  # not of --schp_ext's type
    write_image(data / "mask" / "01" / "000009.png", np.zeros((48, 64), np.uint8))  # SCHP only
    assert merge.main(["--data_root", str(data), "--schp_ext", "png", "--no_preview"]) == 0
    captured = capsys.readouterr()
    warnings = captured.err.strip().splitlines()
    assert len(warnings) == 1 and warnings[0].startswith("evc-merge: warning: 2 RVM masks have no SCHP mask")
    assert "1 SCHP masks have no RVM mask (01/000009" in warnings[0] and "00/000001" in warnings[0]
    assert "wrote 10 merged masks" in captured.out and "3 frames in one input only skipped" in captured.out
    assert not (data / "merged_mask" / "00" / "000001.jpg").exists()
    assert merge.main(["--data_root", str(data), "--no_preview"]) == 0  # any type: the .jpg is 02/000003's mask
    assert "wrote 1 merged masks" in capsys.readouterr().out and (data / "merged_mask" / "02" / "000003.jpg").exists()


def test_merge_matches_by_camera_and_stem_not_by_path_text(tmp_path, capsys):
    # the folder names occur elsewhere in the path: EasyVolcap's string replacement would read wrong files
    data = make_mask_dataset(tmp_path / "rvm" / "mask")
    assert merge.main(["--data_root", str(data), "--out_ext", ".png", "--dilation", "3", "--no_preview"]) == 0
    rvm = data / "rvm" / "01" / "000002.jpg"
    expected = reference_merge(read_gray(rvm), read_gray(data / "mask" / "01" / "000002.png"), 3)
    assert np.array_equal(read_gray(data / "merged_mask" / "01" / "000002.png"), expected)


def test_merge_bad_input_is_one_line(data, tmp_path, capsys):
    assert merge.main(["--data_root", str(tmp_path / "nowhere")]) == 1
    assert "not a directory" in error_line(capsys)
    assert merge.main(["--data_root", str(data), "--rvm_dir", "nope"]) == 1
    assert error_line(capsys) == f"evc-merge: error: {data / 'nope'}: mask folder not found (set --rvm_dir)"
    assert merge.main(["--data_root", str(data), "--schp_dir", "nope"]) == 1
    assert error_line(capsys) == f"evc-merge: error: {data / 'nope'}: mask folder not found (set --schp_dir)"
    small = data / "mask" / "01" / "000002.png"
    write_image(small, np.zeros((24, 32), np.uint8))
    assert merge.main(["--data_root", str(data), "--no_preview", "--workers", "1"]) == 1
    line = error_line(capsys)
    assert line == (f"evc-merge: error: {data / 'rvm' / '01' / '000002.jpg'} is 64x48 but {small} is 32x24; "
                    "the masks of a frame must have one size")
    assert not (data / "merged_mask" / "01" / "000002.jpg").exists()
    with pytest.raises(SystemExit, match="2"):  # argparse: bad flag value
        merge.main(["--data_root", str(data), "--threshold", "255"])
    capsys.readouterr()
    assert merge.main(["--data_root", str(data), "--only", "07"]) == 1 and "07" in error_line(capsys)


def test_merge_shard_union_is_one_run(data, tmp_path, capsys):
    whole = make_mask_dataset(tmp_path / "whole")
    assert merge.main(["--data_root", str(whole), "--no_preview"]) == 0
    for i in range(2):
        assert merge.main(["--data_root", str(data), "--shard", f"{i}/2", "--no_preview"]) == 0
    assert files(data / "merged_mask") == files(whole / "merged_mask") and len(files(whole / "merged_mask")) == 12


def test_invert_writes_the_complement_in_each_masks_type(data, capsys):
    (data / "merged_mask").mkdir()
    for camera in ("00", "01"):
        (data / "rvm" / camera).rename(data / "merged_mask" / camera)  # .jpg soft masks
    (data / "mask" / "02").rename(data / "merged_mask" / "02")  # .png masks
    assert invert.main(["--data_root", str(data)]) == 0
    inputs = sorted(p for p in (data / "merged_mask").rglob("*") if p.is_file())
    outputs = sorted(p for p in (data / "inv_maskes").rglob("*") if p.is_file())
    assert [p.relative_to(data / "inv_maskes") for p in outputs] == [p.relative_to(data / "merged_mask")
                                                                     for p in inputs]
    for mask, inverted in zip(inputs, outputs, strict=True):
        expected = 255 - 255 * (read_gray(mask).astype(float) * 255 / read_gray(mask).max() > 128)
        got = read_gray(inverted)
        if mask.suffix == ".png":
            assert np.array_equal(got, expected)
        else:  # JPEG: lossy, but on the right side of the middle everywhere but a few edge pixels
            assert (abs(got.astype(int) - expected) > 127).mean() < 0.01
    assert np.array_equal(binarize(np.array([[0, 100, 101, 200]], np.uint8)), [[0, 0, 1, 1]])  # scaled to max 200
    out = capsys.readouterr().out
    assert out.startswith(f"evc-invert: wrote 12 inverted masks to {data / 'inv_maskes'}") and "preview" in out


def test_invert_resumes_shards_and_refuses_bad_input(data, tmp_path, capsys):
    (data / "mask").rename(data / "merged_mask")
    args = ["--data_root", str(data), "--no_preview"]
    assert invert.main(args) == 0
    first = files(data / "inv_maskes")
    (data / "inv_maskes" / "02" / "000000.png").unlink()
    capsys.readouterr()
    assert invert.main(args) == 0 and files(data / "inv_maskes") == first
    assert "wrote 1 inverted masks" in capsys.readouterr().out
    other = make_mask_dataset(tmp_path / "other")
    (other / "mask").rename(other / "merged_mask")
    for i in range(3):
        assert invert.main(["--data_root", str(other), "--shard", f"{i}/3", "--no_preview"]) == 0
    assert files(other / "inv_maskes") == first
    assert invert.main(["--data_root", str(data), "--masks_dir", "nope"]) == 1
    assert error_line(capsys) == f"evc-invert: error: {data / 'nope'}: mask folder not found (set --masks_dir)"
    (data / "merged_mask" / "01" / "000003.png").write_bytes(b"not a png")
    assert invert.main([*args, "--overwrite"]) == 1
    bad = data / "merged_mask" / "01" / "000003.png"
    assert error_line(capsys) == f"evc-invert: error: {bad}: not a readable image"


def test_merge_reads_16_bit_0_1_masks_as_foreground_where_1(data):
    """SCHP (or RVM) masks saved as 16-bit PNG holding 0/1: foreground where 1, not the empty mask a >> 8 makes."""
    import cv2

    for path in (data / "mask").rglob("*.png"):
        cv2.imwrite(str(path), (read_gray(path) > 127).astype(np.uint16))
    assert read_gray(next((data / "mask").rglob("*.png"))).max() == 255
    assert merge.main(["--data_root", str(data), "--out_ext", ".png", "--no_preview"]) == 0
    for rvm in sorted((data / "rvm").rglob("*.jpg")):
        merged = read_gray(data / "merged_mask" / rvm.parent.name / f"{rvm.stem}.png")
        assert (merged == 255).sum() > 50, rvm


def test_merge_without_a_single_matching_frame_fails(data, capsys):
    assert merge.main(["--data_root", str(data), "--schp_ext", ".jpg", "--no_preview"]) == 1
    assert "nothing to merge" in capsys.readouterr().err.strip().splitlines()[-1]
    assert not (data / "merged_mask").exists()
