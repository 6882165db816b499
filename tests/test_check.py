"""The multi-view mask check: calibration files, detection and repair on calibrated synthetic scenes, and
end-to-end runs of ``check_masks.py``."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from easyvolcap.calibration import field_radius2, project, read_calibration, viewing_box, write_calibration
from easyvolcap.cli import check
from easyvolcap.errors import EvcError
from easyvolcap.multiview import FrameGeometry, _vote, check_frame, repair_mask
from easyvolcap.synthetic.scene import CORRUPTIONS, check_scene, corrupt, make_scene, write_scene

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "segmentation" / "check_masks.py"


def main(argv: list[str]) -> int:
    """The check on the scenes' ``masks/`` folder (the tool's default input is RVM's ``rvm/``)."""
    return check.main(["--masks_dir", "masks", *argv])
SIZE = (150, 200)


@pytest.mark.parametrize("size", [8, 12, 14])
def test_rational_and_thin_prism_distortion_project_as_opencv(tmp_path, size):
    """Distortion entries beyond the fifth (k4..k6, s1..s4; a zero tilt) are read and projected as OpenCV does."""
    scene = make_scene(5, 1, (60, 80), seed=3)
    write_calibration(tmp_path, scene.calibration)
    extra = [0.01, -0.002, 0.003, 0.001, -0.001, 0.0005, 0.0002, 0.0, 0.0][:size - 5]
    _replace_key(tmp_path / "intri.yml", "D_02", "[" + ", ".join(str(v) for v in [*scene.calibration.D[2], *extra])
                 + "]")
    cal = read_calibration(tmp_path)
    assert cal.D.shape == (5, 12) and np.allclose(cal.D[2, 5:5 + len(extra[:7])], extra[:7])
    points = np.random.default_rng(0).uniform(-1, 1, (40, 3)) + np.array([0.0, 0.0, 1.0])
    u, v, _ok = project(torch.tensor(points), *(torch.tensor(a) for a in (cal.K, cal.R, cal.T, cal.D)))
    ref = cv2.projectPoints(points, cv2.Rodrigues(cal.R[2])[0], cal.T[2], cal.K[2],
                            np.array([*scene.calibration.D[2], *extra]))[0][:, 0]
    np.testing.assert_allclose(np.stack([u[2], v[2]], -1), ref, atol=1e-9)


def test_calibration_round_trip_and_projection(tmp_path):
    scene = make_scene(4, 1, (60, 80), seed=3)
    write_calibration(tmp_path, scene.calibration)
    cal = read_calibration(tmp_path)
    assert cal.names == scene.calibration.names
    np.testing.assert_allclose(cal.R, scene.calibration.R, atol=1e-12)
    np.testing.assert_allclose(cal.D, scene.calibration.D)
    points = np.random.default_rng(0).uniform(-1, 1, (40, 3)) + np.array([0.0, 0.0, 1.0])
    u, v, _ok = project(torch.tensor(points), *(torch.tensor(a) for a in (cal.K, cal.R, cal.T, cal.D)))
    for i in range(4):
        ref = cv2.projectPoints(points, cv2.Rodrigues(cal.R[i])[0], cal.T[i], cal.K[i], cal.D[i])[0][:, 0]
        np.testing.assert_allclose(np.stack([u[i], v[i]], -1), ref, atol=1e-9)
    assert read_calibration(tmp_path / "nowhere") is None


def _scene_check(cameras: int, bad: int, seed: int):
    """Corrupt ``bad`` cameras of every frame (and add harmless noise to others); return (kind, flags) pairs and
    repair IoU gains."""
    records = check_scene(cameras, bad, seed, SIZE)
    gains = [(r["kind"], *r["iou"], r["outside"]) for r in records if "iou" in r]
    return [(r["kind"], r["flags"]) for r in records], gains


# (cameras, corrupted per frame, seed): a quarter corrupted at once at most; seeds that once broke the check
# (a clean camera flagged when the consensus was fat, two displaced cameras at once, a displaced zoomed-in camera)
SCENES = [(8, 1, 0), (8, 2, 1), (12, 3, 2), (16, 4, 3), (8, 1, 6), (8, 2, 0), (8, 2, 14), (6, 1, 9), (5, 1, 21),
          (16, 4, 0), (12, 3, 21), (16, 4, 5)]


@pytest.fixture(scope="module")
def scene_outcomes():
    return {scene: _scene_check(*scene) for scene in SCENES}


@pytest.mark.slow
def test_corrupted_masks_are_flagged_and_clean_ones_are_not(scene_outcomes):
    """>= 95% of the corrupted masks flagged, every kind at least 90%, <= 1% of the clean (and harmlessly noisy:
    eroded, dilated, soft JPEG) ones, with up to a quarter of the cameras of a frame corrupted at once."""
    outcomes = [outcome for scene in SCENES for outcome in scene_outcomes[scene][0]]
    corrupted = [(kind, flags) for kind, flags in outcomes if kind != "clean"]
    clean = [(scene, flags) for scene in SCENES for kind, flags in scene_outcomes[scene][0] if kind == "clean"]
    assert sum(bool(f) for _, f in corrupted) >= 0.95 * len(corrupted), [o for o in corrupted if not o[1]]
    for kind in CORRUPTIONS:
        found = [bool(f) for k, f in corrupted if k == kind]
        assert sum(found) >= 0.9 * len(found), (kind, found)
    assert sum(bool(f) for _, f in clean) <= 0.01 * len(clean), [o for o in clean if o[1]]
    assert len(corrupted) >= 50 and len(clean) >= 150


@pytest.mark.slow
def test_flags_name_the_fault(scene_outcomes):
    """The flag names the fault: an emptied mask ``empty``, a displaced one ``misaligned``, a cut-off lower body
    ``missing`` (not ``extra``), an added blob or bystander ``extra`` (and not ``missing`` or ``misaligned``)."""
    expected = {"empty": "empty", "shifted": "misaligned", "missing": "missing", "extra": "extra",
                "bystander": "extra"}
    wrong = [(scene, kind, flags) for scene in SCENES for kind, flags in scene_outcomes[scene][0]
             if kind in expected and flags and flags[0] != expected[kind]]
    assert len(wrong) <= 1, wrong
    assert not any(kind in ("extra", "bystander") and ("missing" in flags or "misaligned" in flags)
                   for scene in SCENES for kind, flags in scene_outcomes[scene][0]), "extra read as a shift or a gap"


@pytest.mark.slow
def test_repairs_raise_the_iou_and_remove_extra_parts(scene_outcomes):
    gains = [gain for scene in SCENES for gain in scene_outcomes[scene][1]]
    assert len(gains) >= 50
    for kind, before, after, outside in gains:  # no repair lowers the IoU, a wrongly flagged clean mask's neither
        assert after > before or (kind == "clean" and after >= before), (kind, before, after)
        if kind in ("extra", "bystander"):
            assert outside == 0, kind


def _dataset(tmp_path: Path, faults=None, ext=".jpg", cameras=8, frames=4) -> Path:
    scene = make_scene(cameras, frames, (90, 120), seed=5)
    return write_scene(tmp_path / "d", scene, "masks", ext, faults or {})


def _rows(root: Path, masks_dir: str = "masks") -> list[dict]:
    with open(root / "check" / f"{masks_dir}.csv") as handle:
        return list(csv.DictReader(handle))


def test_end_to_end_outputs_resume_and_repair(tmp_path, capsys):
    root = _dataset(tmp_path, {(1, 1): "empty", (4, 2): "shifted"})
    assert main(["--data_root", str(root), "--repair_dir", "fixed", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "checked 32 masks" in out and "report" in out and "preview" in out
    rows = _rows(root)
    assert len(rows) == 32 and {"camera", "frame", "flag", "score", "extra", "missing"} <= set(rows[0])
    flagged = {(r["camera"], r["frame"]): r["flag"] for r in rows if r["flag"]}
    assert flagged[("01", "000001")] == "empty" and flagged[("04", "000002")] == "misaligned"
    assert len(flagged) == 2
    assert (root / "preview" / "check_masks.jpg").is_file()
    for camera in range(8):
        assert sorted(p.name for p in (root / "fixed" / f"{camera:02d}").iterdir()) == \
            [f"{f:06d}.jpg" for f in range(4)]
    assert (root / "fixed" / "02" / "000000.jpg").read_bytes() == (root / "masks" / "02" / "000000.jpg").read_bytes()
    repaired = cv2.imread(str(root / "fixed" / "01" / "000001.jpg"), 0) > 127
    assert repaired.sum() > 0
    before = (root / "check" / "masks.csv").read_bytes()
    assert main(["--data_root", str(root), "--repair_dir", "fixed", "--device", "cpu"]) == 0
    assert "checked 0 masks" in capsys.readouterr().out and (root / "check" / "masks.csv").read_bytes() == before


def test_shards_add_up_to_one_run(tmp_path, capsys):
    root = _dataset(tmp_path, {(2, 3): "extra"}, ext=".png")
    assert main(["--data_root", str(root), "--no_preview"]) == 0
    whole = (root / "check" / "masks.csv").read_bytes()
    for path in (root / "check").rglob("*"):
        if path.is_file():
            path.unlink()
    assert main(["--data_root", str(root), "--no_preview", "--shard", "0/2"]) == 0
    assert "waits for the rest" in capsys.readouterr().out and not (root / "check" / "masks.csv").exists()
    assert main(["--data_root", str(root), "--no_preview", "--shard", "1/2"]) == 0
    assert (root / "check" / "masks.csv").read_bytes() == whole


def test_without_calibration_temporal_only(tmp_path, capsys):
    root = _dataset(tmp_path, {(2, 2): "empty"}, cameras=3, frames=5)
    (root / "intri.yml").unlink()
    (root / "extri.yml").unlink()
    assert main(["--data_root", str(root), "--no_preview"]) == 0
    captured = capsys.readouterr()
    assert "temporal only" in captured.out and "needs intri.yml and extri.yml" in captured.err
    flagged = {(r["camera"], r["frame"]): r["flag"] for r in _rows(root) if r["flag"]}
    assert flagged == {("02", "000002"): "empty"}


def test_cameras_in_calibration_but_not_in_masks(tmp_path, capsys):
    root = _dataset(tmp_path)
    for path in (root / "masks" / "07").iterdir():
        path.unlink()
    (root / "masks" / "07").rmdir()
    assert main(["--data_root", str(root), "--no_preview"]) == 0
    assert "07 are calibrated but have no masks" in capsys.readouterr().err
    assert len(_rows(root)) == 28 and not any(r["flag"] for r in _rows(root))


def _rewrite(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new))


def _replace_key(path: Path, key: str, value: str | None) -> None:
    """Replace the entry ``key`` (a matrix, list or number) by ``key: value`` (``None``: remove it)."""
    import re

    text = path.read_text()
    pattern = rf"^{key}: (!!opencv-matrix\n(   .*\n)+|.*\n)"
    new = re.sub(pattern, "" if value is None else f"{key}: {value}\n", text, count=1, flags=re.M)
    assert new != text, key
    path.write_text(new)


@pytest.mark.parametrize("fault, message", [
    ("no_extri", "extri.yml: missing"),
    ("unreadable", "intri.yml: not a readable"),
    ("no_K", "intri.yml: camera key K_03 missing"),
    ("no_R", "extri.yml: camera key R_03 (or Rot_03) missing"),
    ("no_T", "extri.yml: camera key T_03 missing"),
    ("wrong_size", "mask is 120x90, but"),
    ("singular_K", "intri.yml: K_03 is not a camera matrix (focal lengths must be > 0"),
    ("K_text", "intri.yml: K_03 must be numbers (an OpenCV matrix or a list), got text"),
    ("D_empty", "intri.yml: D_03 must hold 4, 5, 8, 12 or 14 numbers (OpenCV's distortion models), got 0"),
    ("D_six", "intri.yml: D_03 must hold 4, 5, 8, 12 or 14 numbers (OpenCV's distortion models), got 6"),
    ("D_tilt", "intri.yml: D_03: the tilted-sensor terms (entries 13, 14) are not supported"),
    ("H_text", "intri.yml: H_03 must be numbers (an OpenCV matrix or a list), got text"),
    ("Rot_zero", "extri.yml: Rot_03 is not orthonormal"),
    ("Rot_mirror", "extri.yml: Rot_03 is a reflection (det -1), not a rotation"),
    ("R_Rot_disagree", "extri.yml: R_03 and Rot_03 disagree"),
])
@pytest.mark.slow
def test_calibration_faults_are_one_line_errors(tmp_path, fault, message):
    root = _dataset(tmp_path, cameras=5, frames=1)
    intri, extri = root / "intri.yml", root / "extri.yml"
    if fault == "no_extri":
        extri.unlink()
    elif fault == "unreadable":
        intri.write_text("%YAML:1.0\nnames: [00\n  K_00: {{{\n")
    elif fault == "no_K":
        _rewrite(intri, "K_03:", "Q_03:")
    elif fault == "no_R":
        _rewrite(extri, "R_03:", "Q_03:")
        _rewrite(extri, "Rot_03:", "Qot_03:")
    elif fault == "no_T":
        _rewrite(extri, "T_03:", "Q_03:")
    elif fault == "wrong_size":
        _rewrite(intri, "H_02: 90", "H_02: 80")
    elif fault in ("singular_K", "K_text", "D_empty", "D_six", "D_tilt", "H_text"):
        key = {"singular_K": "K_03", "K_text": "K_03", "H_text": "H_03"}.get(fault, "D_03")
        value = {"singular_K": "[0, 0, 60, 0, 0, 45, 0, 0, 1]", "K_text": '"abc"', "H_text": '"abc"',
                 "D_empty": "[]", "D_six": "[0.1, 0, 0, 0, 0, 0]",
                 "D_tilt": "[0.1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.01, 0]"}[fault]
        _replace_key(intri, key, value)
    elif fault in ("Rot_zero", "Rot_mirror"):
        _replace_key(extri, "R_03", None)
        _replace_key(extri, "Rot_03", "[0, 0, 0, 0, 0, 0, 0, 0, 0]" if fault == "Rot_zero"
                     else "[-1, 0, 0, 0, 1, 0, 0, 0, 1]")
    elif fault == "R_Rot_disagree":
        _replace_key(extri, "R_03", "[0.3, 0.2, 0.1]")
    out = subprocess.run([sys.executable, str(SCRIPT), "--data_root", str(root), "--masks_dir", "masks",
                          "--no_preview"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    lines = [line for line in out.stderr.splitlines() if "error" in line]
    assert len(lines) == 1 and message in lines[0], out.stderr


def test_missing_height_width_means_the_masks_size(tmp_path):
    root = _dataset(tmp_path, cameras=5, frames=1)
    text = "\n".join(line for line in (root / "intri.yml").read_text().splitlines()
                     if not line.startswith(("H_", "W_")))
    (root / "intri.yml").write_text(text + "\n")
    assert read_calibration(root).H.tolist() == [0] * 5
    assert main(["--data_root", str(root), "--no_preview"]) == 0
    rows = _rows(root)
    assert len(rows) == 5 and all(row["voted"] == "True" and not row["flag"] for row in rows)


def test_frames_with_too_few_views_are_checked_in_time_only(tmp_path, capsys):
    """A vote of four views cannot outweigh one wrong mask: such a frame gets the temporal check only, and the
    summary says how many frames that was."""
    root = _dataset(tmp_path, cameras=8, frames=4)
    for camera in ("00", "01", "02", "03"):
        (root / "masks" / camera / "000001.jpg").unlink()
    assert main(["--data_root", str(root), "--no_preview"]) == 0
    assert "(1 with fewer than 5 calibrated views: temporal check only)" in capsys.readouterr().out
    rows = _rows(root)
    assert len(rows) == 28
    assert all((row["missing"] == "") == (row["frame"] == "000001") for row in rows)


def test_repair_mask_kinds():
    consensus = np.zeros((40, 40), bool)
    consensus[10:30, 15:25] = True
    mask = np.zeros((40, 40), np.uint8)
    mask[10:30, 15:25] = 255
    blob = mask.copy()
    blob[2:6, 2:6] = 255
    assert not repair_mask(blob, consensus, ["extra"], (0, 0), 1)[:8, :8].any()
    assert (repair_mask(np.zeros_like(mask), consensus, ["empty"], (0, 0), 1) > 0).sum() == consensus.sum()
    shifted = np.roll(mask, 4, axis=1)
    assert np.array_equal(repair_mask(shifted, consensus, ["misaligned"], (0, -4), 1), mask)
    with pytest.raises(EvcError):
        raise EvcError("x")


def _geometry(scene):
    cal = scene.calibration
    return FrameGeometry.build(cal.K, cal.R, cal.T, cal.D, np.stack([cal.H, cal.W], 1), field_radius2(cal),
                               viewing_box(cal), "cpu")


def test_a_mask_cannot_vouch_for_itself():
    """The vote for camera j leaves j out: a point all four cameras see, foreground in three of them, is occupied
    by the vote of all (3/4 >= 0.7) but not for one of the three (2/3 of the others < 0.7), and is for the
    fourth (3/3)."""
    seen = torch.ones(4, 1, dtype=torch.bool)
    fg = torch.tensor([[True], [True], [True], [False]])
    assert bool(_vote(fg, seen, torch.ones(4), 0.7, loo=False)[0])
    assert _vote(fg, seen, torch.ones(4), 0.7)[:, 0].tolist() == [False, False, False, True]


@pytest.mark.slow
def test_limb_sized_extra_blob_is_flagged_in_every_camera():
    """A limb-sized blob (~12% of the silhouette) in four cameras in turn is flagged ``extra`` (and not also
    ``missing`` or ``misaligned``)."""
    scene = make_scene(8, 1, SIZE, seed=6)
    geometry = _geometry(scene)
    truths = [scene.silhouette(c, 0) for c in range(8)]
    rng = np.random.default_rng(1)
    for c in (0, 3, 6, 7):  # 7 sees the person partly outside its view
        masks = list(truths)
        masks[c] = corrupt(truths[c], "extra", rng)
        result = check_frame(torch.tensor(np.stack(masks) > 127), geometry)
        assert result.flags[c] == ["extra"], (c, result.flags[c], result.extra[c])


def test_picture_overlay_shows_what_a_repair_removes_and_adds():
    """Red: the mask's parts no other camera supports (a blob, whole); blue: what the others need and the mask
    lacks; white: the supported mask; slate: the rest of the consensus."""
    from easyvolcap.check_picture import overlay

    consensus = np.zeros((40, 40), bool)
    consensus[5:35, 10:30] = True
    mask = np.zeros((40, 40), bool)
    mask[5:25, 12:28] = True
    mask[30:38, 0:6] = True  # a blob beside the person, partly inside the consensus band: counted whole
    mask[30:36, 4:9] = True
    fill = np.zeros((40, 40), bool)
    fill[25:35, 12:28] = True
    image = overlay(mask, consensus, fill)
    assert tuple(image[10, 20]) == (235, 235, 235) and tuple(image[31, 8]) == (230, 40, 40)  # inside the band
    assert tuple(image[33, 2]) == (230, 40, 40) and tuple(image[30, 20]) == (50, 110, 255)
    assert tuple(image[6, 11]) == (70, 80, 100) and tuple(image[2, 2]) == (30, 30, 30)


def test_cpu_dilation_equals_the_max_filter_the_gpu_runs():
    """OpenCV's dilation (the CPU path) grows a mask exactly as the separable max filter (the CUDA path) does,
    image borders included."""
    import torch.nn.functional as F

    from easyvolcap.multiview import _dilate

    masks = torch.from_numpy(np.random.default_rng(0).random((3, 37, 53)) > 0.97)
    masks[0, 0, 0] = masks[1, -1, -1] = True
    for r in (1, 2, 7, 30):
        reference = F.max_pool2d(masks[:, None].float(), (1, 2 * r + 1), 1, (0, r))
        reference = F.max_pool2d(reference, (2 * r + 1, 1), 1, (r, 0))[:, 0] > 0.5
        assert torch.equal(_dilate(masks, r), reference), r
    assert torch.equal(_dilate(masks, 0), masks)
