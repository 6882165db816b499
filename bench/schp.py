"""Benchmark of the SCHP tool (Self-Correction Human Parsing): ``bench/matting.py --tools schp``.

    python bench/schp.py            # its rows of bench/matting.py; every flag of that script works here
    python bench/schp.py --quick
"""

from __future__ import annotations

import sys

import matting

if __name__ == "__main__":
    sys.argv[1:1] = ["--tools", "schp"]
    matting.main()
