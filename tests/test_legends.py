"""Pictures explain themselves: the check picture has a title line and a key of its letters and colours, the
SCHP preview a key of its labels' colours; the calibrated demo reports progress."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

from easyvolcap.check_picture import LETTERS, OVERLAY_KEY, _colour, picture_key, write_check_picture
from easyvolcap.preview import GAP, LABEL_WIDTH, TILE, TITLE_HEIGHT, contact_sheet
from easyvolcap.progress import INTERVAL_ENV
from easyvolcap.synthetic.capture import make_demo_dataset


def ink(region: np.ndarray) -> int:
    return int((region.max(axis=-1) > 150).sum())


def colours_in(image: np.ndarray) -> set[tuple[int, int, int]]:
    return {tuple(int(v) for v in pixel) for pixel in image.reshape(-1, 3)}


def test_the_check_key_names_every_letter_and_colour():
    key = picture_key(760, tiles=True)
    for flag, letter in LETTERS.items():
        assert f"{letter} {flag}" in key.texts, flag
    for _, meaning in OVERLAY_KEY:
        assert meaning in key.texts
    picture = key.render()
    found = colours_in(picture)
    for colour, _ in OVERLAY_KEY:
        assert colour in found, colour
    assert _colour(0.0) in found and _colour(1.0) in found and _colour(0.2) in found  # the ramp, the letter cells
    assert not {meaning for _, meaning in OVERLAY_KEY} & set(picture_key(760, tiles=False).texts)  # no tiles, no key


def test_the_check_picture_has_a_title_then_the_key(tmp_path):
    cameras, frames = ["00", "01", "02"], ["000000", "000001"]
    rows = [{"camera": c, "frame": f, "flag": "", "score": 1.0} for c in cameras for f in frames]
    rows[1].update(flag="extra", score=0.1)
    rows[4].update(flag="missing", score=0.3)
    mask = np.zeros((30, 40), bool)
    mask[5:25, 10:20] = True

    def overlays(frame: str) -> dict:
        return {c: (mask, mask, np.zeros_like(mask)) for c in cameras}

    path = write_check_picture(tmp_path, "rvm", rows, frames, cameras, overlays)
    image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    title = image[:TITLE_HEIGHT]
    assert (title.max(axis=-1) < 60).mean() > 0.8 and ink(title) > 200  # white text on a dark band
    key = picture_key(image.shape[1], tiles=True).render()
    below = image[TITLE_HEIGHT:TITLE_HEIGHT + key.shape[0]].astype(int)
    assert np.abs(below - key).mean() < 3  # the key, right under the title (JPEG noise aside)


def test_contact_sheet_key_shows_each_colour_with_its_meaning():
    black = np.zeros((*TILE, 3), np.uint8)
    key = [((128, 0, 0), "Hat"), ((0, 128, 0), "Hair"), ((0, 0, 128), "Face")]
    plain = contact_sheet([("cam", [("000001", black)])], "schp: x")
    keyed = contact_sheet([("cam", [("000001", black)])], "schp: x", key)
    band = keyed[TITLE_HEIGHT:keyed.shape[0] - plain.shape[0] + TITLE_HEIGHT]
    assert band.shape[0] > 0 and (band.max(axis=-1) < 60).sum() > 40  # dark text on white
    assert {colour for colour, _ in key} <= colours_in(band)
    assert np.array_equal(keyed[-(TILE[0] + GAP):, LABEL_WIDTH:], plain[-(TILE[0] + GAP):, LABEL_WIDTH:])


@pytest.mark.slow
def test_schp_preview_has_a_key_of_the_labels_it_shows(tmp_path, schp_checkpoints, capsys):
    from easyvolcap.cli import schp
    from easyvolcap.image_io import read_gray
    from easyvolcap.models.schp import get_palette

    root = make_demo_dataset(tmp_path / "d", cameras=1, frames=2, size=(48, 64), odd_size=None)
    assert schp.main(["--data_root", str(root), "--chkpt_path", str(schp_checkpoints["lip"]), "--dataset", "lip",
                      "--detector", "none", "--device", "cpu"]) == 0
    shown = set()
    for path in (root / "schp" / "00").iterdir():
        shown |= {int(v) for v in np.unique(read_gray(path, indices=True))} - {0}
    assert shown
    image = cv2.cvtColor(cv2.imread(str(root / "preview" / "schp.jpg")), cv2.COLOR_BGR2RGB).astype(int)
    band = image[TITLE_HEIGHT:image.shape[0] - (TILE[0] + GAP)]
    assert band.shape[0] >= 20  # a key between the title and the row
    palette = get_palette(20).astype(int)
    for label in shown:  # each label's colour is in the key (a JPEG: within a few levels)
        distance = np.abs(band - palette[label]).sum(axis=-1)
        assert (distance < 30).sum() >= 50, label


@pytest.mark.slow
def test_calibrated_demo_reports_progress(tmp_path):
    env = {**os.environ, INTERVAL_ENV: "0"}
    done = subprocess.run([sys.executable, "-m", "easyvolcap.demo", "--data_root", str(tmp_path / "ring"),
                           "--calibrated", "--cameras", "5", "--frames", "2", "--height", "48", "--width", "64"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    counts = [int(m[1]) for m in re.finditer(r"^evc-demo: (\d+)/10 frames", done.stderr, re.M)]
    assert counts and counts[-1] == 10, done.stderr
    assert done.stdout.startswith("evc-demo: wrote 5 calibrated cameras x 2 frames")


@pytest.mark.parametrize("argv", [["{root}"], ["--data_root", "{root}"], ["{root}", "--data_root", "{root}"]])
def test_demo_takes_its_folder_either_way(tmp_path, argv):
    from easyvolcap.demo import main

    root = tmp_path / "demo"
    assert main([a.format(root=root) for a in argv] + ["--frames", "2", "--height", "24", "--width", "32"]) == 0
    assert sorted(p.name for p in (root / "images").iterdir()) == ["00", "01", "02"]
