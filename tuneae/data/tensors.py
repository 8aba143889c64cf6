"""uint8 images to float tensors, and the Gaussian noise of the denoising kinds."""
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


def add_gaussian_noise(x: torch.Tensor, sigma: float | torch.Tensor,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """Add zero-mean Gaussian noise and clip to [0, 1].

    Args:
        x: images (B, ...) in [0, 1], float.
        sigma: standard deviation on the [0, 1] scale (0.1 = 10% of full range): a scalar, or (B,) per image.
        generator: seeds the noise; may live on another device than x (the noise is moved).

    Returns:
        x + sigma * N(0, 1), clipped to [0, 1]; same shape, dtype and device as x. sigma 0 returns x unchanged.

    Raises:
        ValueError: sigma is negative or its shape is neither () nor (B,).
    """
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if sigma.dim() == 1 and sigma.shape[0] == x.shape[0]:
        sigma = sigma.view(-1, *([1] * (x.dim() - 1)))  # (B,) -> (B, 1, 1, 1)
    elif sigma.dim() != 0:
        raise ValueError(f"sigma must be a scalar or have shape ({x.shape[0]},), got {tuple(sigma.shape)}")
    if bool((sigma < 0).any()):
        raise ValueError(f"sigma must be >= 0, got min {sigma.min().item()}")
    gen_device = generator.device if generator is not None else x.device
    noise = torch.randn(x.shape, generator=generator, device=gen_device, dtype=x.dtype).to(x.device)
    return (x + sigma * noise).clamp_(0.0, 1.0)
