"""Robust Video Matting masks for every camera of a dataset; see ``--help``."""

from easyvolcap.cli.rvm import main

if __name__ == "__main__":
    raise SystemExit(main())
