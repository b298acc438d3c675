"""``python -m mat2grad.cli``: the same as ``python -m mat2grad``."""

import sys

from . import main

sys.exit(main())
