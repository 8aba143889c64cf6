"""Apply a trained tuneae model to MRI files: ``python -m tuneae.denoise INPUT... --out DIR``.

* :mod:`tuneae.denoise.formats`: files (PNG / JPEG / TIFF, DICOM, NIfTI) to slices on the model's [0, 1] scale and
  back to the same format, grid, dtype and metadata.
* :mod:`tuneae.denoise.model`: pick a run's best model or load a checkpoint; apply it at native resolution (U-Nets)
  or resized (every kind).
* :mod:`tuneae.denoise.cli`: the command line (inputs checked before any model is loaded, ``denoise.json``).
"""
from __future__ import annotations

from tuneae.denoise.formats import Decoded, NotAnImageError, UnreadableError, Window, read
from tuneae.denoise.model import RESOLUTIONS, Denoiser, ModelError, load_denoiser

__all__ = ["RESOLUTIONS", "Decoded", "Denoiser", "ModelError", "NotAnImageError", "UnreadableError", "Window",
           "load_denoiser", "read"]
