"""People-only masks: the SCHP mask kept inside the grown RVM mask; see ``--help``."""

from easyvolcap.cli.merge import main

if __name__ == "__main__":
    raise SystemExit(main())
