"""``python -m core``: the studio's command line."""

import sys

from core.cli import main

sys.exit(main())
