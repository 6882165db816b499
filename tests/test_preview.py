"""The contact sheet every tool writes at the end of a run."""

from __future__ import annotations

import cv2
import numpy as np

from easyvolcap.cli import backgrounds, rvm
from easyvolcap.demo import make_demo_dataset
from easyvolcap.preview import GAP, MAX_CAMERAS, TILE, spread


def sheet_shape(rows: int, columns: int) -> tuple[int, int]:
    return rows * (TILE[0] + GAP) - GAP, columns * (TILE[1] + GAP) - GAP


def test_rvm_writes_one_row_per_camera_and_frames_over_time(tmp_path, rvm_checkpoints, capsys):
    data = make_demo_dataset(tmp_path / "d", cameras=3, frames=9, size=(48, 64), odd_size=(40, 56))
    assert rvm.main(["--data_root", str(data), "--variant", "mobilenetv3", "--device", "cpu",
                     "--chkpt_path", str(rvm_checkpoints["mobilenetv3"])]) == 0
    preview = data / "preview" / "rvm.jpg"
    assert capsys.readouterr().out.strip().endswith(f"; preview {preview}")
    image = cv2.imread(str(preview))
    assert image.shape[:2] == sheet_shape(3, 4)  # 3 cameras x 4 frames spread over 9
    assert not (data / "rvm" / "preview").exists() and sorted(p.name for p in (data / "rvm").iterdir()) == [
        "00", "01", "02"]


def test_rows_are_capped_and_no_preview_turns_it_off(tmp_path, capsys):
    data = make_demo_dataset(tmp_path / "d", cameras=MAX_CAMERAS + 2, frames=2, size=(24, 32), odd_size=None,
                             ext=".png")
    (data / "gt_masks").rename(data / "mask")
    assert backgrounds.main(["--data_root", str(data), "--mask_ext", ".png", "--jump", "1"]) == 0
    image = cv2.imread(str(data / "preview" / "bkgd.jpg"))
    assert image.shape[:2] == sheet_shape(MAX_CAMERAS, 2)  # frame beside background, first cameras only
    (data / "preview" / "bkgd.jpg").unlink()
    assert backgrounds.main(["--data_root", str(data), "--mask_ext", ".png", "--overwrite", "--no_preview"]) == 0
    assert not (data / "preview" / "bkgd.jpg").exists() and "preview" not in capsys.readouterr().out.splitlines()[-1]


def test_frames_are_spread_over_time():
    from easyvolcap.layout import Camera

    camera = Camera("c", tuple(f"{i}.jpg" for i in range(10)))
    assert spread(camera) == [0, 3, 6, 9]
    assert spread(Camera("c", ("a.jpg", "b.jpg"))) == [0, 1]
    assert np.array_equal(spread(Camera("c", ("a.jpg",))), [0])
