"""``python -m tuneae.search``: see :func:`tuneae.search.run.main`."""
import sys

from tuneae.search.run import main

sys.exit(main())
