"""uint8 images to float tensors (the noise of the denoising kinds is in :mod:`tuneae.noise`)."""
from __future__ import annotations

import numpy as np
import torch


def to_float(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 images (B, 1, S, S) in [0, 255] -> float32 in [0, 1], same shape and device.

    Raises:
        TypeError: x is not uint8 (a float input would silently be scaled twice).
    """
    t = torch.as_tensor(x)
    if t.dtype != torch.uint8:
        raise TypeError(f"to_float expects uint8 images, got {t.dtype}")
    return t.float().div_(255.0)
