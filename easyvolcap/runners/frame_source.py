"""Where frames are decoded: on the host by reader threads, or JPEG files on the GPU (nvJPEG).

A runner's reader threads call :meth:`FrameSource.load` for each frame, and its main loop turns a
batch of loaded frames of one camera into the model's float input with :meth:`FrameSource.batch`.

- ``host``: the threads decode every frame (OpenCV, or ffmpeg for videos) and the batch crosses to
  the device as uint8.
- ``device``: for cameras whose frames are JPEG files, the threads only read the files' bytes and
  ``torchvision.io.decode_jpeg`` decodes the whole batch on the model's device (nvJPEG on CUDA),
  which takes the decoding off the CPU when it cannot keep up with the GPU (4K, many cameras).
  Other cameras (videos, PNG) are decoded on the host as before. A file the device cannot decode
  is decoded on the host (said once); one nothing can decode is reported as by the host path.
- ``auto`` (the default): ``device`` on CUDA when this torchvision decodes JPEG there (else ``host``, said
  once), ``host`` elsewhere.

On the CPU ``device`` decodes with libjpeg-turbo like the host path (bitwise the same frames, but for
CMYK JPEGs, whose colour conversion differs by a level); the
tests use that to check the logic without a GPU. torchvision 0.29 announces that its image decoders
will move to TorchCodec; they work, and that notice is silenced here.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable

import numpy as np
import torch

from ..errors import EvcError
from ..inference import is_out_of_memory, to_device_batch
from ..layout import Camera

__all__ = ["DECODE_MODES", "FrameSource", "device_decode_works", "is_jpeg_camera"]

DECODE_MODES = ("auto", "host", "device")
JPEG_SUFFIXES = (".jpg", ".jpeg")
Item = tuple[Camera, int]


def is_jpeg_camera(camera: Camera) -> bool:
    """Whether every frame of ``camera`` is a JPEG file (not a video frame)."""
    return camera.video is None and all(frame.suffix.lower() in JPEG_SUFFIXES for frame in camera.frames)


class FrameSource:
    """Loads frames in reader threads and makes model input batches of them.

    Args:
        device: where the model runs.
        sizes: each camera's ``(height, width)``, by camera name.
        mode: ``auto``, ``host`` or ``device`` (see the module docstring).
        warn: told once when frames are decoded on the host though the device was meant to.
    """

    def __init__(self, device: torch.device, sizes: dict[str, tuple[int, int]], mode: str = "host",
                 warn: Callable[[str], None] | None = None) -> None:
        """Raises:
            EvcError: ``device`` mode on a CUDA device on which this torchvision cannot decode JPEG.
        """
        if mode not in DECODE_MODES:
            raise ValueError(f"decode mode {mode!r}: expected one of {DECODE_MODES}")
        self.warn = warn or (lambda message: print(f"warning: {message}", file=sys.stderr))
        works = device.type != "cuda" or mode == "host" or device_decode_works(device)
        if mode == "device" and not works:
            raise EvcError(f"--decode gpu: this torchvision cannot decode JPEG on {device}; use --decode cpu")
        if mode == "auto":
            mode = "device" if device.type == "cuda" and works else "host"
            if not works:
                self.warn(f"JPEG frames are decoded on the CPU: this torchvision cannot decode JPEG on {device}")
        self.device, self.sizes, self.mode = device, sizes, mode
        self._jpeg: dict[str, bool] = {}
        self._fell_back = False  # a frame was decoded on the host though the device was meant to

    def on_device(self, camera: Camera) -> bool:
        """Whether ``camera``'s frames are decoded on the device."""
        if self.mode != "device":
            return False
        if camera.name not in self._jpeg:
            self._jpeg[camera.name] = is_jpeg_camera(camera)
        return self._jpeg[camera.name]

    def load(self, item: Item) -> np.ndarray | torch.Tensor:
        """In a reader thread: the decoded RGB frame, or the file's bytes when the device decodes it."""
        camera, t = item
        frame = camera.frames[t]
        if not self.on_device(camera):
            return camera.read_frame(t, self.sizes[camera.name])
        try:
            data = frame.read_bytes()
        except OSError as error:
            raise EvcError(f"{frame}: cannot read ({error.strerror or error})") from error
        if not data:
            raise EvcError(f"{frame}: empty file")
        return torch.frombuffer(bytearray(data), dtype=torch.uint8)

    def batch(self, items: list[Item], loaded: list[np.ndarray | torch.Tensor], dtype: torch.dtype,
              memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
        """``(N, 3, H, W)`` in [0, 1] on the device, in ``dtype`` and ``memory_format``, from one camera's frames."""
        if not loaded or isinstance(loaded[0], np.ndarray):
            return to_device_batch(loaded, self.device, dtype, memory_format)
        frames = self._decode(items, loaded)
        return torch.stack(frames).to(dtype, memory_format=memory_format).div_(255)

    def _decode(self, items: list[Item], data: list[torch.Tensor]) -> list[torch.Tensor]:
        """``(3, H, W)`` uint8 frames on the device; files the device cannot decode go through the host."""
        from torchvision.io import ImageReadMode

        try:
            frames = _decode_jpeg(data, mode=ImageReadMode.RGB, device=self.device)
        except RuntimeError as error:  # one bad file fails the whole batch: find it, frame by frame
            if is_out_of_memory(error):
                raise  # the runner retries with fewer frames
            frames = []
            for item, one in zip(items, data, strict=True):
                try:
                    frames.append(_decode_jpeg(one, mode=ImageReadMode.RGB, device=self.device))
                except RuntimeError as error:
                    if is_out_of_memory(error):
                        raise
                    frames.append(self._host_decode(item, error))
        for (camera, t), frame in zip(items, frames, strict=True):
            size = self.sizes[camera.name]
            if tuple(frame.shape[-2:]) != size:
                raise camera.size_error(t, tuple(frame.shape[-2:]), size)
        return frames

    def _host_decode(self, item: Item, error: Exception) -> torch.Tensor:
        camera, t = item
        image = camera.read_frame(t, self.sizes[camera.name])  # raises the host path's errors
        if not self._fell_back:
            self._fell_back = True
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            self.warn(f"{camera.frames[t]}: decoded on the CPU, the device's JPEG decoder refused it ({reason}); "
                      "so is any other such frame of this run")
        return torch.from_numpy(image).permute(2, 0, 1).to(self.device)


def device_decode_works(device: torch.device) -> bool:
    """Whether ``torchvision.io.decode_jpeg`` decodes on ``device`` (a tiny JPEG, decoded once)."""
    import cv2

    try:
        ok, data = cv2.imencode(".jpg", np.full((8, 8, 3), 128, np.uint8))
        frames = _decode_jpeg([torch.from_numpy(data.reshape(-1))], device=device)
        return ok and tuple(frames[0].shape) == (3, 8, 8)
    except (ImportError, RuntimeError):
        return False


def _decode_jpeg(data, **kwargs):
    """``torchvision.io.decode_jpeg`` without its notice that decoding moves to TorchCodec."""
    from torchvision.io import decode_jpeg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return decode_jpeg(data, **kwargs)
