"""Benchmark of the BGMv2 tool (Background Matting V2): ``bench/matting.py --tools bgmv2``.

    python bench/bgmv2.py            # its rows of bench/matting.py; every flag of that script works here
    python bench/bgmv2.py --quick
"""

from __future__ import annotations

import sys

import matting

if __name__ == "__main__":
    sys.argv[1:1] = ["--tools", "bgmv2"]
    matting.main()
