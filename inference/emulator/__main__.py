"""``python -m inference.emulator --port 8787 --latency-ms 0 [--token T]``."""

import sys

from .cli import main

sys.exit(main())
