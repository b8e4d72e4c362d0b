"""``python -m convnext_report train ...``: see :mod:`convnext_report.cli`."""

import sys

from .cli import main

sys.exit(main())
