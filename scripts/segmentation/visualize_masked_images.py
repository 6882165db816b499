"""A video of every camera's masked images, to review masks; see ``--help``."""

from easyvolcap.cli.visualize import main

if __name__ == "__main__":
    raise SystemExit(main())
