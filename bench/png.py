"""PNG encoders on the suite's outputs: our parallel encoder (``easyvolcap.png``) against OpenCV's and Pillow's.

    python bench/png.py                 # 1080p: a 0/255 mask, a soft alpha mask, an RGBA background
    python bench/png.py --size 2160 3840 --threads 4

Prints, for each image and encoder, the milliseconds per encode (the fastest of ``--repeat`` rounds of
``--count`` encodes, one thread unless named) and the file size. The suite picks its encoder per image kind
from these figures (``easyvolcap.image_io.encode_image``).
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
    from easyvolcap.demo import background, figure_mask

    mask = figure_mask(height, width, 0.3)
    soft = cv2.GaussianBlur(mask, (0, 0), 2.0)
    alpha = np.full((height, width), 255, np.uint8)
    alpha[: height // 5, : width // 6] = 0  # a hole never seen as background
    return {"mask 0/255": mask, "mask soft": soft, "background RGBA": np.dstack([background(height, width, 0), alpha])}


def encoders(threads: int) -> dict[str, Callable[[np.ndarray], bytes]]:
    from easyvolcap.png import encode_png

    def opencv(level: int) -> Callable[[np.ndarray], bytes]:
        def encode(image: np.ndarray) -> bytes:
            if image.ndim == 3:
                image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA)
            return cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, level])[1].tobytes()
        return encode

    def pillow(image: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
        return buffer.getvalue()

    return {"easyvolcap.png": encode_png, f"easyvolcap.png x{threads}": lambda image: encode_png(image, threads),
            "opencv level 1": opencv(1), "opencv default": _opencv_default, "pillow level 1": pillow}


def _opencv_default(image: np.ndarray) -> bytes:
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA)
    return cv2.imencode(".png", image)[1].tobytes()


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
    parser.add_argument("--threads", type=int, default=2, help="threads of the parallel row")
    parser.add_argument("--count", type=int, default=10, help="encodes per round")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the fastest counts")
    args = parser.parse_args()
    print(f"{'image':<16} {'encoder':<20} {'ms':>7} {'bytes':>9}   ({args.size[0]}x{args.size[1]}, OpenCV "
          f"{cv2.__version__})")
    for name, image in images(*args.size).items():
        for encoder, encode in encoders(args.threads).items():
            ms, size = timed(encode, image, args.count, args.repeat)
            print(f"{name:<16} {encoder:<20} {ms:7.1f} {size:9d}")


if __name__ == "__main__":
    main()
