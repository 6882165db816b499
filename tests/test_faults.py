"""The bad-input matrix: every expected fault is one line on stderr, a non-zero exit, nothing half-written."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from easyvolcap.cli import backgrounds, bgmv2, rvm, schp
from easyvolcap.image_io import write_image
from easyvolcap.synthetic.capture import background, make_demo_dataset

TOOLS = ("rvm", "bgmv2", "schp", "bkgd")


@pytest.fixture
def data(tiny_capture) -> Path:
    return tiny_capture


@pytest.fixture
def tool(request, rvm_checkpoints, bgmv2_checkpoints, schp_checkpoints):
    """(name, run(root, *extra) -> exit code) for each tool, configured to run on the CPU offline."""
    name = request.param
    mains = {"rvm": (rvm.main, ["--variant", "mobilenetv3", "--chkpt_path", str(rvm_checkpoints["mobilenetv3"]),
                                "--device", "cpu"]),
             "bgmv2": (bgmv2.main, ["--chkpt_path", str(bgmv2_checkpoints["pytorch_mobilenetv2"]), "--device", "cpu"]),
             "schp": (schp.main, ["--chkpt_path", str(schp_checkpoints["lip"]), "--dataset", "lip", "--detector",
                                  "none", "--device", "cpu"]),
             "bkgd": (backgrounds.main, ["--masks_dir", "mask_png", "--mask_ext", ".png", "--jump", "1",
                                         "--bkgd_dir", "bkgd_out"])}
    main, flags = mains[name]
    return name, lambda root, *extra: main(["--data_root", str(root), "--workers", "2", *flags, *extra])


def one_error_line(capsys, tool_name: str) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{tool_name}: error: ") and "Traceback" not in lines[0]
    return lines[0]


def no_partial_files(root: Path) -> None:
    """No zero-byte or temporary file among the outputs (everything but the inputs)."""
    for path in root.rglob("*"):
        if path.is_file() and "images" not in path.relative_to(root).parts:
            assert path.stat().st_size > 0, path
            assert not path.name.endswith(".tmp"), path


@pytest.mark.parametrize("tool", TOOLS, indirect=True)
@pytest.mark.parametrize("setup, expected", [
    (lambda root: shutil.rmtree(root), "not a directory"),
    (lambda root: (shutil.rmtree(root), root.write_text("a file")), "not a directory"),
    (lambda root: shutil.rmtree(root / "images"), "image folder not found"),
    (lambda root: [shutil.rmtree(p) for p in (root / "images").iterdir()], "no camera folder with"),
], ids=["missing", "file", "no-image-dir", "no-cameras"])
def test_bad_dataset_roots(data, tool, setup, expected, capsys):
    name, run = tool
    setup(data)
    assert run(data) == 1
    assert expected in one_error_line(capsys, name)


@pytest.mark.parametrize("tool", TOOLS, indirect=True)
@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\xff\xd8\xff\xe0 truncated jpeg"],
                         ids=["zero-bytes", "text", "truncated"])
def test_unreadable_image_names_the_file_and_keeps_old_outputs(data, tool, content, capsys):
    name, run = tool
    previous = {"rvm": "rvm", "bgmv2": "bgmtv2", "schp": "schp", "bkgd": "bkgd_out"}[name]
    old = data / previous / "00" / "old.png"
    write_image(old, background(8, 8, seed=9))
    before = old.read_bytes()
    bad = data / "images" / "00" / "000000.jpg"
    bad.write_bytes(content)
    assert run(data) == 1
    assert f"{bad}: " in one_error_line(capsys, name)
    assert old.read_bytes() == before
    no_partial_files(data)


@pytest.mark.parametrize("tool", ["rvm", "bkgd"], indirect=True)
def test_output_folder_that_cannot_be_created(data, tool, capsys):
    name, run = tool
    output = data / ("rvm" if name == "rvm" else "bkgd_out")
    output.write_text("a file where the output folder should be")
    assert run(data) == 1
    assert "cannot write" in one_error_line(capsys, name)


@pytest.mark.parametrize("tool", ["rvm", "bgmv2", "bkgd"], indirect=True)
def test_disk_full_is_reported_and_leaves_nothing_partial(data, tool, capsys, monkeypatch):
    name, run = tool

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("easyvolcap.image_io.os.replace", full)
    assert run(data, "--no_preview") == 1
    assert "No space left on device" in one_error_line(capsys, name)
    no_partial_files(data)


@pytest.mark.parametrize("tool", ["rvm", "bkgd"], indirect=True)
def test_paths_with_spaces_and_non_ascii(tmp_path, tool, capsys):
    name, run = tool
    root = make_demo_dataset(tmp_path / "my data ü", cameras=2, frames=2, size=(32, 48), odd_size=None)
    (root / "images" / "00").rename(root / "images" / "cam é 1")
    shutil.copytree(root / "gt_masks", root / "mask_png")
    (root / "mask_png" / "00").rename(root / "mask_png" / "cam é 1")
    assert run(root) == 0
    out = capsys.readouterr().out
    assert str(root) in out
    if name == "rvm":
        assert sorted(p.name for p in (root / "rvm" / "cam é 1").iterdir()) == ["000000.jpg", "000001.jpg"]
    else:
        assert (root / "bkgd_out" / "cam é 1.png").stat().st_size > 0


@pytest.mark.parametrize("tool", ["rvm", "bgmv2", "schp"], indirect=True)
@pytest.mark.parametrize("flag", [["--batch_size", "0"], ["--batch_size", "-3"], ["--quality", "101"],
                                  ["--shard", "2/2"]])
def test_invalid_flag_values(data, tool, flag, capsys):
    _, run = tool
    with pytest.raises(SystemExit) as info:
        run(data, *flag)
    assert info.value.code == 2
    assert "error: argument " in capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("tool", ["rvm", "bkgd"], indirect=True)
def test_every_pixel_format_is_processed(tmp_path, tool, capsys):
    """Grayscale and CMYK JPEG, RGBA, 16-bit and palette PNG, an EXIF-rotated JPEG: one camera, all processed."""
    from PIL import Image

    name, run = tool
    root = make_demo_dataset(tmp_path / "d", cameras=1, frames=6, size=(32, 48), odd_size=None, ext=".png")
    shutil.copytree(root / "gt_masks", root / "mask_png")
    frames = sorted((root / "images" / "00").iterdir())
    images = [Image.open(f).convert("RGB") for f in frames]
    for f in frames:
        f.unlink()
    exif = Image.Exif()
    exif[0x0112] = 6
    images[0].convert("L").save(frames[0].with_suffix(".jpg"))
    images[1].convert("CMYK").save(frames[1].with_suffix(".jpg"))
    images[2].convert("RGBA").save(frames[2])
    Image.fromarray(np.asarray(images[3].convert("L")).astype(np.uint16) * 257).save(frames[3])
    images[4].convert("P").save(frames[4])
    images[5].save(frames[5].with_suffix(".jpg"), exif=exif)
    assert run(root) == 0
    if name == "rvm":
        assert sorted(p.stem for p in (root / "rvm" / "00").iterdir()) == [f.stem for f in frames]
    else:
        assert "(mean of 6 frames)" in capsys.readouterr().out
