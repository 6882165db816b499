"""Inverted masks, 255 - binary(mask); see ``--help``."""

from easyvolcap.cli.invert import main

if __name__ == "__main__":
    raise SystemExit(main())
