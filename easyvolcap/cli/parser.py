"""The tools' argument parser and the flag types every tool shares the meaning of (one vocabulary).

A bad flag is one line, ``evc-rvm: error: argument --mask_ext: ... (see evc-rvm --help)``, exit status 2:
never the whole usage block. File types are taken with or without the dot, in any case (``png``, ``.PNG``).
A threshold is a fraction of full scale (255) in every tool.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import NoReturn

__all__ = ["ToolParser", "extension", "fraction"]


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
