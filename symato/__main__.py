"""Allow ``python -m symato``."""

import sys

from symato.cli import main

sys.exit(main())
