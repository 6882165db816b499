"""PNG encoders on the suite's outputs: the suite's (``easyvolcap.image_io.encode_image``: OpenCV's defaults)
against OpenCV at an explicit level and Pillow.

    python bench/png.py                 # 1080p: a 0/255 mask, a soft alpha mask, an RGBA background
    python bench/png.py --size 2160 3840

Prints, for each image and encoder, the milliseconds per encode (the fastest of ``--repeat`` rounds of
``--count`` encodes) and the file size, after checking that each decodes back to the image. The suite's own
hand-written parallel encoder (``easyvolcap/png.py``) was measured against these by this script at commit
aea5785 (``git show aea5785:bench/png.py``) and dropped: it won no axis (see the readme's Performance).
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable

import cv2
import numpy as np
from PIL import Image


def images(height: int, width: int) -> dict[str, np.ndarray]:
    """A 0/255 person mask (SCHP's, the merge's), a soft alpha mask (RVM's, BGMv2's, as PNG) and an RGBA
    background (the background tool's) of the demo's picture at ``height x width``."""
    from easyvolcap.synthetic.capture import background, figure_mask

    mask = figure_mask(height, width, 0.3)
    soft = cv2.GaussianBlur(mask, (0, 0), 2.0)
    alpha = np.full((height, width), 255, np.uint8)
    alpha[: height // 5, : width // 6] = 0  # a hole never seen as background
    return {"mask 0/255": mask, "mask soft": soft, "background RGBA": np.dstack([background(height, width, 0), alpha])}


def encoders() -> dict[str, Callable[[np.ndarray], bytes]]:
    from easyvolcap.image_io import encode_image

    def opencv_level_1(image: np.ndarray) -> bytes:
        if image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA)
        return cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])[1].tobytes()

    def pillow(image: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
        return buffer.getvalue()

    return {"suite (opencv)": lambda image: encode_image(image, ".png"), "opencv level 1": opencv_level_1,
            "pillow level 1": pillow}


def timed(encode: Callable[[np.ndarray], bytes], image: np.ndarray, count: int, repeat: int) -> tuple[float, int]:
    """(fastest milliseconds per encode, bytes)."""
    data = encode(image)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(count):
            encode(image)
        best = min(best, (time.perf_counter() - start) / count)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded.ndim == 3:
        decoded = cv2.cvtColor(decoded, cv2.COLOR_BGRA2RGBA)
    assert np.array_equal(decoded, image), "an encoder lost pixels"
    return 1000 * best, len(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs=2, default=(1080, 1920), metavar=("H", "W"))
    parser.add_argument("--count", type=int, default=10, help="encodes per round")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the fastest counts")
    args = parser.parse_args()
    print(f"{'image':<16} {'encoder':<20} {'ms':>7} {'bytes':>9}   ({args.size[0]}x{args.size[1]}, OpenCV "
          f"{cv2.__version__})")
    for name, image in images(*args.size).items():
        for encoder, encode in encoders().items():
            ms, size = timed(encode, image, args.count, args.repeat)
            print(f"{name:<16} {encoder:<20} {ms:7.1f} {size:9d}")


if __name__ == "__main__":
    main()
