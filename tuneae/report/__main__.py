"""``python -m tuneae.report``: see :func:`tuneae.report.make.main`."""
import sys

from tuneae.report.make import main

sys.exit(main())
