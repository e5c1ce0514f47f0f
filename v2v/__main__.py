"""``python -m v2v ...``: see v2v/cli.py."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
