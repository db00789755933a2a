"""``python -m gmsep ...``: the gmsep command (see :mod:`gmsep.cli`)."""

from gmsep.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
