"""``python -m core``: the studio's command line."""

import sys

from core.cli import main

try:
    sys.exit(main())
except KeyboardInterrupt:  # Ctrl-C before a command installed its own handler: no traceback
    print("cancelled", file=sys.stderr)
    sys.exit(130)
