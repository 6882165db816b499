"""End-to-end tests of the RVM tool on tiny synthetic datasets (CPU)."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from stubs import RedChannelMatting
from torch import nn

from easyvolcap.cli.rvm import main
from easyvolcap.image_io import read_rgb
from easyvolcap.inference import alpha_to_uint8
from easyvolcap.layout import Camera, DatasetLayout
from easyvolcap.models.rvm import MattingNetwork
from easyvolcap.runners.rvm import RvmOptions, plan_clips, run_rvm
from easyvolcap.weights import load_checkpoint


def run(dataset: Path, checkpoint: Path, *extra: str, variant: str = "mobilenetv3") -> int:
    return main(["--data_root", str(dataset), "--variant", variant, "--chkpt_path", str(checkpoint),
                 "--device", "cpu", "--workers", "2", *extra])


def read_masks(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def reference_alpha(checkpoint: Path, variant: str, frames: list[Path], ratio: float) -> list[np.ndarray]:
    """Frame-by-frame RVM on one camera alone, states fed back: the definition of the result."""
    model = MattingNetwork(variant).eval()
    model.load_state_dict(load_checkpoint(checkpoint))
    rec, out = [None] * 4, []
    with torch.inference_mode():
        for frame in frames:
            src = torch.from_numpy(read_rgb(frame)).permute(2, 0, 1)[None].float().contiguous() / 255
            _, pha, *rec = model(src, *rec, downsample_ratio=ratio)
            out.append((pha[0, 0] * 255).round().to(torch.uint8).numpy())
    return out


def fake_camera(name: str, frames: int) -> Camera:
    return Camera(name, tuple(Path(f"{name}/{t:03d}.jpg") for t in range(frames)))


@pytest.mark.parametrize("length, batch", [(5, 4), (5, 1), (7, 64), (8, 4)])
def test_clips_cover_every_frame_once_in_order(length, batch):
    clips = plan_clips(fake_camera("c", length), batch)
    assert [t for clip in clips for _, t in clip] == list(range(length))
    assert all(1 <= len(clip) <= batch for clip in clips)


def test_a_cameras_masks_do_not_depend_on_the_other_cameras(dataset, rvm_checkpoints):
    checkpoint = rvm_checkpoints["mobilenetv3"]
    assert run(dataset, checkpoint, "--mask_ext", ".png", "--batch_size", "3", "--mask_dir", "all") == 0
    assert run(dataset, checkpoint, "--mask_ext", ".png", "--batch_size", "3", "--mask_dir", "one", "--only", "01") == 0
    alone = read_masks(dataset / "one")
    together = {name: data for name, data in read_masks(dataset / "all").items() if name.startswith("01/")}
    assert alone == together and len(alone) == 5


def assert_masks_close(got: np.ndarray, want: np.ndarray, where: str) -> None:
    """8-bit masks equal up to float rounding: kernels round differently for different batch shapes
    (about 1e-7 in alpha), which flips ``round(alpha * 255)`` only where alpha sits on a boundary."""
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() <= 0.002, f"{where}: {diff.max()=}, {(diff > 0).mean()=}"


@pytest.mark.parametrize("variant, ratio", [("mobilenetv3", "auto"), ("resnet50", "0.5")])
def test_masks_equal_frame_by_frame_run_of_each_camera(dataset, rvm_checkpoints, variant, ratio, capsys):
    assert run(dataset, rvm_checkpoints[variant], "--mask_ext", ".png", "--batch_size", "4",
               "--downsample_ratio", ratio, variant=variant) == 0
    layout = DatasetLayout.discover(dataset)
    for camera in layout.cameras:
        height, width = read_rgb(camera.frames[0]).shape[:2]
        r = 1.0 if ratio == "auto" else float(ratio)
        expected = reference_alpha(rvm_checkpoints[variant], variant, list(camera.frames), r)
        for frame, want in zip(camera.frames, expected, strict=True):
            got = cv2.imread(str(dataset / "rvm" / camera.name / f"{frame.stem}.png"), cv2.IMREAD_UNCHANGED)
            assert got.shape == (height, width)
            assert_masks_close(got, want, f"{camera.name}/{frame.stem}")
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith(f"rvm: wrote 15 masks to {dataset / 'rvm'} (3 cameras processed")


def test_batch_size_does_not_change_results(dataset, rvm_checkpoints):
    results = []
    for batch in ("1", "3", "64"):
        assert run(dataset, rvm_checkpoints["mobilenetv3"], "--mask_ext", ".png", "--batch_size", batch,
                   "--mask_dir", f"rvm{batch}") == 0
        results.append(read_masks(dataset / f"rvm{batch}"))
    assert len(results[0]) == 15 and results[0].keys() == results[1].keys() == results[2].keys()
    for name in results[0]:
        decoded = [cv2.imdecode(np.frombuffer(r[name], np.uint8), cv2.IMREAD_UNCHANGED) for r in results]
        assert_masks_close(decoded[1], decoded[0], name)
        assert_masks_close(decoded[2], decoded[0], name)


def test_jpg_masks_and_foregrounds(dataset, rvm_checkpoints):
    assert run(dataset, rvm_checkpoints["mobilenetv3"], "--fgr_dir", "fgr", "--quality", "90") == 0
    mask = cv2.imread(str(dataset / "rvm" / "02" / "000004.jpg"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (40, 56)  # the odd-sized camera keeps its size, single channel
    fgr = read_rgb(dataset / "fgr" / "00" / "000000.jpg")
    assert fgr.shape == (48, 64, 3)
    assert len(list((dataset / "fgr").rglob("*.jpg"))) == 15


def test_resume_skips_complete_cameras_and_fills_in_missing_files(dataset, rvm_checkpoints, capsys):
    checkpoint = rvm_checkpoints["mobilenetv3"]
    assert run(dataset, checkpoint, "--mask_ext", ".png", "--batch_size", "6") == 0
    full = read_masks(dataset / "rvm")
    # an interrupted run: camera 01 lost its last frames, camera 02 never started, a temp file is left
    (dataset / "rvm" / "01" / "000003.png").unlink()
    (dataset / "rvm" / "01" / "000004.png").unlink()
    shutil.rmtree(dataset / "rvm" / "02")
    (dataset / "rvm" / "01" / ".000003.png.abc.tmp").write_bytes(b"half")
    kept = {p: p.stat().st_mtime_ns for p in (dataset / "rvm").rglob("*.png")}
    capsys.readouterr()
    assert run(dataset, checkpoint, "--mask_ext", ".png", "--batch_size", "6") == 0
    assert read_masks(dataset / "rvm") == full
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())  # nothing rewritten
    out = capsys.readouterr().out
    assert "wrote 7 masks" in out and "(2 cameras processed, 1 already complete; mobilenetv3, batch 6)" in out
    assert run(dataset, checkpoint, "--mask_ext", ".png", "--overwrite") == 0
    assert read_masks(dataset / "rvm") == full


def test_cameras_with_different_frame_counts_and_names(dataset, rvm_checkpoints):
    for frame in sorted((dataset / "images" / "01").iterdir())[2:]:
        frame.unlink()
    for i, frame in enumerate(sorted((dataset / "images" / "00").iterdir())):
        frame.rename(frame.with_name(f"shot_{i * 10}.jpg"))
    assert run(dataset, rvm_checkpoints["mobilenetv3"], "--batch_size", "4", "--mask_ext", ".png") == 0
    assert sorted(p.name for p in (dataset / "rvm" / "00").iterdir())[:2] == ["shot_0.png", "shot_10.png"]
    assert len(list((dataset / "rvm" / "01").iterdir())) == 2
    expected = reference_alpha(rvm_checkpoints["mobilenetv3"], "mobilenetv3",
                               sorted((dataset / "images" / "00").iterdir(), key=lambda p: int(p.stem[5:])), 1.0)
    got = cv2.imread(str(dataset / "rvm" / "00" / "shot_40.png"), cv2.IMREAD_UNCHANGED)
    assert_masks_close(got, expected[4], "00/shot_40")


class RecurrentMatting(nn.Module):
    """A stand-in RVM whose alpha depends on the recurrent state it carries, and not on how frames are
    grouped into passes: frame t's alpha is its red channel shifted by a memory of the camera's earlier
    frames (updated frame by frame, in float64). A runner that loses, resets, repeats or reorders the
    state, or retries a pass from a state the failed pass advanced, writes other masks. Runs out of
    memory on passes of more than ``oom_above`` frames; records every pass's frame count."""

    variant = "mobilenetv3"  # whose pass cost plans its batches

    def __init__(self, oom_above: int | None = None) -> None:
        super().__init__()
        self.oom_above, self.calls = oom_above, []

    def forward(self, src, r1=None, r2=None, r3=None, r4=None, downsample_ratio=1.0):
        batch, length = src.shape[:2]
        self.calls.append(batch * length)
        memory = torch.zeros(batch, dtype=torch.float64) if r1 is None else r1.flatten().double()
        mattes = []
        for t in range(length):
            red = src[:, t, 0].double()
            mattes.append((red + memory.view(-1, 1, 1)) % 1.0)
            memory = (memory * 0.5 + red.mean((1, 2)) * 0.37 + 0.1) % 1.0
        if self.oom_above is not None and length > self.oom_above:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")  # after the work
        state = memory.float().view(batch, 1, 1, 1)
        return [src, torch.stack(mattes, 1)[:, :, None].float(), state, state, state, state]


def frame_by_frame(layout: DatasetLayout) -> dict[str, bytes]:
    """The stub run on each camera alone, one frame per pass: what every grouping must give."""
    model, out = RecurrentMatting(), {}
    for camera in layout.cameras:
        state = [None] * 4
        for frame in camera.frames:
            src = torch.from_numpy(read_rgb(frame)).permute(2, 0, 1)[None, None].float() / 255
            _, pha, *state = model(src, *state)
            out[f"{camera.name}/{frame.stem}.png"] = alpha_to_uint8(pha[0, :, 0])[0].numpy().tobytes()
    return out


def decoded_masks(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): cv2.imread(str(p), cv2.IMREAD_UNCHANGED).tobytes()
            for p in sorted(root.rglob("*.png"))}


def test_empty_masks_are_counted_and_named(dataset, capsys):
    frame = dataset / "images" / "01" / "000002.jpg"
    cv2.imwrite(str(frame), np.zeros((48, 64, 3), np.uint8))
    layout = DatasetLayout.discover(dataset)
    report = run_rvm(layout, RedChannelMatting(), torch.device("cpu"), torch.float32,
                     RvmOptions(batch_size=4), progress=False)
    assert report.empty_frames == [("01", "000002")]
    assert report.masks_written == 15


def test_recurrent_state_survives_grouping_out_of_memory_and_resume(dataset, capsys):
    """Masks equal the frame-by-frame definition for any batch size, after OOM back-offs, and when a
    partly done camera is resumed (replayed from its first frame) under a back-off."""
    layout = DatasetLayout.discover(dataset)
    expected = frame_by_frame(layout)
    assert len(set(expected.values())) == len(expected)  # the state makes every frame's mask differ
    for batch_size, oom_above in [(8, None), (1, None), (3, None), (8, 2), (8, 1)]:
        shutil.rmtree(dataset / "rvm", ignore_errors=True)
        model = RecurrentMatting(oom_above)
        report = run_rvm(layout, model, torch.device("cpu"), torch.float32,
                         RvmOptions(batch_size=batch_size, mask_ext=".png"), progress=False)
        assert decoded_masks(dataset / "rvm") == expected, (batch_size, oom_above)
        assert report.masks_written == 15
        if oom_above is not None:
            first_fit = next(i for i, n in enumerate(model.calls) if n <= oom_above)
            assert model.calls[0] == 5 and all(n <= oom_above for n in model.calls[first_fit:])  # never grows back
            assert capsys.readouterr().err.count("out of device memory") == 1
    for frame in ("000002.png", "000004.png"):
        (dataset / "rvm" / "01" / frame).unlink()
    run_rvm(layout, RecurrentMatting(oom_above=2), torch.device("cpu"), torch.float32,
            RvmOptions(batch_size=8, mask_ext=".png"), progress=False)
    assert decoded_masks(dataset / "rvm") == expected


@pytest.mark.parametrize("prepare, args, message", [
    (lambda d: shutil.rmtree(d), [], "not a directory"),
    (lambda d: shutil.rmtree(d / "images"), [], "image folder not found"),
    (lambda d: (d / "images" / "01" / "000003.jpg").write_bytes(b"\xff\xd8 truncated"), [],
     "000003.jpg: not a readable image"),
    (lambda d: None, ["--only", "07"], "no camera folder '07'"),
])
def test_bad_input_is_one_line_and_nonzero(dataset, rvm_checkpoints, capsys, prepare, args, message):
    prepare(dataset)
    assert run(dataset, rvm_checkpoints["mobilenetv3"], *args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rvm: error: ") and message in err[0]


def test_bad_checkpoints(dataset, rvm_checkpoints, tmp_path, capsys):
    assert run(dataset, tmp_path / "absent.pth") == 1
    assert "no such file" in capsys.readouterr().err
    assert run(dataset, rvm_checkpoints["resnet50"]) == 1
    assert "for variant 'resnet50'; pass the matching --variant" in capsys.readouterr().err
    (tmp_path / "junk.pth").write_bytes(b"junk" * 100)
    assert run(dataset, tmp_path / "junk.pth") == 1
    assert "not a readable weights file" in capsys.readouterr().err
    assert not (dataset / "rvm").exists()


@pytest.mark.parametrize("flag", [["--batch_size", "0"], ["--downsample_ratio", "1.5"], ["--mask_ext", ".bmp"]])
def test_invalid_flags_exit_2(dataset, rvm_checkpoints, flag, capsys):
    with pytest.raises(SystemExit) as info:
        run(dataset, rvm_checkpoints["mobilenetv3"], *flag)
    assert info.value.code == 2
