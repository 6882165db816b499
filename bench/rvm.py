"""Benchmark of the RVM tool (Robust Video Matting): ``bench/matting.py --tools rvm``.

    python bench/rvm.py            # its rows of bench/matting.py; every flag of that script works here
    python bench/rvm.py --quick
"""

from __future__ import annotations

import sys

import matting

if __name__ == "__main__":
    sys.argv[1:1] = ["--tools", "rvm"]
    matting.main()
