"""``python -m facestream.cli``: the same as the ``facestream`` console script."""

import sys

from facestream.cli import main

sys.exit(main())
