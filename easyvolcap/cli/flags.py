"""The flags the tools share: the parser, argparse types and flag groups (importing this imports no torch).

One vocabulary: a bad flag is one line, ``evc-rvm: error: argument --mask_ext: ... (see evc-rvm --help)``, exit
status 2, never the whole usage block; file types are taken with or without the dot, in any case (``png``,
``.PNG``); a threshold is a fraction of full scale (255) in every tool.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import NoReturn

__all__ = ["HelpFormatter", "ToolParser", "add_dataset_args", "add_decode_arg", "add_device_args", "add_run_args",
           "batch_or_auto", "extension", "fraction", "fraction_or_auto", "number_in", "positive_int", "quality",
           "ratio_or_auto", "shard_spec"]


class ToolParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are one line pointing at ``--help``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def extension(*choices: str) -> Callable[[str], str]:
    """An argparse type: a file type among ``choices`` (``.jpg``, ``.png``, ...), given with or without its dot,
    in any case; the value is the lower-case type with its dot."""
    def parse(text: str) -> str:
        value = "." + text.strip().lower().lstrip(".")
        if value not in choices:
            raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(choices)} (the dot is optional)")
        return value
    parse.__name__ = "file type"  # argparse names the type in its messages
    return parse


def fraction(text: str) -> float:
    """An argparse type: a threshold, a fraction of full scale in (0, 1) (0.5: above 128 of 255)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value >= 1 and value.is_integer() and value <= 255:
        raise argparse.ArgumentTypeError(f"{text} is a level of 255; thresholds are fractions of full scale in (0, 1) "
                                         f"in every tool: pass {value / 255:.3f}")
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be in (0, 1): a fraction of full scale (0.5: above 128 of 255)")
    return value


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each meaningful default next to its help text."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False) or "default" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def batch_or_auto(text: str) -> int | None:
    """An argparse type: ``auto`` (``None``: the rule of :mod:`easyvolcap.batching`) or an integer of at least 1."""
    return None if text == "auto" else positive_int(text)


def number_in(low: float, high: float, *, closed_low: bool = False, closed_high: bool = False
              ) -> Callable[[str], float]:
    """An argparse type: a number in the interval from ``low`` to ``high`` (open ends unless ``closed_*``),
    e.g. ``number_in(0, 1)`` for (0, 1) and ``number_in(0, math.inf)`` for a finite positive number."""
    interval = f"{'[' if closed_low else '('}{low:g}, {high:g}{']' if closed_high else ')'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        above = value >= low if closed_low else value > low
        below = value <= high if closed_high else value < high
        if not (above and below):
            raise argparse.ArgumentTypeError(f"{value} must be in {interval}")
        return value
    return parse


def fraction_or_auto(upper: float) -> Callable[[str], float | None]:
    """An argparse type: ``auto`` (``None``) or a number in (0, ``upper``]."""
    def parse(text: str) -> float | None:
        if text == "auto":
            return None
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is neither 'auto' nor a number") from None
        if not 0 < value <= upper:
            raise argparse.ArgumentTypeError(f"{value} must be in (0, {upper:g}]")
        return value
    return parse


def quality(text: str) -> int:
    """An argparse type: a JPEG quality in [1, 100]."""
    value = positive_int(text)
    if value > 100:
        raise argparse.ArgumentTypeError(f"{value} must be at most 100")
    return value


def shard_spec(text: str) -> tuple[int, int]:
    """An argparse type: ``I/N``, part I (from 0) of N."""
    match = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not match or int(match[2]) < 1 or int(match[1]) >= int(match[2]):
        raise argparse.ArgumentTypeError(f"{text!r} is not I/N with 0 <= I < N (e.g. 0/4)")
    return int(match[1]), int(match[2])


def add_dataset_args(parser: argparse.ArgumentParser, unit: str = "camera") -> None:
    """``--data_root``, ``--image_dir``, ``--only`` and ``--shard`` (over cameras, or over frames: ``unit``)."""
    parser.add_argument("--data_root", required=True,
                        help="dataset root holding <image_dir>/<camera>/<frame>.jpg|png")
    parser.add_argument("--image_dir", "--images_dir", dest="image_dir", default="images",
                        help="folder of camera folders, relative to --data_root")
    parser.add_argument("--only", nargs="+", metavar="CAM", default=None,
                        help="process only these cameras")
    parser.add_argument("--shard", type=shard_spec, default=None, metavar="I/N",
                        help=f"process part I (from 0) of N: every N-th {unit} from the I-th "
                             "(default: SLURM_ARRAY_TASK_ID of SLURM_ARRAY_TASK_COUNT when set, else all)")


def add_mask_reading_args(parser: argparse.ArgumentParser, scaled: bool = True) -> None:
    """``--mask_ext`` and ``--threshold`` of a tool that reads masks: which mask files, and what is foreground
    (``scaled``: once a mask is scaled to its maximum, as EasyVolcap reads masks; else as it is)."""
    from ..layout import MASK_TYPES

    parser.add_argument("--mask_ext", default=None, type=extension(*MASK_TYPES), metavar="jpg|jpeg|png",
                        help="read only masks of this type (default: a frame's mask is its file of any mask type)")
    how = "once a mask is scaled to its maximum (0.5: above 128 of 255, EasyVolcap's)" if scaled else \
        "(0.5: above 128 of 255); masks are judged as they are, not scaled to their maximum"
    parser.add_argument("--threshold", type=fraction, default=0.5,
                        help=f"foreground above this fraction of full scale {how}")


def add_device_args(parser: argparse.ArgumentParser) -> None:
    """``--device``, ``--fp16`` and ``--no_cuda_graphs``."""
    parser.add_argument("--device", default=None,
                        help="cpu, cuda or cuda:N (default: cuda when available, else cpu)")
    parser.add_argument("--fp16", action="store_true", help="compute in half precision (CUDA only)")
    parser.add_argument("--no_cuda_graphs", dest="cuda_graphs", action="store_false",
                        help="on CUDA, launch every forward pass from Python instead of replaying it as a CUDA "
                             "graph (graphs are checked bit for bit against such a pass and write the same masks)")


def add_decode_arg(parser: argparse.ArgumentParser) -> None:
    """``--decode``: where JPEG frames are decoded."""
    parser.add_argument("--decode", default="auto", choices=("auto", "cpu", "gpu"),
                        help="where JPEG frames are decoded: gpu = on the CUDA device (nvJPEG), cpu = by the "
                             "--workers threads; auto = gpu on CUDA when this torchvision can decode there, else cpu; "
                             "videos and PNG frames are always decoded on the CPU")


def add_run_args(parser: argparse.ArgumentParser, jpeg_quality: int = 85,
                 workers_help: str = "threads decoding input and encoding output") -> None:
    """``--quality``, ``--workers``, ``--overwrite`` and ``--debug``."""
    parser.add_argument("--quality", type=quality, default=jpeg_quality, help="JPEG quality of written images")
    parser.add_argument("--workers", type=positive_int, default=4, help=workers_help)
    parser.add_argument("--overwrite", action="store_true",
                        help="redo everything (default: keep finished outputs and do the rest)")
    parser.add_argument("--no_preview", action="store_true",
                        help="do not write the contact sheet <data_root>/preview/<output folder>.jpg")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of expected errors")


ratio_or_auto = fraction_or_auto(1.0)
