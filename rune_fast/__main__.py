"""``python -m rune_fast ...`` is the ``rune`` command line."""

import sys

from .cli import main

sys.exit(main())
