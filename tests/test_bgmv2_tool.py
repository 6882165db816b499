"""End-to-end tests of the BGMv2 tool on tiny synthetic datasets with known backgrounds (CPU)."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from easyvolcap.cli.bgmv2 import main
from easyvolcap.image_io import read_rgb, write_image
from easyvolcap.models.bgmv2 import MattingRefine
from easyvolcap.models.bgmv2.checkpoints import refine_settings
from easyvolcap.runners.bgmv2 import Bgmv2Options
from easyvolcap.synthetic.capture import background
from easyvolcap.weights import load_checkpoint
from tests.conftest import BGMV2_SIZES, bgmv2_scene


@pytest.fixture
def scene(tmp_path) -> Path:
    """3 cameras x 4 lossless frames and each camera's true background in bkgd/<camera>.png."""
    return bgmv2_scene(tmp_path, frames=4)


def run(root: Path, checkpoint: Path, *extra: str) -> int:
    return main(["--data_root", str(root), "--chkpt_path", str(checkpoint), "--device", "cpu",
                 "--workers", "2", "--mask_ext", ".png", *extra])


def masks(folder: Path) -> dict[str, np.ndarray]:
    return {str(p.relative_to(folder)): cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted(folder.rglob("*.png"))}


@functools.cache
def reference_model(checkpoint: Path, mode: str, sample_pixels: int) -> MattingRefine:
    model = MattingRefine("mobilenetv2", refine_mode=mode, refine_sample_pixels=sample_pixels).eval()
    model.load_state_dict(load_checkpoint(checkpoint))
    return model


def reference(checkpoint: Path, image: np.ndarray, bgr: np.ndarray, refine_mode: str = "sampling",
              refine_sample_pixels: int = 80_000) -> np.ndarray:
    """Upstream's call on one image, replicate-padded to a multiple of 4, cropped back."""
    model = reference_model(checkpoint, refine_mode, refine_sample_pixels)
    src, bkg = (torch.from_numpy(x).permute(2, 0, 1)[None].float().contiguous() / 255 for x in (image, bgr))
    height, width = src.shape[-2:]
    pad = (0, -width % 4, 0, -height % 4)
    with torch.inference_mode():
        pha = model(F.pad(src, pad, mode="replicate"), F.pad(bkg, pad, mode="replicate"))[0]
    return (pha[0, 0, :height, :width] * 255).round().to(torch.uint8).numpy()


def assert_close(got: np.ndarray, want: np.ndarray, where: str) -> None:
    """Equal up to float rounding of different batch shapes (1 level at a few pixels)."""
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() <= 0.002, f"{where}: {diff.max()=} {(diff > 0).mean()=}"


@pytest.mark.parametrize("mode", ["sampling", "full", "thresholding"])
@pytest.mark.slow
def test_masks_equal_the_model_on_each_image(scene, bgmv2_checkpoints, mode, capsys):
    checkpoint = bgmv2_checkpoints["pytorch_mobilenetv2"]
    assert run(scene, checkpoint, "--refine_mode", mode, "--refine_sample_pixels", "640", "--batch_size", "3") == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith(f"evc-bgmv2: wrote 12 masks to {scene / 'bgmtv2'} (3 cameras processed")
    assert f"mobilenetv2, {mode}, batch 3)" in out[0]
    for c, camera in enumerate(BGMV2_SIZES):
        for frame in sorted((scene / "images" / camera).iterdir()):
            want = reference(checkpoint, read_rgb(frame), background(*BGMV2_SIZES[camera], seed=c),
                             refine_mode=mode, refine_sample_pixels=640)
            got = cv2.imread(str(scene / "bgmtv2" / camera / frame.name), cv2.IMREAD_UNCHANGED)
            assert got.shape == BGMV2_SIZES[camera]
            assert_close(got, want, f"{camera}/{frame.name}")


@pytest.mark.slow
def test_torchscript_exports_load_into_our_model(scene, bgmv2_checkpoints, capsys):
    assert run(scene, bgmv2_checkpoints["pytorch_mobilenetv2"], "--mask_dir", "plain") == 0
    assert run(scene, bgmv2_checkpoints["torchscript_mobilenetv2_fp32"], "--mask_dir", "ts32") == 0
    assert run(scene, bgmv2_checkpoints["torchscript_mobilenetv2_fp16"], "--mask_dir", "ts16") == 0
    plain, ts32, ts16 = masks(scene / "plain"), masks(scene / "ts32"), masks(scene / "ts16")
    assert plain.keys() == ts32.keys() == ts16.keys() and len(plain) == 12
    for name in plain:
        assert np.array_equal(plain[name], ts32[name])
        assert np.abs(plain[name].astype(int) - ts16[name]).max() <= 8  # weights rounded to half precision
    assert "mobilenetv2, sampling" in capsys.readouterr().out


@pytest.mark.parametrize("backbone", ["resnet50", "resnet101"])
@pytest.mark.slow
def test_backbone_is_recognised_from_the_file(scene, bgmv2_checkpoints, backbone, capsys):
    assert run(scene, bgmv2_checkpoints[f"pytorch_{backbone}"], "--only", "02") == 0
    assert f"{backbone}, sampling" in capsys.readouterr().out
    assert len(list((scene / "bgmtv2" / "02").iterdir())) == 4


def test_wrong_checkpoints_are_refused(scene, bgmv2_checkpoints, rvm_checkpoints, tmp_path, capsys):
    assert run(scene, rvm_checkpoints["mobilenetv3"]) == 1
    assert "not a checkpoint of any known variant (mobilenetv2, resnet50, resnet101)" in capsys.readouterr().err
    full = torch.load(bgmv2_checkpoints["pytorch_resnet50"])
    base_only = {k: v for k, v in full.items() if not k.startswith("refiner.")}
    torch.save(base_only, tmp_path / "base.pth")
    assert run(scene, tmp_path / "base.pth") == 1
    err = capsys.readouterr().err
    assert "closest is 'resnet50' with 20 missing keys (first 'refiner.bn1.bias')" in err
    assert not (scene / "bgmtv2").exists()


def test_default_checkpoint_missing_says_where_to_get_it(scene, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    assert main(["--data_root", str(scene), "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert "torchscript_resnet101_fp32.pth" in err and "BackgroundMattingV2#download" in err


@pytest.mark.slow
def test_background_lookup_order_and_faults(scene, bgmv2_checkpoints, capsys):
    checkpoint = bgmv2_checkpoints["pytorch_mobilenetv2"]
    bkgd = scene / "bkgd"
    (bkgd / "00.png").rename(bkgd / "00.jpg.tmp")
    (bkgd / "00").mkdir()
    write_image(bkgd / "00" / "000000.png", background(48, 64, seed=0))  # EasyVolcap's folder form
    write_image(bkgd / "01.jpg", np.zeros((48, 64, 3), np.uint8))  # .jpg wins over .png
    rgba = np.dstack([background(42, 58, seed=2), np.full((42, 58), 255, np.uint8)])
    write_image(bkgd / "02.png", rgba)  # RGBA from extract_backgrounds.py: its RGB is used
    assert run(scene, checkpoint, "--batch_size", "2") == 0
    got = masks(scene / "bgmtv2")
    want_00 = reference(checkpoint, read_rgb(scene / "images/00/000001.png"), background(48, 64, seed=0))
    assert_close(got["00/000001.png"], want_00, "00")
    want_01 = reference(checkpoint, read_rgb(scene / "images/01/000001.png"), np.zeros((48, 64, 3), np.uint8))
    assert_close(got["01/000001.png"], want_01, "01")

    shutil.rmtree(bkgd / "00")
    assert run(scene, checkpoint, "--overwrite") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("evc-bgmv2: error: camera 00: no background image; tried ")
    assert all(str(bkgd / name) in err[0] for name in ("00.jpg", "00.png", "00/000000.jpg", "00/000000.png"))

    write_image(bkgd / "00.png", background(24, 32, seed=0))
    assert run(scene, checkpoint, "--overwrite") == 1
    assert "background is 32x24, camera 00's images are 64x48; pass --resize_bkgd" in capsys.readouterr().err
    assert run(scene, checkpoint, "--overwrite", "--resize_bkgd") == 0


@pytest.mark.slow
def test_resume_is_byte_identical_and_rewrites_nothing_done(scene, bgmv2_checkpoints, capsys):
    checkpoint = bgmv2_checkpoints["pytorch_mobilenetv2"]
    assert run(scene, checkpoint, "--batch_size", "3", "--fgr_dir", "fgr") == 0
    files = {p: p.read_bytes() for p in sorted((scene / "bgmtv2").rglob("*")) + sorted((scene / "fgr").rglob("*"))
             if p.is_file()}
    (scene / "bgmtv2" / "01" / "000002.png").unlink()
    (scene / "fgr" / "02" / "000003.jpg").unlink()
    (scene / "bgmtv2" / "00" / ".000001.png.x.tmp").write_bytes(b"partial")
    kept = {p: p.stat().st_mtime_ns for p in files if p.exists()}
    capsys.readouterr()
    assert run(scene, checkpoint, "--batch_size", "3", "--fgr_dir", "fgr") == 0
    assert {p: p.read_bytes() for p in files} == files
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())
    assert not (scene / "bgmtv2" / "00" / ".000001.png.x.tmp").exists()
    out = capsys.readouterr().out
    assert "wrote 1 masks" in out and "(2 cameras processed, 1 already complete;" in out


def test_auto_backbone_scale_follows_the_resolution():
    def settings(options: Bgmv2Options, size: tuple[int, int]) -> tuple[float, int]:
        return refine_settings(size, options.backbone_scale, options.refine_sample_pixels)

    auto = Bgmv2Options(backbone_scale=None)
    assert settings(auto, (1080, 1920)) == (0.25, 80_000)
    assert settings(auto, (2160, 3840)) == (0.125, 320_000)
    assert settings(auto, (540, 960)) == (0.25, 20_000)
    assert settings(Bgmv2Options(), (2160, 3840)) == (0.25, 80_000)  # EasyVolcap's fixed defaults


@pytest.mark.parametrize("flag", [["--backbone_scale", "0.6"], ["--refine_threshold", "2"], ["--chunk_size", "0"],
                                  ["--refine_mode", "best"]])
def test_invalid_flags_exit_2(scene, bgmv2_checkpoints, flag):
    with pytest.raises(SystemExit) as info:
        run(scene, bgmv2_checkpoints["pytorch_mobilenetv2"], *flag)
    assert info.value.code == 2
