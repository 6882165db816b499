"""Check masks against the other calibrated cameras and in time; see ``easyvolcap.cli.check``."""

from easyvolcap.cli.check import main

if __name__ == "__main__":
    raise SystemExit(main())
