"""Frame decoding on the host or on the model's device (``--decode``): the logic runs on the CPU here,
where ``torchvision.io.decode_jpeg`` uses libjpeg-turbo; the CUDA test skips without a GPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from easyvolcap.cli import rvm
from easyvolcap.errors import EvcError
from easyvolcap.image_io import write_image
from easyvolcap.layout import DatasetLayout
from easyvolcap.runners.frame_source import FrameSource, device_decode_works, is_jpeg_camera
from easyvolcap.synthetic.capture import make_demo_dataset

CPU = torch.device("cpu")


def sources(layout: DatasetLayout, device: torch.device = CPU) -> tuple[FrameSource, FrameSource]:
    sizes = {camera.name: camera.size() for camera in layout.cameras}
    return FrameSource(device, sizes, "host"), FrameSource(device, sizes, "device")


def batches(source: FrameSource, layout: DatasetLayout, camera_index: int = 0) -> torch.Tensor:
    camera = layout.cameras[camera_index]
    items = [(camera, t) for t in range(len(camera))]
    return source.batch(items, [source.load(item) for item in items], torch.float32)


def test_device_decoding_gives_the_host_batch(tmp_path):
    layout = DatasetLayout.discover(make_demo_dataset(tmp_path / "d", cameras=2, frames=3, size=(40, 56),
                                                      odd_size=(36, 52)))
    host, device = sources(layout)
    camera = layout.cameras[0]
    assert is_jpeg_camera(camera) and device.on_device(camera) and not host.on_device(camera)
    assert isinstance(device.load((camera, 0)), torch.Tensor)  # the reader threads only read the bytes
    for index in range(2):
        want, got = batches(host, layout, index), batches(device, layout, index)
        assert got.shape == want.shape and got.dtype == torch.float32
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    channels_last = device.batch([(camera, 0)], [device.load((camera, 0))], torch.float32, torch.channels_last)
    assert channels_last.is_contiguous(memory_format=torch.channels_last)


def test_png_cameras_are_decoded_on_the_host(tmp_path):
    layout = DatasetLayout.discover(make_demo_dataset(tmp_path / "d", cameras=1, frames=2, size=(24, 32),
                                                      odd_size=None, ext=".png"))
    host, device = sources(layout)
    assert not device.on_device(layout.cameras[0])
    assert isinstance(device.load((layout.cameras[0], 0)), np.ndarray)
    torch.testing.assert_close(batches(device, layout), batches(host, layout), rtol=0, atol=0)


def test_a_corrupt_or_odd_sized_jpeg_is_named(tmp_path):
    root = make_demo_dataset(tmp_path / "d", cameras=1, frames=3, size=(24, 32), odd_size=None)
    frames = sorted((root / "images" / "00").iterdir())
    frames[1].write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    layout = DatasetLayout.discover(root)
    _, device = sources(layout)
    with pytest.raises(EvcError, match=rf"{frames[1].name}: not a readable image"):
        batches(device, layout)
    write_image(frames[1], np.zeros((20, 32, 3), np.uint8))
    with pytest.raises(EvcError, match=rf"{frames[1].name}: image is 32x20, but camera 00 starts at 32x24"):
        batches(device, layout)
    frames[2].write_bytes(b"")
    with pytest.raises(EvcError, match=rf"{frames[2].name}: empty file"):
        device.load((layout.cameras[0], 2))


@pytest.mark.slow
def test_rvm_and_bgmv2_write_the_same_masks_either_way(tmp_path, rvm_checkpoints, bgmv2_checkpoints):
    from easyvolcap.models.bgmv2 import MattingRefine
    from easyvolcap.models.rvm import MattingNetwork
    from easyvolcap.runners.bgmv2 import Bgmv2Options, run_bgmv2
    from easyvolcap.runners.rvm import RvmOptions, run_rvm
    from easyvolcap.synthetic.capture import background

    data = make_demo_dataset(tmp_path / "d", cameras=2, frames=3, size=(48, 64), odd_size=None)
    for camera in ("00", "01"):
        write_image(data / "bkgd" / f"{camera}.png", background(48, 64, seed=int(camera)))
    matting = MattingNetwork("mobilenetv3").eval()
    matting.load_state_dict(torch.load(rvm_checkpoints["mobilenetv3"], weights_only=True))
    refine = MattingRefine("mobilenetv2").eval()
    refine.load_state_dict(torch.load(bgmv2_checkpoints["pytorch_mobilenetv2"], weights_only=True))
    for mode in ("host", "device"):
        layout = DatasetLayout.discover(data)
        run_rvm(layout, matting, CPU, torch.float32,
                RvmOptions(mask_dir=f"rvm_{mode}", batch_size=2, decode=mode, workers=2), progress=False)
        run_bgmv2(layout, refine, CPU, torch.float32,
                  Bgmv2Options(mask_dir=f"bgm_{mode}", batch_size=2, decode=mode, workers=2), progress=False)
    assert _same_files(data / "rvm_host", data / "rvm_device") == 6
    assert _same_files(data / "bgm_host", data / "bgm_device") == 6


def _same_files(a, b) -> int:
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for name in files:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    return len(files)


def test_decode_gpu_needs_cuda(tmp_path, rvm_checkpoints, capsys):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    data = make_demo_dataset(tmp_path / "d", cameras=1, frames=2, size=(24, 32), odd_size=None)
    assert rvm.main(["--data_root", str(data), "--device", "cpu", "--decode", "gpu", "--variant", "mobilenetv3",
                     "--chkpt_path", str(rvm_checkpoints["mobilenetv3"])]) == 1
    assert capsys.readouterr().err.strip() == "evc-rvm: error: --decode gpu needs a CUDA --device, not cpu"
    assert not (data / "rvm").exists()


def test_device_decode_probe_on_cpu():
    assert device_decode_works(CPU)


@pytest.mark.gpu
def test_cuda_decoding_is_close_to_the_host(tmp_path):
    layout = DatasetLayout.discover(make_demo_dataset(tmp_path / "d", cameras=1, frames=4, size=(120, 160),
                                                      odd_size=None))
    cuda = torch.device("cuda")
    assert device_decode_works(cuda)
    host, device = sources(layout, cuda)
    want, got = batches(host, layout), batches(device, layout)
    assert got.device.type == "cuda" and got.shape == want.shape
    assert (got - want).abs().mean() < 2 / 255  # nvJPEG's IDCT and upsampling round differently


def test_out_of_memory_while_decoding_reaches_the_runner(tmp_path, monkeypatch):
    from easyvolcap.runners import frame_source

    layout = DatasetLayout.discover(make_demo_dataset(tmp_path / "d", cameras=1, frames=2, size=(24, 32),
                                                      odd_size=None))
    _, device = sources(layout)

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(frame_source, "_decode_jpeg", out_of_memory)
    with pytest.raises(torch.OutOfMemoryError):  # not decoded on the host: the runner halves the batch
        batches(device, layout)


def test_auto_decodes_on_cuda_when_it_can_and_on_the_host_elsewhere(monkeypatch):
    from easyvolcap.runners import frame_source

    said = []
    assert FrameSource(CPU, {}, "auto", warn=said.append).mode == "host" and not said
    cuda = torch.device("cuda", 0)  # nothing is allocated on it: the probe is replaced
    monkeypatch.setattr(frame_source, "device_decode_works", lambda device: True)
    assert FrameSource(cuda, {}, "auto", warn=said.append).mode == "device" and not said
    monkeypatch.setattr(frame_source, "device_decode_works", lambda device: False)
    assert FrameSource(cuda, {}, "auto", warn=said.append).mode == "host"
    assert said == ["JPEG frames are decoded on the CPU: this torchvision cannot decode JPEG on cuda:0"]
    with pytest.raises(EvcError, match="--decode gpu: this torchvision cannot decode JPEG on cuda:0"):
        FrameSource(cuda, {}, "device")


def test_frames_the_device_refuses_are_decoded_on_the_host_said_once(tmp_path, monkeypatch):
    from easyvolcap.runners import frame_source

    layout = DatasetLayout.discover(make_demo_dataset(tmp_path / "d", cameras=1, frames=4, size=(24, 32),
                                                      odd_size=None))
    sizes = {camera.name: camera.size() for camera in layout.cameras}
    said = []
    host, device = FrameSource(CPU, sizes, "host"), FrameSource(CPU, sizes, "device", warn=said.append)
    camera = layout.cameras[0]
    items = [(camera, t) for t in range(4)]
    loaded = [device.load(item) for item in items]
    decode = frame_source._decode_jpeg

    def refusing(data, **kwargs):  # frames 1 and 3 refused (say, progressive JPEGs), and so the whole batch
        if isinstance(data, list) or data is loaded[1] or data is loaded[3]:
            raise RuntimeError("nvjpeg: unsupported JPEG (progressive)")
        return decode(data, **kwargs)

    monkeypatch.setattr(frame_source, "_decode_jpeg", refusing)
    torch.testing.assert_close(device.batch(items, loaded, torch.float32), batches(host, layout), rtol=0, atol=0)
    assert len(said) == 1 and said[0].startswith(f"{camera.frames[1]}: decoded on the CPU") \
        and "(nvjpeg: unsupported JPEG (progressive))" in said[0]
