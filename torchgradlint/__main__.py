"""``python -m torchgradlint``: the same command line as the ``torchgradlint`` script."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
