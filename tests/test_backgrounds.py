"""Background extraction against brute-force references on synthetic scenes with a known background."""

from __future__ import annotations

import argparse
import shutil
import tracemalloc
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from easyvolcap.cli.backgrounds import main, memory_size
from easyvolcap.errors import EvcError
from easyvolcap.image_io import read_rgb
from easyvolcap.layout import DatasetLayout
from easyvolcap.runners.backgrounds import (
    BackgroundOptions,
    _median_memory,
    masked_median,
    read_background_mask,
    rounded_mean,
    run_backgrounds,
)
from easyvolcap.synthetic.capture import background, make_demo_dataset

SIZE = (48, 64)


@pytest.fixture
def scene(tmp_path) -> Path:
    """3 cameras x 12 lossless frames of a figure walking over a known background, exact masks in mask/."""
    root = make_demo_dataset(tmp_path / "data", cameras=3, frames=12, size=SIZE, odd_size=(40, 56), ext=".png")
    shutil.copytree(root / "gt_masks", root / "mask")
    return root


def run(root: Path, *extra: str) -> int:
    return main(["--data_root", str(root), "--mask_ext", ".png", "--workers", "2", *extra])


def dilate_reference(foreground: np.ndarray, size: int) -> np.ndarray:
    """Square dilation by shifting, with OpenCV's anchor at (size // 2, size // 2)."""
    if size == 0:
        return foreground
    before, after = size // 2, size - 1 - size // 2
    padded = np.pad(foreground, ((before, after), (before, after)))
    height, width = foreground.shape
    out = np.zeros_like(foreground)
    for dy in range(size):
        for dx in range(size):
            out |= padded[dy:dy + height, dx:dx + width]
    return out


def load_camera(root: Path, camera: str, jump: int, dilation: int) -> tuple[np.ndarray, np.ndarray]:
    frames = sorted((root / "images" / camera).iterdir())[::jump]
    images = np.stack([read_rgb(f) for f in frames]).astype(np.float64)
    masks = np.stack([cv2.imread(str(root / "mask" / camera / f.name), cv2.IMREAD_GRAYSCALE) for f in frames])
    background_ = ~np.stack([dilate_reference(m > 128, dilation) for m in masks])
    return images, background_


@pytest.mark.parametrize("jump, dilation", [(1, 0), (1, 5), (3, 20)])
def test_mean_equals_brute_force_reference(scene, jump, dilation):
    assert run(scene, "--jump", str(jump), "--dilation", str(dilation)) == 0
    for camera in ("00", "01", "02"):
        images, seen = load_camera(scene, camera, jump, dilation)
        count = seen.sum(0)
        want = np.rint((images * seen[..., None]).sum(0) / np.maximum(count, 1)[..., None])
        got = cv2.imread(str(scene / "bkgd" / f"{camera}.png"), cv2.IMREAD_UNCHANGED)
        assert got.shape[2] == 4
        assert np.array_equal(got[..., 2::-1], want.astype(np.uint8))  # BGRA on disk
        assert np.array_equal(got[..., 3], np.where(count > 0, 255, 0))


def test_float64_sums_for_long_runs_give_the_same_background(scene, monkeypatch):
    """Past the frame count where float32 sums stop being exact the mean is summed in float64: same bytes."""
    import easyvolcap.runners.backgrounds as runner

    assert run(scene, "--jump", "1", "--dilation", "3") == 0
    float32 = {c: (scene / "bkgd" / f"{c}.png").read_bytes() for c in ("00", "01", "02")}
    monkeypatch.setattr(runner, "_FLOAT32_MEAN_FRAMES", 0)
    assert run(scene, "--jump", "1", "--dilation", "3", "--overwrite") == 0
    assert {c: (scene / "bkgd" / f"{c}.png").read_bytes() for c in ("00", "01", "02")} == float32


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rounded_mean_rounds_as_float64_rint_near_every_half(dtype):
    """Sums at and around k + 1/2 of every count: float32 sums (the tool's below 65536 frames) and float64
    ones (beyond, e.g. 65537 frames of 128 and 129 averaging 128.5000076) round as float64's rint."""
    counts = np.array([1, 2, 3, 7, 10, 255, 256, 4097, 65535] + ([65537, 2**20 + 1] if dtype == np.float64 else []))
    rng = np.random.default_rng(0)
    k = rng.integers(0, 255, (len(counts), 64))
    sums = (2 * k + 1) * counts[:, None] // 2 + rng.integers(-2, 3, (len(counts), 64))  # at and near k + 1/2
    sums = np.clip(sums, 0, 255 * counts[:, None])
    total = np.repeat(sums[..., None], 3, axis=-1).astype(dtype)
    count = np.repeat(counts[:, None], 64, axis=1).astype(np.uint32)
    want = np.rint(sums / counts[:, None]).astype(np.uint8)
    got = rounded_mean(total.copy(), count)
    assert np.array_equal(got, np.repeat(want[..., None], 3, axis=-1))
    assert rounded_mean(np.zeros((2, 2, 3), dtype), np.zeros((2, 2), np.uint32)).max() == 0  # never seen: 0


def test_median_equals_numpy_nanmedian_and_bands_change_nothing(scene, capsys):
    assert run(scene, "--jump", "1", "--dilation", "3", "--method", "median") == 0
    assert run(scene, "--jump", "1", "--dilation", "3", "--method", "median", "--max_memory", "1200K",
               "--bkgd_dir", "banded") == 0
    assert "passes over its 12 frames" in capsys.readouterr().err  # banded indeed
    for camera in ("00", "01", "02"):
        images, seen = load_camera(scene, camera, 1, 3)
        stack = np.where(seen[..., None], images, np.nan)
        want = np.nanmedian(stack, axis=0)
        want = np.where(np.isnan(want), 0, np.round(want)).astype(np.uint8)
        got = cv2.imread(str(scene / "bkgd" / f"{camera}.png"), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(got[..., 2::-1], want)
        banded = cv2.imread(str(scene / "banded" / f"{camera}.png"), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(banded, got)


def test_masked_median_handles_even_odd_and_empty_counts():
    samples = np.array([[[[1]], [[9]], [[5]], [[7]]]], np.uint8).reshape(4, 1, 1, 1).repeat(3, axis=1)
    valid = np.array([[True, True, False], [True, True, False], [True, False, False], [True, False, False]])
    valid = valid[..., None]  # (4, 3, 1): pixel 0 sees 4 frames, pixel 1 sees 2, pixel 2 none
    median, count = masked_median(samples, valid)
    assert count[:, 0].tolist() == [4, 2, 0]
    assert median[0, 0, 0] == 6.0 and median[1, 0, 0] == 5.0 and np.isnan(median[2, 0, 0])


def test_background_is_close_to_the_truth(scene):
    assert run(scene, "--jump", "1", "--dilation", "2") == 0
    for c, camera in enumerate(("00", "01", "02")):
        truth = background(*(SIZE if c < 2 else (40, 56)), seed=c).astype(np.float64)
        got = cv2.imread(str(scene / "bkgd" / f"{camera}.png"), cv2.IMREAD_UNCHANGED)
        seen = got[..., 3] == 255
        error = (got[..., 2::-1].astype(np.float64) - truth)[seen]
        psnr = 10 * np.log10(255**2 / np.mean(error**2)) if np.any(error) else np.inf
        assert psnr > 45, f"{camera}: PSNR {psnr:.1f} dB"  # lossless frames, exact masks: only rounding differs


def test_holes_are_reported_and_filled(scene, capsys):
    for mask in (scene / "mask" / "01").iterdir():  # a static occluder in camera 01: never background
        image = cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE)
        image[:10, :16] = 255
        cv2.imwrite(str(mask), image)
    assert run(scene, "--jump", "1", "--dilation", "0") == 0
    out = capsys.readouterr().out
    expected = 100 * 160 / (48 * 64)
    assert f"01 {expected:.1f}%" in out and "00 0.0%" in out
    alpha = cv2.imread(str(scene / "bkgd" / "01.png"), cv2.IMREAD_UNCHANGED)[..., 3]
    assert (alpha[:10, :16] == 0).all() and (alpha == 0).sum() == 160
    assert run(scene, "--jump", "1", "--dilation", "0", "--fill_holes", "--bkgd_dir", "filled") == 0
    filled = cv2.imread(str(scene / "filled" / "01.png"), cv2.IMREAD_UNCHANGED)
    assert (filled[..., 3] == 255).all()
    truth = background(*SIZE, seed=1)[:10, :16].astype(int)
    assert np.abs(filled[:10, :16, 2::-1].astype(int) - truth).mean() < 25  # plausible, smooth fill


def test_jpg_output_jump_and_resume(scene, capsys):
    assert run(scene, "--ext", ".jpg") == 0
    assert read_rgb(scene / "bkgd" / "00.jpg").shape == (*SIZE, 3)
    assert "(mean of 6 frames)" in capsys.readouterr().out  # frames 0 and 10 of each camera
    before = (scene / "bkgd" / "00.jpg").stat().st_mtime_ns
    assert run(scene, "--ext", ".jpg") == 0
    assert "wrote 0 backgrounds" in capsys.readouterr().out
    assert (scene / "bkgd" / "00.jpg").stat().st_mtime_ns == before
    assert run(scene, "--ext", ".jpg", "--overwrite") == 0
    assert "wrote 3 backgrounds" in capsys.readouterr().out


def test_easyvolcap_mask_reading(tmp_path):
    mask = np.array([[0, 50, 60, 100]], np.uint8)  # scaled by its maximum: 0, 127.5, 153, 255
    cv2.imwrite(str(tmp_path / "m.png"), mask)
    assert read_background_mask(tmp_path / "m.png", 0, (1, 4)).tolist() == [[True, True, False, False]]
    cv2.imwrite(str(tmp_path / "z.png"), np.zeros((1, 4), np.uint8))
    assert read_background_mask(tmp_path / "z.png", 3, (1, 4)).all()  # empty mask: all background
    with pytest.raises(EvcError, match="mask is 4x1, its image is 5x1"):
        read_background_mask(tmp_path / "m.png", 0, (1, 5))


def test_missing_mask_names_the_file_and_hints_the_extension(scene, capsys):
    assert main(["--data_root", str(scene), "--jump", "1"]) == 1  # masks are .png, default looks for .jpg
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "000000.jpg: mask not found (found 000000.png: set --mask_ext)" in err[0]
    (scene / "mask" / "02" / "000005.png").unlink()
    assert run(scene, "--jump", "1") == 1
    assert "02/000005.png: mask not found" in capsys.readouterr().err


def test_empty_camera_is_skipped_with_a_warning(scene, capsys):
    (scene / "images" / "99").mkdir()
    assert run(scene) == 0
    captured = capsys.readouterr()
    assert "camera 99 has no images; skipped" in captured.err and "wrote 3 backgrounds" in captured.out


def test_memory_size_parsing():
    assert memory_size("2G") == 2 << 30 and memory_size("512MiB") == 512 << 20 and memory_size("1000") == 1000
    with pytest.raises(argparse.ArgumentTypeError, match="not a memory size"):
        memory_size("lots")


def one_camera(root: Path, frames: int, size: tuple[int, int] = (96, 128)) -> Path:
    root = make_demo_dataset(root, cameras=1, frames=frames, size=size, odd_size=None, ext=".png")
    shutil.copytree(root / "gt_masks", root / "mask")
    return root


@pytest.mark.parametrize("frames", [8, 48])
def test_median_stays_within_its_memory_budget_across_band_counts(tmp_path, frames):
    """Peak traced memory (numpy's arrays included) of a whole median run stays within --max_memory,
    from one band down to one row per band: full-size results, frames in flight and the output count."""
    root = one_camera(tmp_path / "d", frames, (32, 128))
    layout = DatasetLayout.discover(root)
    options = BackgroundOptions(mask_ext=".png", jump=1, method="median", workers=1, overwrite=True)
    run_backgrounds(layout, options, False)  # imports and one-time allocations are not the median's
    whole = (root / "bkgd" / "00.png").read_bytes()
    bands = []
    for rows in (1, 3, 8, 32):
        budget = _median_memory(frames, 32, 128, 1, rows)
        tracemalloc.start()
        try:
            report = run_backgrounds(layout, replace(options, max_memory=budget), False)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak <= budget, (rows, peak, budget)
        bands.append(report.bands["00"])
        assert (root / "bkgd" / "00.png").read_bytes() == whole
    assert bands == [32, 11, 4, 1]


def test_median_too_large_for_the_budget_is_refused_before_any_work(tmp_path, capsys):
    root = one_camera(tmp_path / "d", 60)
    args = ["--jump", "1", "--method", "median", "--workers", "1", "--no_preview"]
    smallest = _median_memory(60, 96, 128, 1, 1)
    assert run(root, *args, "--max_memory", "1000K") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"bkgd: error: --max_memory 1000K is too small for the median of camera 00 (128x96, 60 frames at "
                   f"--jump 1): use --max_memory {-(-smallest // 1024)}K or more, or --jump 3"]
    assert not (root / "bkgd").exists()
    assert run(root, *args, "--max_memory", f"{-(-smallest // 1024)}K") == 0  # the budget it names works
    assert run(root, *args, "--max_memory", "1000K", "--jump", "3", "--bkgd_dir", "jump3") == 0  # and the --jump
    err = capsys.readouterr().err
    assert err.count("bkgd: warning: the median of camera 00 takes 96 passes over its 60 frames") == 1
    assert "one pass" in err


def test_many_passes_are_announced_once_before_starting(tmp_path, capsys):
    root = one_camera(tmp_path / "d", 10)
    layout = DatasetLayout.discover(root)
    options = BackgroundOptions(mask_ext=".png", jump=1, method="median", workers=1)
    run_backgrounds(layout, replace(options, max_memory=_median_memory(10, 96, 128, 1, 12)), False)
    assert capsys.readouterr().err == ""  # 8 passes: said nothing
    run_backgrounds(layout, replace(options, max_memory=_median_memory(10, 96, 128, 1, 11), overwrite=True), False)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "takes 9 passes over its 10 frames (each decoded 9 times" in err[0]
