"""A static background image per camera from its frames and masks; see ``--help``."""

from easyvolcap.cli.backgrounds import main

if __name__ == "__main__":
    raise SystemExit(main())
