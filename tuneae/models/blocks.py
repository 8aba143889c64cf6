"""Building blocks of the autoencoders: conv stages, normalization, the residual block, the latent heads.

Latent layout (``ModelConfig.latent_layout``), for ``ae``, ``vae`` and ``dae``; either way the code holds exactly
``latent_dim`` numbers and ``encode`` returns it flattened, (B, latent_dim), so the code size is like for like:

- ``dense`` (the seed project's): flatten the encoder's last map (B, C_last, b, b) and map it with a Linear layer to the
  code; the decoder starts with a Linear layer back to (B, C_last * b * b). Every code unit sees the whole image.
- ``spatial``: the code is a small map (B, C, h, w) with h = w = b, the encoder's last grid, b = image_size /
  2**depth, and C = latent_dim / b**2 channels; a 3 x 3 convolution maps (B, C_last, b, b) to it and another one
  back, so the code keeps where things are (as learned image compression does, e.g. Balle et al. 2018,
  "Variational Image Compression with a Scale Hyperprior", ICLR). Examples at 128 px: depth 4 (b = 8) and
  latent_dim 2048 -> 32 x 8 x 8; depth 5 (b = 4) and 512 -> 32 x 4 x 4. latent_dim must be a multiple of b**2
  (:func:`spatial_code_shape` refuses the rest, naming the fields). The flattened code is channel-major, so the
  VAE's head of 2C channels splits into mean and log-variance maps with the same ``chunk(2, dim=1)`` as the dense
  head.
"""
from __future__ import annotations

import torch
from torch import nn

LATENT_LAYOUTS = ("dense", "spatial")
"""Choices of ``ModelConfig.latent_layout``."""

LEAKY_SLOPE = 0.2
"""Negative slope of every LeakyReLU."""


def norm_layer(kind: str, channels: int) -> nn.Module:
    """The normalization after a hidden conv: ``batch`` (BatchNorm2d), ``group`` (GroupNorm, min(8, C) groups,
    Wu & He 2018) or ``none`` (identity). Input and output (B, channels, H, W)."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    return nn.Identity()


def down(cin: int, cout: int, k: int, norm: str) -> nn.Sequential:
    """Conv(k, stride 2, 'same' padding) + norm + LeakyReLU: halves the side, (B, cin, H, W) -> (B, cout, H/2, W/2)."""
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride=2, padding=k // 2), norm_layer(norm, cout),
                         nn.LeakyReLU(LEAKY_SLOPE))


def up(cin: int, cout: int, norm: str) -> nn.Sequential:
    """ConvTranspose(4, stride 2, padding 1) + norm + LeakyReLU: doubles the side, (B, cin, H, W) -> (B, cout, 2H,
    2W)."""
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1), norm_layer(norm, cout),
                         nn.LeakyReLU(LEAKY_SLOPE))


def double_conv(cin: int, cout: int, k: int, norm: str) -> nn.Sequential:
    """Two Conv(k, stride 1, 'same') + norm + LeakyReLU: keeps the side (the U-Net block), (B, cin, H, W) ->
    (B, cout, H, W)."""
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2), norm_layer(norm, cout), nn.LeakyReLU(LEAKY_SLOPE),
                         nn.Conv2d(cout, cout, k, padding=k // 2), norm_layer(norm, cout), nn.LeakyReLU(LEAKY_SLOPE))


def standardize(x: torch.Tensor) -> torch.Tensor:
    """Per-image standardization: (x - mean) / std over each image's pixels.

    Args:
        x: (B, C, H, W) float.
    Returns:
        (B, C, H, W) with zero mean and unit variance per image (std floored at 1e-6).
    """
    mean = x.mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
    std = x.std(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)
    return (x - mean) / std


class ResBlock(nn.Module):
    """Residual block at one scale (He et al. 2016, "Deep Residual Learning for Image Recognition", the basic block):
    ``act(x + norm(conv(act(norm(conv(x))))))`` with two k x k 'same' convolutions and LeakyReLU activations.

    Args:
        channels: C of the input and output.
        kernel_size: odd conv kernel side (3 or 5).
        norm: ``batch``, ``group`` or ``none`` (see :func:`norm_layer`).
    Shapes: (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self, channels: int, kernel_size: int, norm: str):
        super().__init__()
        k = kernel_size
        self.body = nn.Sequential(nn.Conv2d(channels, channels, k, padding=k // 2), norm_layer(norm, channels),
                                  nn.LeakyReLU(LEAKY_SLOPE),
                                  nn.Conv2d(channels, channels, k, padding=k // 2), norm_layer(norm, channels))
        self.act = nn.LeakyReLU(LEAKY_SLOPE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        return self.act(x + self.body(x))


def maybe_residual(stage: nn.Sequential, channels: int, kernel_size: int, norm: str, residual: bool) -> nn.Sequential:
    """``stage`` itself, or ``stage`` followed by a :class:`ResBlock` on its ``channels`` output when ``residual``.

    Without ``residual`` the module (and so its checkpoint keys) is exactly the seed project's.
    """
    return nn.Sequential(*stage, ResBlock(channels, kernel_size, norm)) if residual else stage


def spatial_code_shape(latent_dim: int, image_size: int, depth: int) -> tuple[int, int, int]:
    """The (C, h, w) of a spatial code of ``latent_dim`` numbers: h = w = image_size / 2**depth, C = latent_dim / h**2.

    Args:
        latent_dim: numbers in the code (>= 1).
        image_size: input side in pixels, divisible by 2**depth.
        depth: stride-2 encoder stages.
    Returns:
        (C, h, w) with C * h * w == latent_dim.
    Raises:
        ValueError: latent_dim is not a multiple of h * w, naming the fields and the nearest valid latent_dim.
    """
    side = image_size // 2 ** depth
    cells = side * side
    if latent_dim % cells:
        near = max(cells, round(latent_dim / cells) * cells)
        raise ValueError(
            f"model.latent_layout='spatial' needs model.latent_dim to be a multiple of (image_size / 2**depth)**2 = "
            f"{cells} (model.image_size={image_size}, model.depth={depth}, code grid {side} x {side}); "
            f"model.latent_dim={latent_dim} is not: use e.g. {near}, another depth, or latent_layout='dense'")
    return latent_dim // cells, side, side


def to_code(layout: str, c_last: int, side: int, latent_dim: int, heads: int = 1) -> nn.Module:
    """The encoder's head: flattened last map (B, c_last * side**2) -> (B, heads * latent_dim).

    ``heads`` = 2 for the VAE (mean and log-variance, channel-major halves). Dense: one Linear. Spatial: unflatten,
    3 x 3 conv to heads * C channels (see :func:`spatial_code_shape`), flatten.
    """
    if layout == "dense":
        return nn.Linear(c_last * side * side, heads * latent_dim)
    c = latent_dim // (side * side)
    return nn.Sequential(nn.Unflatten(1, (c_last, side, side)), nn.Conv2d(c_last, heads * c, 3, padding=1),
                         nn.Flatten(1))


def from_code(layout: str, c_last: int, side: int, latent_dim: int) -> nn.Module:
    """The decoder's head: code (B, latent_dim) -> flattened map (B, c_last * side**2) that the decoder unflattens.

    Dense: one Linear. Spatial: unflatten to (B, C, side, side), 3 x 3 conv to c_last channels, flatten.
    """
    if layout == "dense":
        return nn.Linear(latent_dim, c_last * side * side)
    c = latent_dim // (side * side)
    return nn.Sequential(nn.Unflatten(1, (c, side, side)), nn.Conv2d(c, c_last, 3, padding=1), nn.Flatten(1))
