"""Video files as cameras: frames decoded as a stream by ffmpeg (the ``imageio-ffmpeg`` package).

A camera whose frames live in ``<image_dir>/<camera>.mp4`` (or any container ffmpeg reads) has frames
numbered from 000000. Frames are decoded in order and only a few are kept, so memory does not grow with
the length of the video; asking for an earlier frame than the last few restarts the stream.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .errors import EvcError

__all__ = ["VIDEO_EXTENSIONS", "VideoFrames", "count_frames", "open_video", "video_size"]

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mts")
_KEEP = 8  # decoded frames kept per video, for readers a few frames out of order
_OPEN_LIMIT = 16  # videos open at once


def _ffmpeg():
    try:
        import imageio_ffmpeg
    except ImportError:
        raise EvcError("video input needs the imageio-ffmpeg package: pip install imageio-ffmpeg") from None
    return imageio_ffmpeg


def count_frames(path: Path) -> int:
    """The number of frames of a video (ffmpeg decodes it once, without keeping anything; the answer is
    remembered while the file's size and modification time stay the same).

    Raises:
        EvcError: the file is not a readable video.
    """
    _ffmpeg()  # the install hint, even for a count remembered from before
    stat = Path(path).stat()
    return _count_frames(Path(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _count_frames(path: Path, size: int, mtime_ns: int) -> int:
    try:
        frames, _ = _ffmpeg().count_frames_and_secs(str(path))
    except (RuntimeError, OSError, ValueError) as error:
        raise EvcError(f"{path}: not a readable video ({str(error).strip().splitlines()[0][:200]})") from error
    return int(frames)


def video_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` of a video's frames."""
    reader = _ffmpeg().read_frames(str(path), pix_fmt="rgb24")
    try:
        width, height = next(reader)["size"]
    except (RuntimeError, OSError, StopIteration) as error:
        raise EvcError(f"{path}: not a readable video") from error
    finally:
        reader.close()
    return int(height), int(width)


class VideoFrames:
    """Thread-safe access to the decoded frames of one video, as ``(H, W, 3)`` RGB uint8 arrays."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.height, self.width = video_size(path)
        self._lock = threading.Lock()
        self._reader: Iterator | None = None
        self._next = 0
        self._kept: OrderedDict[int, np.ndarray] = OrderedDict()

    def _restart(self) -> None:
        self.close()
        self._reader = _ffmpeg().read_frames(str(self.path), pix_fmt="rgb24")
        next(self._reader)  # the metadata
        self._next = 0

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` (from 0).

        Raises:
            EvcError: the video ends before that frame.
        """
        with self._lock:
            if index in self._kept:
                return self._kept[index]
            if self._reader is None or index < self._next:
                self._restart()
            while self._next <= index:
                try:
                    data = next(self._reader)
                except (StopIteration, RuntimeError) as error:
                    raise EvcError(f"{self.path}: ends before frame {index}") from error
                image = np.frombuffer(data, np.uint8).reshape(self.height, self.width, 3)
                self._kept[self._next] = image
                if len(self._kept) > _KEEP:
                    self._kept.popitem(last=False)
                self._next += 1
            return self._kept[index]

    def close(self) -> None:
        """Stop the decoder (it is restarted when a frame is asked for again)."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None


_open: OrderedDict[Path, VideoFrames] = OrderedDict()
_open_lock = threading.Lock()


def open_video(path: Path) -> VideoFrames:
    """The shared decoder of ``path``; the least recently used one is closed beyond a few open videos."""
    with _open_lock:
        if path in _open:
            _open.move_to_end(path)
            return _open[path]
        video = _open[path] = VideoFrames(path)
        if len(_open) > _OPEN_LIMIT:
            _open.popitem(last=False)[1].close()
        return video
