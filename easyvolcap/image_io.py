"""Reading images as RGB uint8 and writing masks and images atomically.

Policy: images are decoded as stored, without applying EXIF orientation, because the camera
parameters and every downstream loader of this layout use the pixel grid as stored.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import EvcError

__all__ = ["MASK_EXTENSIONS", "atomic_write", "encode_image", "encode_label_png", "encode_npy", "image_size",
           "is_written", "read_gray", "read_rgb", "to_8bit", "write_image"]

MASK_EXTENSIONS = (".jpg", ".png")
_READ_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
_REDUCED = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}
_UMASK = os.umask(0)
os.umask(_UMASK)


def image_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` of an image file, read from its header only.

    Raises:
        EvcError: the file is not a readable image.
    """
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise EvcError(f"{path}: not a readable image ({error})") from error
    return height, width


def read_rgb(path: str | Path, reduce: int = 1) -> np.ndarray:
    """Decode an image file as an ``(H, W, 3)`` RGB uint8 array.

    Grayscale is replicated, alpha dropped, 16-bit scaled to 8-bit, palette and CMYK converted. ``reduce``
    (1, 2, 4 or 8) decodes at that fraction of the size (a JPEG by its DCT scaling, several times faster).

    Raises:
        EvcError: the file cannot be read or is not a decodable image.
    """
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as error:
        raise EvcError(f"{path}: cannot read ({error.strerror or error})") from error
    if data.size == 0:
        raise EvcError(f"{path}: empty file")
    image = cv2.imdecode(data, _READ_FLAGS if reduce == 1 else _REDUCED[reduce] | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise EvcError(f"{path}: not a readable image (corrupt or unsupported format)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_gray(path: str | Path, indices: bool = False) -> np.ndarray:
    """Decode a mask or label map as an ``(H, W)`` uint8 array; ``indices`` keeps a palette PNG's indices.

    Raises:
        EvcError: the file cannot be read or decoded.
    """
    if indices:
        try:
            with Image.open(path) as image:
                return np.asarray(image if image.mode in ("P", "L") else image.convert("L"))
        except OSError as error:
            raise EvcError(f"{path}: not a readable image ({error})") from error
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as error:
        raise EvcError(f"{path}: cannot read ({error.strerror or error})") from error
    image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE | cv2.IMREAD_ANYDEPTH) if data.size else None
    if image is None:
        raise EvcError(f"{path}: not a readable image")
    return to_8bit(image)


def to_8bit(image: np.ndarray) -> np.ndarray:
    """A decoded mask as uint8: a 16-bit one scaled from its full range, except one whose values fit in 8 bits
    (a label or 0/1 mask stored in 16 bits: values kept, 0/1 read as 0/255)."""
    if image.dtype == np.uint8:
        return image
    peak = int(image.max()) if image.size else 0
    if peak <= 1:
        return (image * 255).astype(np.uint8)
    if peak <= 255:
        return image.astype(np.uint8)
    return ((image.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def encode_image(image: np.ndarray, ext: str, quality: int = 85) -> bytes:
    """Encode an ``(H, W)`` gray, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA (PNG only) uint8 array with OpenCV.

    ``quality`` is JPEG's. PNG is OpenCV's default encoding (lossless), the smallest and fastest of the
    encoders measured on the suite's masks and backgrounds (``python bench/png.py``).
    """
    if image.dtype != np.uint8:
        raise ValueError(f"expected uint8 image, got {image.dtype}")
    ext = ext.lower()
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA if image.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    if ext in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    elif ext == ".png":
        params = []  # OpenCV's defaults: explicit PNG settings take a slower path (bench/png.py)
    else:
        raise ValueError(f"unsupported image extension {ext!r}; use .jpg or .png")
    ok, buffer = cv2.imencode(ext, image, params)
    if not ok:
        raise EvcError(f"cannot encode a {image.shape} image as {ext}")
    return buffer.tobytes()


def encode_label_png(labels: np.ndarray, palette: np.ndarray) -> bytes:
    """An ``(H, W)`` uint8 label map as a palette PNG: PIL reads the label indices back, colour readers
    see ``palette[label]`` (an ``(N, 3)`` uint8 RGB table)."""
    labels = np.ascontiguousarray(labels, dtype=np.uint8)
    image = Image.frombytes("P", (labels.shape[1], labels.shape[0]), labels.tobytes())
    flat = np.zeros((256, 3), np.uint8)
    flat[: len(palette)] = palette
    image.putpalette(flat.reshape(-1).tolist())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def encode_npy(array: np.ndarray) -> bytes:
    """``array`` in NumPy's ``.npy`` format."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def atomic_write(path: str | Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place.

    A reader never sees a partial file, and an existing ``path`` is replaced only by a complete one.
    The data is synced to disk before the rename, so a power loss cannot leave a renamed but empty or
    truncated file (the callers write from background threads: the sync waits there, not in the model).

    Raises:
        EvcError: the folder cannot be created or written (permissions, disk full).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise EvcError(f"{path.parent}: cannot write ({error.strerror or error})") from error
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp creates 0600; outputs get the usual mode
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())  # the data is on disk before the name is: no empty file after a power loss
        os.replace(tmp, path)
    except BaseException as error:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise EvcError(f"{path}: cannot write ({error.strerror or error})") from error
        raise


def is_written(path: str | Path) -> bool:
    """Whether ``path`` is a finished output: it exists and is not empty (a zero-length file, which a
    crash of a system without synced writes can leave, counts as missing and is redone)."""
    try:
        return os.stat(path).st_size > 0
    except OSError:
        return False


def write_image(path: str | Path, image: np.ndarray, quality: int = 85) -> None:
    """Encode ``image`` by the extension of ``path`` (see :func:`encode_image`) and write it atomically."""
    path = Path(path)
    atomic_write(path, encode_image(image, path.suffix, quality))
