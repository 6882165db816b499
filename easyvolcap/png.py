"""PNG encoding in parallel: one ordinary PNG whose deflate stream is compressed in parts by several threads.

Why it exists: a background or a 4K mask is one large PNG, and zlib (OpenCV's and Pillow's encoders
alike) compresses it on one core while the others wait. Here every row is filtered by "sub" and the
filtered bytes are deflated at level 1 in parts of about 1 MB; each part ends on a sync flush, so the
parts are independent block runs of one zlib stream (pigz's layout) and compress in parallel threads
(zlib releases the GIL). Any PNG reader decodes the result. The bytes depend on the image alone, not on
the thread count, so a resumed run writes the same files.

What it costs: files are larger than OpenCV's at compression level 1 (parts do not refer back into each
other, and OpenCV picks a row filter per image): 3% for a textured 1080p RGB background, 19% for a
1080p mask of one disk (17 KB against 14 KB). On one thread it is as fast as OpenCV's encoder and
needs no BGR copy.
"""

from __future__ import annotations

import struct
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["encode_png"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPES = {1: 0, 3: 2, 4: 6}  # channels -> gray, RGB, RGBA
_PART_BYTES = 1 << 20  # filtered bytes per deflate part
_IDAT_BYTES = 1 << 30  # a chunk holds less than 2**31 bytes: the zlib stream is split across IDAT chunks


def encode_png(image: np.ndarray, threads: int = 1) -> bytes:
    """A PNG of an ``(H, W)`` gray, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA uint8 array, in ``threads`` threads.

    Every row is filtered by "sub" (each byte minus the one a pixel before), the rows are deflated at
    level 1 in parts of about 1 MB, each part its own block run of the one zlib stream (as pigz does:
    no part refers back into another), so the parts compress in parallel while the file stays one
    ordinary PNG. The parts depend on the image alone: the bytes are the same for any ``threads``.
    """
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise ValueError(f"expected a uint8 (H, W), (H, W, 3) or (H, W, 4) image, got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    channels = 1 if image.ndim == 2 else image.shape[2]
    if not height or not width:
        raise ValueError(f"cannot encode an empty {image.shape} image as PNG")
    rows = np.ascontiguousarray(image).reshape(height, width * channels)
    filtered = np.empty((height, width * channels + 1), np.uint8)
    filtered[:, 0] = 1  # filter type "sub"
    filtered[:, 1:1 + channels] = rows[:, :channels]
    np.subtract(rows[:, channels:], rows[:, :-channels], out=filtered[:, 1 + channels:])  # modulo 256
    parts = max(1, min(height, filtered.nbytes // _PART_BYTES))
    bounds = [height * i // parts for i in range(parts + 1)]

    def deflate(part: int) -> bytes:
        compressor = zlib.compressobj(1, zlib.DEFLATED, -15)  # raw deflate: the zlib header is written once
        data = compressor.compress(filtered[bounds[part]:bounds[part + 1]])
        return data + compressor.flush(zlib.Z_FINISH if part == parts - 1 else zlib.Z_SYNC_FLUSH)

    if threads > 1 and parts > 1:
        with ThreadPoolExecutor(min(threads, parts)) as pool:  # zlib releases the GIL while it compresses
            checksum = pool.submit(zlib.adler32, filtered)
            deflated = list(pool.map(deflate, range(parts)))
            adler = checksum.result()
    else:
        deflated, adler = [deflate(part) for part in range(parts)], zlib.adler32(filtered)
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOR_TYPES[channels], 0, 0, 0)
    idat = b"".join([b"\x78\x01", *deflated, struct.pack(">I", adler)])  # zlib stream: deflate, fastest level
    chunks = [_chunk(b"IDAT", idat[i:i + _IDAT_BYTES]) for i in range(0, len(idat), _IDAT_BYTES)]
    return b"".join([_SIGNATURE, _chunk(b"IHDR", header), *chunks, _chunk(b"IEND", b"")])


def _chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC of type and data."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
