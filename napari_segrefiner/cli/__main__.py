"""``python -m napari_segrefiner.cli``: the command line."""

import sys

from .main import main

sys.exit(main())
