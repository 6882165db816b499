"""The dataset layout: ``DATA_ROOT/<image_dir>/<camera>/<frame>.(jpg|jpeg|png)``, or one video per
camera, ``DATA_ROOT/<image_dir>/<camera>.mp4``.

Cameras and frames are listed once; every output path is derived from (camera, frame stem),
never by string replacement on an input path.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import EvcError
from .image_io import image_size, read_rgb
from .video import VIDEO_EXTENSIONS, count_frames, open_video

__all__ = ["IMAGE_EXTENSIONS", "MASK_TYPES", "OTHER_IMAGE_EXTENSIONS", "Camera", "DatasetLayout", "mask_files",
           "natural_key"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
MASK_TYPES = (".jpg", ".jpeg", ".png")  # the mask files every tool reads (any case): the type is detected
OTHER_IMAGE_EXTENSIONS = (".bmp", ".tif", ".tiff", ".webp")  # images in camera folders that are not read


def _camera(name: str, source: Path, extensions: tuple[str, ...], unread: Counter[str], kind: str = "image") -> Camera:
    """A camera from its folder of images, or from a video file; counts image files of types that are
    not read (``.bmp``, ``.tif``, ...) in ``unread``, by type."""
    if source.is_file():
        count = count_frames(source)
        return Camera(name, tuple(source.with_suffix("") / f"{i:06d}.png" for i in range(count)), video=source)
    files = [p for p in source.iterdir() if not p.name.startswith(".") and p.is_file()]
    unread.update(p.suffix.lower() for p in files if p.suffix.lower() in OTHER_IMAGE_EXTENSIONS)
    frames = tuple(sorted((p for p in files if p.suffix.lower() in extensions), key=lambda p: natural_key(p.name)))
    stems = [frame.stem for frame in frames]
    if len(set(stems)) != len(stems):
        twin = next(stem for stem in stems if stems.count(stem) > 1)
        raise EvcError(f"{source}: two {kind}s share the frame name {twin!r}; their outputs would overwrite each other")
    return Camera(name, frames)


def mask_files(folder: Path, ext: str | None = None, flag: str = "--mask_ext") -> dict[str, Path]:
    """A camera's masks by frame stem: the files of ``folder`` of any mask type (``MASK_TYPES``, any case), or of
    type ``ext`` only; ``{}`` when there is no such folder. ``flag`` (the one that sets ``ext``) is named in errors.

    Raises:
        EvcError: two masks of one frame (``000000.jpg`` and ``000000.png``): which one is meant is unknown.
    """
    if not folder.is_dir():
        return {}
    types = MASK_TYPES if ext is None else (ext.lower(),)
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in types and not path.name.startswith(".") and path.is_file():
            if path.stem in found:
                raise EvcError(f"{folder}: two masks of frame {path.stem!r} ({found[path.stem].name}, {path.name}); "
                               f"remove one, or pass {flag} to read one type")
            found[path.stem] = path
    return found


def natural_key(name: str) -> tuple:
    """Sort key that orders ``frame2`` before ``frame10``."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name))


@dataclass(frozen=True)
class Camera:
    """One camera: its name and its frames (image paths, naturally sorted).

    A camera read from a video file has ``video`` set; its frames are then named ``000000``,
    ``000001``, ... (paths that only carry the name; the pixels come from the video).
    """

    name: str
    frames: tuple[Path, ...]
    video: Path | None = None

    def __len__(self) -> int:
        return len(self.frames)

    def size(self) -> tuple[int, int]:
        """``(height, width)`` of the camera's frames: its first image's (from the header), or its video's.

        Raises:
            EvcError: the first image is not readable.
        """
        if self.video is not None:
            video = open_video(self.video)
            return video.height, video.width
        return image_size(self.frames[0])

    def read_frame(self, t: int, size: tuple[int, int]) -> np.ndarray:
        """Decode frame ``t`` as RGB uint8, checking it has the camera's ``size`` (``(height, width)``,
        from :meth:`size`, which callers keep rather than re-reading a header per frame).

        Raises:
            EvcError: the image is unreadable or of another size than the camera's first frame.
        """
        image = open_video(self.video).frame(t) if self.video is not None else read_rgb(self.frames[t])
        if image.shape[:2] != size:
            raise self.size_error(t, image.shape[:2], size)
        return image

    def size_error(self, t: int, got: tuple[int, int], want: tuple[int, int]) -> EvcError:
        """The error for frame ``t`` decoded at ``(height, width)`` ``got`` in a camera of frames of ``want``."""
        return EvcError(f"{self.frames[t]}: image is {got[1]}x{got[0]}, but camera {self.name} starts at "
                        f"{want[1]}x{want[0]}; a camera keeps one size")


@dataclass(frozen=True)
class DatasetLayout:
    """A dataset root, its image folder, and the cameras found there."""

    root: Path
    image_dir: str
    cameras: tuple[Camera, ...]
    skipped: tuple[str, ...] = ()  # cameras without a single image
    unread: tuple[tuple[str, int], ...] = ()  # (type, count) of image files of other types in camera folders

    @classmethod
    def discover(cls, root: str | Path, image_dir: str = "images", only: list[str] | None = None,
                 extensions: tuple[str, ...] = IMAGE_EXTENSIONS, shard: tuple[int, int] | None = None,
                 flag: str = "--image_dir", kind: str = "image") -> DatasetLayout:
        """List cameras (sorted sub-folders and video files of ``root/image_dir``) and their frames.

        Frames are the files whose lower-case suffix is in ``extensions``, or a video's frames. ``shard = (i, n)`` keeps
        every n-th camera starting at the i-th (after ``only``), so n processes split a dataset
        deterministically; a shard may be empty. ``flag`` and ``kind`` name the folder in errors (``--masks_dir``,
        ``mask`` for a folder of masks).

        Raises:
            EvcError: the root or image folder is missing, a camera named in ``only`` does not
                exist, or no camera has any image.
        """
        root = Path(root)
        if not root.is_dir():
            raise EvcError(f"--data_root {root}: not a directory")
        images = root / image_dir
        if not images.is_dir():
            raise EvcError(f"{images}: {kind} folder not found (set {flag})")
        entries = {p.name: p for p in images.iterdir() if p.is_dir() and not p.name.startswith(".")}
        for video in images.iterdir():
            if video.is_file() and video.suffix.lower() in VIDEO_EXTENSIONS and not video.name.startswith("."):
                if video.stem in entries:
                    raise EvcError(f"{images}: camera {video.stem!r} is both a folder and {video.name}")
                entries[video.stem] = video
        names = sorted(entries, key=natural_key)
        if not names:
            raise EvcError(f"{images}: no camera folder with {'/'.join(extensions)} {kind}s, and no video")
        if only:
            missing = [name for name in only if name not in names]
            if missing:
                raise EvcError(f"{images}: no camera folder {missing[0]!r} (from --only); "
                               f"cameras are {', '.join(names) or 'none'}")
            names = [name for name in names if name in set(only)]
        if shard is not None:
            index, count = shard
            names = names[index::count]
        cameras, skipped, unread = [], [], Counter()
        for name in names:
            camera = _camera(name, entries[name], extensions, unread, kind)
            if camera.frames:
                cameras.append(camera)
            else:
                skipped.append(name)
        if not cameras and shard is None:
            raise EvcError(f"{images}: no camera folder with {'/'.join(extensions)} {kind}s, and no video")
        return cls(root, image_dir, tuple(cameras), tuple(skipped), tuple(sorted(unread.items())))

    def merge(self, other: DatasetLayout) -> DatasetLayout:
        """This layout with the cameras of ``other``, another shard of the same dataset, in natural order."""
        cameras = sorted((*self.cameras, *other.cameras), key=lambda camera: natural_key(camera.name))
        skipped = sorted((*self.skipped, *other.skipped), key=natural_key)
        return DatasetLayout(self.root, self.image_dir, tuple(cameras), tuple(skipped))

    @property
    def num_frames(self) -> int:
        """Total number of input frames over all cameras."""
        return sum(len(camera) for camera in self.cameras)

    def output_dir(self, out_dir: str, camera: str) -> Path:
        """``root/<out_dir>/<camera>``."""
        return self.root / out_dir / camera

    def output_path(self, out_dir: str, camera: str, frame: Path, ext: str) -> Path:
        """``root/<out_dir>/<camera>/<frame stem><ext>`` for one input frame."""
        return self.output_dir(out_dir, camera) / (frame.stem + ext)
