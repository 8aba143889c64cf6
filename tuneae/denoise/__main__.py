"""``python -m tuneae.denoise``: see :mod:`tuneae.denoise.cli`."""
from tuneae.denoise.cli import main

raise SystemExit(main())
