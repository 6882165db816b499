"""visualize_masked_images.py: the review video, decoded back by ffmpeg (imageio-ffmpeg)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from mask_data import make_mask_dataset

from easyvolcap.cli import visualize
from easyvolcap.image_io import write_image
from easyvolcap.runners.visualize import grid_shape


@pytest.fixture
def data(tmp_path) -> Path:
    return make_mask_dataset(tmp_path / "d")  # cameras 00, 01 at 48x64 and 02 at 40x56, 4 frames


def decode(path: Path) -> list[np.ndarray]:
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    assert meta["codec"] == "h264", meta
    width, height = meta["size"]
    return [np.frombuffer(frame, np.uint8).reshape(height, width, 3) for frame in reader]


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_video_frames_size_grid_and_black_tile_of_a_missing_frame(data, capsys):
    (data / "images" / "01" / "000002.jpg").unlink()
    assert visualize.main(["--data_root", str(data), "--no_visualize", "--fps", "10"]) == 0
    path = data / "masked.mp4"
    frames = decode(path)
    assert grid_shape(3, 48, 64) == (2, 2)
    assert len(frames) == 4 and frames[0].shape == (96, 128, 3)  # 2 x 2 tiles of the first camera's 48x64
    tile = {"00": (slice(0, 48), slice(0, 64)), "01": (slice(0, 48), slice(64, 128)),
            "02": (slice(48, 96), slice(0, 64))}
    for t, frame in enumerate(frames):
        for camera, where in tile.items():
            brightest = frame[where][16:].max()  # below the camera name
            if camera == "01" and t == 2:
                assert brightest < 40, "a camera without the frame shows a black tile"
            else:
                assert brightest > 100, (camera, t)
        assert frame[48:, 64:].max() < 40  # the unused grid cell
        assert (frame[0:14, 0:20].min(axis=-1) > 180).sum() > 10  # camera names are on by default
    out = capsys.readouterr().out
    assert out.startswith(f"evc-visualize: wrote 4 frames to {path} (3 cameras in 2 x 2 tiles of 64x48, 128x96")
    assert "1 black tiles" in out and not list(data.glob(".*.tmp"))


def test_masked_pixels_and_labels(data):
    assert visualize.main(["--data_root", str(data), "--no_label", "--output", "plain.mp4"]) == 0
    assert visualize.main(["--data_root", str(data), "--label", "--output", "labelled.mp4"]) == 0
    plain, labelled = decode(data / "plain.mp4")[0], decode(data / "labelled.mp4")[0]
    background = plain[30:48, 40:64]  # camera 00, frame 0: the figure is left of here, RVM's prop top-left
    assert background.max() < 40  # masked out
    corner = np.s_[0:14, 0:20]  # where the camera name is written
    white = labelled[corner].min(axis=-1) > 180  # white text on a dark band
    assert white.sum() > 10 and np.abs(labelled[corner].astype(int) - plain[corner]).mean() > 30
    for rows in (slice(20, 48), slice(68, 96)):  # below each row's names the pictures are the same
        assert np.abs(labelled[rows].astype(int) - plain[rows]).mean() < 3


def test_odd_tiles_are_padded_to_even_sizes_and_max_length(data):
    assert visualize.main(["--data_root", str(data), "--only", "00", "--ratio", "0.7", "--max_length", "2"]) == 0
    frames = decode(data / "masked.mp4")
    assert len(frames) == 2 and frames[0].shape == (34, 46, 3)  # one 34x45 tile, padded to an even width


def test_other_sized_cameras_are_scaled_to_the_first_tile(data):
    assert visualize.main(["--data_root", str(data), "--only", "02", "00", "--ratio", "0.5"]) == 0
    frame = decode(data / "masked.mp4")[0]  # 00 first (natural order): tiles 24x32, 02 (40x56) scaled to it
    assert grid_shape(2, 24, 32) == (1, 2) and frame.shape == (24, 64, 3)
    assert frame[:, 32:].max() > 100


def test_output_is_replaced_only_when_complete(data, capsys):
    path = data / "masked.mp4"
    path.write_bytes(b"the previous video")
    write_image(data / "rvm" / "02" / "000003.jpg", np.zeros((8, 8), np.uint8))  # the last frame fails
    assert visualize.main(["--data_root", str(data), "--workers", "1"]) == 1
    line = one_line(capsys)
    assert line == (f"evc-visualize: error: {data / 'images' / '02' / '000003.jpg'} is 56x40 but "
                    f"{data / 'rvm' / '02' / '000003.jpg'} is 8x8; the masks of a frame must have one size")
    assert path.read_bytes() == b"the previous video" and not list(data.glob(".*.tmp"))
    (data / ".masked.mp4.999.tmp").write_bytes(b"a killed run's")
    (data / "rvm" / "02" / "000003.jpg").unlink()  # now a missing mask: a black tile, named in the summary
    assert visualize.main(["--data_root", str(data)]) == 0
    assert len(decode(path)) == 4 and not list(data.glob(".*.tmp"))
    assert "1 frames without a mask in rvm: 02/000003" in capsys.readouterr().out


def test_refusals_are_one_line(data, tmp_path, capsys, monkeypatch):
    assert visualize.main(["--data_root", str(data), "--no_store"]) == 1
    assert one_line(capsys).startswith("evc-visualize: error: --no_store:")
    assert visualize.main(["--data_root", str(data), "--output", "masked.avi"]) == 1
    assert ".mp4" in one_line(capsys)
    assert visualize.main(["--data_root", str(data), "--mask_dir", "nope"]) == 1
    assert one_line(capsys) == f"evc-visualize: error: {data / 'nope'}: mask folder not found (set --masks_dir)"
    assert visualize.main(["--data_root", str(data), "--image_dir", "nope"]) == 1
    assert "image folder not found" in one_line(capsys)
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # not installed
    assert visualize.main(["--data_root", str(data)]) == 1
    assert one_line(capsys) == ('evc-visualize: error: writing the video needs the video extra: '
                                'pip install "easyvolcap-segmentation[video]" (or pip install imageio-ffmpeg)')
    assert not (data / "masked.mp4").exists()


def test_one_file_is_never_sharded_by_slurm(data, monkeypatch):
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "3")
    assert visualize.main(["--data_root", str(data), "--max_length", "1"]) == 0
    frame = decode(data / "masked.mp4")[0]
    assert frame.shape == (96, 128, 3) and frame[:48, :64].max() > 100 and frame[48:, :64].max() > 100


def _fake_ffmpeg(tmp_path: Path, script: str) -> str:
    path = tmp_path / "ffmpeg"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize("script", [
    # a full disk: reads every frame, writes a stub, says so in many lines, fails
    'for last; do :; done\ncat > /dev/null\nprintf x > "$last"\n'
    'i=0; while [ $i -lt 20 ]; do echo "[mp4 @ 0x1] frame $i queued" >&2; i=$((i+1)); done\n'
    'echo "av_interleaved_write_frame(): No space left on device" >&2\necho "Conversion failed!" >&2\nexit 1\n',
    # a read-only folder: fails at once, before reading a frame (the pipe breaks)
    'for last; do :; done\necho "$last: Read-only file system" >&2\nexit 1\n',
])
def test_a_failing_ffmpeg_keeps_the_old_video_and_is_one_line(data, tmp_path, capsys, monkeypatch, script):
    path = data / "masked.mp4"
    path.write_bytes(b"the previous video")
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", _fake_ffmpeg(tmp_path, script))
    assert visualize.main(["--data_root", str(data)]) == 1
    line = one_line(capsys)
    assert line.startswith(f"evc-visualize: error: {path}: ffmpeg could not write the video"), line
    assert ("No space left on device" in line) or ("Read-only file system" in line), line
    assert path.read_bytes() == b"the previous video" and not list(data.glob(".*.tmp"))


@pytest.mark.parametrize("output, folder", [("rvm/masked.mp4", "--masks_dir"), ("images/00.mp4", "--image_dir"),
                                            ("../d/rvm/x.mp4", "--masks_dir")])
def test_the_video_never_lands_in_an_input_folder(data, capsys, output, folder):
    assert visualize.main(["--data_root", str(data), "--output", output]) == 1
    line = one_line(capsys)
    assert line.startswith(f"evc-visualize: error: --output {output}: lies inside the input {folder}"), line
    assert not list(data.rglob("*.mp4"))
