"""Human parsing labels and human masks with SCHP; see ``--help``."""

from easyvolcap.cli.schp import main

if __name__ == "__main__":
    raise SystemExit(main())
