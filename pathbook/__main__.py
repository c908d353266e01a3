"""`python -m pathbook`: the same command as the `pathbook` console script."""

import sys

from .cli import main

sys.exit(main())
