"""One video per camera as input: frames decoded as a stream, outputs the same image folders."""

from __future__ import annotations

import builtins
from pathlib import Path

import numpy as np
import pytest

from easyvolcap.cli import backgrounds, rvm
from easyvolcap.errors import EvcError
from easyvolcap.image_io import write_image
from easyvolcap.layout import DatasetLayout
from easyvolcap.synthetic.capture import background, figure_mask
from easyvolcap.video import VideoFrames, count_frames

imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
FRAMES = 6


def write_video(path: Path, frames: list[np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    writer = imageio_ffmpeg.write_frames(str(path), (width, height), fps=10, codec="libx264", macro_block_size=1,
                                         pix_fmt_out="yuv444p", output_params=["-crf", "0"])
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()


@pytest.fixture
def videos(tmp_path) -> Path:
    """``videos/cam0.mp4`` and ``videos/cam1.mp4`` (6 frames, 48x64) plus their masks in ``mask/``."""
    for c in range(2):
        frames = []
        for f in range(FRAMES):
            image = background(48, 64, seed=c)
            mask = figure_mask(48, 64, f / FRAMES)
            image[mask > 0] = (200, 60, 50)
            frames.append(image)
            write_image(tmp_path / "mask" / f"cam{c}" / f"{f:06d}.png", mask)
        write_video(tmp_path / "videos" / f"cam{c}.mp4", frames)
    return tmp_path


def extract_frames(root: Path) -> None:
    """The videos' decoded frames as an image dataset, for comparison."""
    for video in sorted((root / "videos").iterdir()):
        frames = VideoFrames(video)
        for t in range(count_frames(video)):
            write_image(root / "images" / video.stem / f"{t:06d}.png", frames.frame(t))
        frames.close()


def outputs(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_layout_lists_videos_as_cameras(videos):
    layout = DatasetLayout.discover(videos, "videos")
    assert [c.name for c in layout.cameras] == ["cam0", "cam1"]
    assert [f.stem for f in layout.cameras[0].frames] == [f"{i:06d}" for i in range(FRAMES)]
    assert layout.cameras[1].video == videos / "videos" / "cam1.mp4"
    (videos / "videos" / "cam0").mkdir()
    with pytest.raises(EvcError, match=r"camera 'cam0' is both a folder and cam0\.mp4"):
        DatasetLayout.discover(videos, "videos")


def test_rvm_on_videos_equals_rvm_on_their_frames(videos, rvm_checkpoints, capsys):
    extract_frames(videos)
    common = ["--data_root", str(videos), "--variant", "mobilenetv3", "--device", "cpu", "--batch_size", "4",
              "--chkpt_path", str(rvm_checkpoints["mobilenetv3"]), "--no_preview"]
    assert rvm.main([*common, "--image_dir", "videos", "--mask_dir", "from_video"]) == 0
    assert rvm.main([*common, "--image_dir", "images", "--mask_dir", "from_images"]) == 0
    from_video, from_images = outputs(videos / "from_video"), outputs(videos / "from_images")
    assert len(from_video) == 2 * FRAMES and from_video == from_images
    assert "wrote 12 masks" in capsys.readouterr().out


def test_backgrounds_from_videos(videos, capsys):
    assert backgrounds.main(["--data_root", str(videos), "--image_dir", "videos", "--mask_ext", ".png",
                             "--jump", "2", "--dilation", "3"]) == 0
    assert "(mean of 6 frames)" in capsys.readouterr().out
    assert (videos / "bkgd" / "cam0.png").stat().st_size > 0 and (videos / "preview" / "bkgd.jpg").exists()
    from easyvolcap.runners.backgrounds import BackgroundOptions, _CameraJob

    layout = DatasetLayout.discover(videos, "videos")
    job = _CameraJob(layout, layout.cameras[0], BackgroundOptions(), 2**30, threads=4)
    assert job.readers == 1  # a video decodes forward: parallel readers would restart it over and over


def test_frames_stream_in_order_and_restart_for_earlier_ones(videos):
    frames = VideoFrames(videos / "videos" / "cam0.mp4")
    first = [frames.frame(t).copy() for t in range(FRAMES)]
    assert len(frames._kept) <= 8
    assert np.array_equal(frames.frame(4), first[4])  # kept: no decoding
    assert np.array_equal(frames.frame(0), first[0])  # restarted from the beginning
    with pytest.raises(EvcError, match="ends before frame 99"):
        frames.frame(99)
    frames.close()


def test_broken_video_and_missing_package(videos, monkeypatch):
    (videos / "videos" / "cam1.mp4").write_bytes(b"not a video")
    with pytest.raises(EvcError, match=r"cam1\.mp4: not a readable video"):
        DatasetLayout.discover(videos, "videos")
    real_import = builtins.__import__

    def no_ffmpeg(name, *args, **kwargs):
        if name == "imageio_ffmpeg":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ffmpeg)
    with pytest.raises(EvcError, match="pip install imageio-ffmpeg"):
        count_frames(videos / "videos" / "cam0.mp4")
