"""``python -m hpt_core``: the command line."""

import sys

from hpt_core.cli import main

if __name__ == "__main__":
    sys.exit(main())
