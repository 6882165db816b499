"""The contact sheet every tool writes at the end of a run."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from easyvolcap.cli import backgrounds, rvm
from easyvolcap.preview import GAP, LABEL_WIDTH, MAX_CAMERAS, TEXT_HEIGHT, TILE, TITLE_HEIGHT, contact_sheet, spread
from easyvolcap.synthetic.capture import make_demo_dataset


def sheet_shape(rows: int, columns: int) -> tuple[int, int]:
    return TITLE_HEIGHT + rows * (TILE[0] + GAP), LABEL_WIDTH + columns * (TILE[1] + GAP) - GAP


def ink(region: np.ndarray) -> int:
    """Pixels bright enough to be text (the labels are white on dark grey)."""
    return int((region.max(axis=-1) > 150).sum())


def row_label(sheet: np.ndarray, r: int) -> np.ndarray:
    top = TITLE_HEIGHT + GAP + r * (TILE[0] + GAP)
    return sheet[top:top + TILE[0], :LABEL_WIDTH - GAP]


def tile(sheet: np.ndarray, r: int, c: int) -> np.ndarray:
    top, left = TITLE_HEIGHT + GAP + r * (TILE[0] + GAP), LABEL_WIDTH + c * (TILE[1] + GAP)
    return sheet[top:top + TILE[0], left:left + TILE[1]]


@pytest.mark.slow
def test_rvm_writes_one_row_per_camera_and_frames_over_time(tmp_path, rvm_checkpoints, capsys):
    data = make_demo_dataset(tmp_path / "d", cameras=3, frames=9, size=(48, 64), odd_size=(40, 56))
    assert rvm.main(["--data_root", str(data), "--variant", "mobilenetv3", "--device", "cpu",
                     "--chkpt_path", str(rvm_checkpoints["mobilenetv3"])]) == 0
    preview = data / "preview" / "rvm.jpg"
    assert capsys.readouterr().out.strip().endswith(f"; preview {preview}")
    image = cv2.imread(str(preview))
    assert image.shape[:2] == sheet_shape(3, 4)  # 3 cameras x 4 frames spread over 9
    assert ink(image[:TITLE_HEIGHT]) > 200  # the title line: tool, output folder, date
    assert all(ink(row_label(image, r)) > 20 for r in range(3))  # each row starts with its camera name
    assert all(ink(tile(image, r, c)[-TEXT_HEIGHT:, :60]) > 20 for r in range(3) for c in range(4))
    assert not (data / "rvm" / "preview").exists() and sorted(p.name for p in (data / "rvm").iterdir()) == [
        "00", "01", "02"]


def test_rows_are_capped_and_no_preview_turns_it_off(tmp_path, capsys):
    data = make_demo_dataset(tmp_path / "d", cameras=MAX_CAMERAS + 2, frames=2, size=(24, 32), odd_size=None,
                             ext=".png")
    (data / "gt_masks").rename(data / "rvm")  # the background tool's default input
    assert backgrounds.main(["--data_root", str(data), "--jump", "1"]) == 0  # the mask type is detected
    image = cv2.imread(str(data / "preview" / "bkgd.jpg"))
    assert image.shape[:2] == sheet_shape(MAX_CAMERAS, 2)  # frame beside background, first cameras only
    (data / "preview" / "bkgd.jpg").unlink()
    assert backgrounds.main(["--data_root", str(data), "--mask_ext", "png", "--overwrite", "--no_preview"]) == 0
    assert not (data / "preview" / "bkgd.jpg").exists() and "preview" not in capsys.readouterr().out.splitlines()[-1]


def test_frames_are_spread_over_time():
    from easyvolcap.layout import Camera

    camera = Camera("c", tuple(f"{i}.jpg" for i in range(10)))
    assert spread(camera) == [0, 3, 6, 9]
    assert spread(Camera("c", ("a.jpg", "b.jpg"))) == [0, 1]
    assert np.array_equal(spread(Camera("c", ("a.jpg",))), [0])


def test_sheet_labels_rows_tiles_and_title_where_expected():
    black = np.zeros((*TILE, 3), np.uint8)
    rows = [("cam_a", [("000001", black), ("", black)]), ("cam_b", [("000001", black), ("000007", black)])]
    sheet = contact_sheet(rows, "rvm: /data/rvm  2025-01-01 12:00")
    assert sheet.shape[:2] == sheet_shape(2, 2)
    title = sheet[:TITLE_HEIGHT]
    assert ink(title) > 200 and ink(title[:, sheet.shape[1] // 2:]) == 0  # text on the left of a dark band
    assert (title.max(axis=-1) < 60).mean() > 0.9
    labels = [row_label(sheet, r) for r in range(2)]
    assert all(ink(label) > 20 for label in labels) and not np.array_equal(*labels)  # each its own camera
    assert np.array_equal(tile(sheet, 0, 0)[-TEXT_HEIGHT:], tile(sheet, 1, 0)[-TEXT_HEIGHT:])  # same stem, same text
    assert not np.array_equal(tile(sheet, 1, 0)[-TEXT_HEIGHT:], tile(sheet, 1, 1)[-TEXT_HEIGHT:])
    for r, c in ((0, 0), (1, 0), (1, 1)):
        assert ink(tile(sheet, r, c)[-TEXT_HEIGHT:]) > 20  # the stem, at the bottom of the tile
        assert ink(tile(sheet, r, c)[:-TEXT_HEIGHT]) == 0  # and nowhere else on the picture
    assert ink(tile(sheet, 0, 1)) == 0  # no label, no text


def test_long_labels_keep_their_end_and_stay_in_their_column():
    black = np.zeros((*TILE, 3), np.uint8)
    sheets = [contact_sheet([(f"a_very_long_camera_name_cam_0{k}", [("0" * 60 + f"4{k}", black)])], "t")
              for k in (7, 8)]
    for sheet in sheets:
        assert (sheet[TITLE_HEIGHT:, LABEL_WIDTH - GAP:LABEL_WIDTH] == 255).all()  # the name's band stops short
        assert ink(row_label(sheet, 0)) > 20 and ink(tile(sheet, 0, 0)[-TEXT_HEIGHT:]) > 20
    # cut from the start: the ends, which tell cameras and frames apart, stay
    assert not np.array_equal(row_label(sheets[0], 0), row_label(sheets[1], 0))
    assert not np.array_equal(tile(sheets[0], 0, 0)[-TEXT_HEIGHT:], tile(sheets[1], 0, 0)[-TEXT_HEIGHT:])


def test_previews_decode_frames_only_as_large_as_their_tiles(tmp_path):
    """A frame is decoded at 1/2, 1/4 or 1/8 of its size (DCT scaling), never below what its 240x160 tile shows,
    its mask shrunk to match: the overlay still lands on the person."""
    from easyvolcap.layout import DatasetLayout
    from easyvolcap.preview import TILE, mask_rows, reduction

    sizes = ((48, 64), (540, 960), (720, 1280), (1080, 1920), (2160, 3840))
    assert [reduction(size) for size in sizes] == [1, 4, 4, 8, 8]
    for height, width in sizes:  # the decoded image is at least as large as the tile shows it
        scale = min(TILE[0] / height, TILE[1] / width, 1)
        assert height // reduction((height, width)) >= round(height * scale)
        assert width // reduction((height, width)) >= round(width * scale)
    root = make_demo_dataset(tmp_path / "d", cameras=1, frames=2, size=(720, 1280), odd_size=None)
    layout = DatasetLayout.discover(root)
    (stem, tile), _ = mask_rows(layout, "gt_masks", ".png")(layout.cameras[0])
    truth = cv2.resize(cv2.imread(str(root / "gt_masks" / "00" / f"{stem}.png"), 0), (320, 180),
                       interpolation=cv2.INTER_AREA)
    assert tile.shape == (180, 320, 3)
    assert tile[truth > 200].mean() > 2 * tile[truth < 50].mean()  # the person bright, the background dimmed
