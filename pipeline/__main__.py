"""``python -m pipeline``: the ``mer`` command."""

import sys

from .cli import main

sys.exit(main())
