"""Background Matting V2 masks against each camera's background; see ``--help``."""

from easyvolcap.cli.bgmv2 import main

if __name__ == "__main__":
    raise SystemExit(main())
