"""The mask check never harms a good mask and never blesses garbage: a person walking out of one camera's view,
a flipped rig, a zero rotation, garbage masks, 16-bit 0/1 masks; and no repair lowers a mask's IoU with the
truth."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from easyvolcap.cli import check
from easyvolcap.image_io import read_gray
from easyvolcap.synthetic.scene import make_scene, turned, write_scene

SIZE = (90, 120)


def main(argv: list[str]) -> int:
    """The check on the scenes' ``masks/`` folder (the tool's default input is RVM's ``rvm/``)."""
    return check.main(["--masks_dir", "masks", *argv])


def _rows(root: Path) -> list[dict]:
    with open(root / "check" / "masks.csv") as handle:
        return list(csv.DictReader(handle))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 127, b > 127
    return float((a & b).sum() / max(1, (a | b).sum())) if (a | b).any() else 1.0


def assert_no_repair_lowers_iou(root: Path, repair_dir: str = "fixed") -> int:
    """Every repaired mask is at least as close to the truth (``gt_masks``) as the mask it replaced; returns how
    many masks the repair changed."""
    changed = 0
    for fixed in sorted((root / repair_dir).rglob("*.*")):
        camera, name = fixed.parent.name, fixed.name
        original = root / "masks" / camera / name
        if fixed.read_bytes() == original.read_bytes():
            continue
        changed += 1
        truth = read_gray(root / "gt_masks" / camera / f"{fixed.stem}.png")
        before, after = _iou(read_gray(original), truth), _iou(read_gray(fixed), truth)
        assert after >= before - 1e-9, (camera, name, before, after)
    return changed


def _run(root: Path, *extra: str) -> int:
    return main(["--data_root", str(root), "--device", "cpu", "--no_preview", "--repair_dir", "fixed", *extra])


@pytest.mark.slow
def test_a_person_walking_out_of_one_view_is_not_flagged_there(tmp_path, capsys):
    """Camera 03 turned 36 degrees: the walking person leaves its view (frames 7-11 empty, 2-6 partly in view).
    Its exact masks are not flagged, nothing is repaired, and no repair lowers an IoU."""
    scene = turned(make_scene(8, 12, SIZE, seed=5), [3], 36)
    root = write_scene(tmp_path / "d", scene, "masks", ".png")
    assert _run(root) == 0
    assert "no mask flagged of 96" in capsys.readouterr().out
    assert assert_no_repair_lowers_iou(root) == 0


def test_a_flipped_rig_is_refused_for_the_vote_and_nothing_is_repaired(tmp_path, capsys):
    scene = turned(make_scene(8, 3, SIZE, seed=5), list(range(8)), 180)
    root = write_scene(tmp_path / "d", turned(make_scene(8, 3, SIZE, seed=5), [], 0), "masks", ".png")
    from easyvolcap.calibration import write_calibration

    write_calibration(root, scene.calibration)  # exact masks, every camera's rotation flipped in extri.yml
    assert _run(root) == 0
    captured = capsys.readouterr()
    assert "do not look at a common subject" in captured.err and "temporal only" in captured.out
    assert not any(row["flag"] for row in _rows(root)) and assert_no_repair_lowers_iou(root) == 0


def test_a_zero_rotation_leaves_that_camera_out_of_the_vote(tmp_path, capsys):
    good = make_scene(8, 3, SIZE, seed=5)
    root = write_scene(tmp_path / "d", good, "masks", ".png", {(1, 1): "empty"})
    from easyvolcap.calibration import write_calibration

    write_calibration(root, turned(good, [3], 0, axis="zero").calibration)
    assert _run(root) == 0
    captured = capsys.readouterr()
    assert "cameras 03 disagree with the others' consensus" in captured.err
    rows = {(r["camera"], r["frame"]): r for r in _rows(root)}
    assert rows[("03", "000001")]["missing"] == "" and not rows[("03", "000001")]["flag"]  # checked in time only
    assert rows[("01", "000001")]["flag"] == "empty" and rows[("01", "000001")]["why"].startswith("repair: add")
    assert (root / "fixed" / "03" / "000001.png").read_bytes() == (root / "masks" / "03" / "000001.png").read_bytes()
    assert assert_no_repair_lowers_iou(root) == 1


@pytest.mark.parametrize("kind, reason", [("zero", "all zero in every frame"), ("full", "all foreground"),
                                          ("noise", "noise")])
def test_garbage_masks_on_every_camera_are_flagged(tmp_path, capsys, kind, reason):
    scene = make_scene(6, 3, SIZE, seed=5)
    root = write_scene(tmp_path / "d", scene, "masks", ".png")
    rng = np.random.default_rng(0)
    for path in (root / "masks").rglob("*.png"):
        mask = {"zero": np.zeros(SIZE, np.uint8), "full": np.full(SIZE, 255, np.uint8),
                "noise": (rng.random(SIZE) < 0.4).astype(np.uint8) * 255}[kind]
        cv2.imwrite(str(path), mask)
    assert _run(root) == 0
    rows = _rows(root)
    assert all(row["flag"] == "garbage" and reason in row["why"] for row in rows), rows[0]
    assert "flagged 18 of 18 (18 garbage" in capsys.readouterr().out
    assert assert_no_repair_lowers_iou(root) == 0  # garbage is copied, never "repaired" from garbage


def test_one_noisy_camera_is_garbage_and_the_others_are_clean(tmp_path):
    scene = make_scene(8, 2, SIZE, seed=5)
    root = write_scene(tmp_path / "d", scene, "masks", ".png")
    rng = np.random.default_rng(1)
    for path in (root / "masks" / "02").iterdir():
        cv2.imwrite(str(path), (rng.random(SIZE) < 0.3).astype(np.uint8) * 255)
    assert _run(root) == 0
    flagged = {(r["camera"], r["frame"]): r["flag"] for r in _rows(root) if r["flag"]}
    assert flagged == {("02", "000000"): "garbage", ("02", "000001"): "garbage"}


def test_16_bit_masks_holding_0_and_1_are_read_as_foreground_where_1(tmp_path):
    scene = make_scene(6, 2, SIZE, seed=5)
    root = write_scene(tmp_path / "d", scene, "masks", ".png")
    for path in (root / "masks").rglob("*.png"):
        cv2.imwrite(str(path), (cv2.imread(str(path), 0) > 127).astype(np.uint16))
    assert cv2.imread(str(next((root / "masks").rglob("*.png"))), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    assert _run(root) == 0
    rows = _rows(root)
    assert all(float(row["area"]) > 0.01 and not row["flag"] for row in rows), rows[:2]
