import io
import os

import cv2
import numpy as np
import pytest
from PIL import Image

from easyvolcap.errors import EvcError
from easyvolcap.image_io import atomic_write, encode_image, read_rgb, write_image

RGB = np.dstack([np.full((6, 8), 10, np.uint8), np.full((6, 8), 120, np.uint8), np.full((6, 8), 250, np.uint8)])


def test_png_round_trip_is_exact_and_rgb(tmp_path):
    write_image(tmp_path / "a.png", RGB)
    assert np.array_equal(read_rgb(tmp_path / "a.png"), RGB)
    # channel order on disk is standard: PIL sees the same RGB
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a.png")), RGB)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16", "CMYK"])
def test_any_pixel_format_reads_as_rgb_uint8(tmp_path, mode):
    rgb = Image.fromarray(RGB)
    if mode == "I;16":
        image = Image.fromarray(np.arange(48, dtype=np.uint16).reshape(6, 8) * 1000)
        path = tmp_path / "a.png"
    elif mode == "CMYK":
        image, path = rgb.convert("CMYK"), tmp_path / "a.jpg"
    else:
        image, path = rgb.convert(mode), tmp_path / "a.png"
    image.save(path)
    out = read_rgb(path)
    assert out.dtype == np.uint8 and out.shape == (6, 8, 3)
    if mode in ("RGBA", "P"):
        assert np.array_equal(out, np.asarray(image.convert("RGB")))
    if mode == "I;16":  # 16-bit scaled down to 8-bit, replicated to 3 channels
        assert out[0, 1, 0] == 1000 >> 8 and np.array_equal(out[..., 0], out[..., 2])
    if mode == "CMYK":
        assert np.abs(out.astype(int) - RGB).max() < 20


def test_exif_orientation_is_not_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 on display
    Image.fromarray(RGB).save(tmp_path / "r.jpg", exif=exif)
    assert read_rgb(tmp_path / "r.jpg").shape == (6, 8, 3)


@pytest.mark.parametrize("content, message", [(b"", "empty file"), (b"not an image", "not a readable image")])
def test_unreadable_files_raise_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(EvcError, match=message) as info:
        read_rgb(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(EvcError, match="cannot read"):
        read_rgb(tmp_path / "none.jpg")


def test_mask_jpg_is_single_channel_with_quality(tmp_path):
    alpha = np.tile(np.linspace(0, 255, 64).round().astype(np.uint8), (32, 1))
    write_image(tmp_path / "m.jpg", alpha, quality=85)
    back = cv2.imread(str(tmp_path / "m.jpg"), cv2.IMREAD_UNCHANGED)
    assert back.ndim == 2 and np.abs(back.astype(int) - alpha).max() <= 3
    assert len(encode_image(alpha, ".jpg", 30)) < len(encode_image(alpha, ".jpg", 100))
    write_image(tmp_path / "m.png", alpha)
    assert np.array_equal(cv2.imread(str(tmp_path / "m.png"), cv2.IMREAD_UNCHANGED), alpha)


def test_unknown_extension_is_refused():
    with pytest.raises(ValueError, match="unsupported image extension"):
        encode_image(RGB, ".bmp")


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "out" / "m.png"
    atomic_write(target, b"old")

    def fail(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(EvcError, match="No space left on device"):
        atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["m.png"]  # no temp file left


def test_atomic_write_mode_follows_umask(tmp_path):
    atomic_write(tmp_path / "a.bin", b"1")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "a.bin").stat().st_mode & 0o777 == 0o666 & ~mask


def test_unwritable_folder(tmp_path):
    (tmp_path / "ro").write_bytes(b"a file where a folder should be")
    with pytest.raises(EvcError, match="cannot write"):
        atomic_write(tmp_path / "ro" / "m.png", b"x")


@pytest.mark.parametrize("shape", [(1, 1), (7, 1), (1, 9), (33, 17), (33, 17, 3), (33, 17, 4), (1100, 1000, 3),
                                   (600, 1000, 4)])
def test_png_is_opencvs_lossless_encoding(shape):
    """PNGs are OpenCV's default encoding (bench/png.py: the smallest and fastest measured): any size,
    gray/RGB/RGBA, read back exactly by OpenCV and Pillow."""
    rng = np.random.default_rng(len(shape) * 1000 + shape[0])
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    image[: shape[0] // 2] //= 16  # some compressible rows too
    data = encode_image(image, ".PNG")
    bgr = image if image.ndim == 2 else image[..., [2, 1, 0, 3][:shape[2]]]
    assert data == cv2.imencode(".png", bgr)[1].tobytes()
    assert np.array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED), bgr)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), image)


def test_png_encoder_refuses_what_png_cannot_hold():
    with pytest.raises(ValueError, match="uint8"):
        encode_image(np.zeros((4, 4), np.uint16), ".png")
    with pytest.raises(ValueError, match="unsupported"):
        encode_image(np.zeros((4, 4), np.uint8), ".tif")
