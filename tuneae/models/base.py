"""The interface every model kind honours (:class:`Autoencoder`), the kind sets, and the config check."""
from __future__ import annotations

from typing import Generic, TypeVar

import torch
from torch import nn

from tuneae.config import MODEL_KINDS, ModelConfig
from tuneae.losses import RECON_LOSSES, SSIM_WINDOW, reconstruction_loss
from tuneae.models.blocks import LATENT_LAYOUTS, spatial_code_shape

Code = TypeVar("Code")
"""What a model's ``encode`` returns and its ``decode`` takes."""

BOTTLENECK = frozenset({"ae", "vae", "dae"})
"""Kinds whose only path from input to output is the ``latent_dim`` bottleneck."""

DENOISING = frozenset({"dae", "dunet", "dncnn"})
"""Kinds the training loop feeds a noisy input with the clean image as target."""

FULLY_CONVOLUTIONAL = frozenset({"unet", "dunet", "dncnn"})
"""Kinds without a dense layer: they take any input side that is a multiple of :func:`size_step` (random crops,
native resolution in ``python -m tuneae.denoise``)."""

FLAT = frozenset({"dncnn"})
"""Kinds without down-sampling: ``model.depth`` counts their convolution layers, not stride-2 stages."""

DNCNN_MIN_DEPTH = 2
"""Fewest convolution layers of a ``dncnn`` (the first and the last)."""


def size_step(kind: str, depth: int) -> int:
    """The number an input side must be a multiple of: ``2**depth`` for the kinds that halve the side ``depth``
    times, 1 for the kinds in :data:`FLAT` (no down-sampling)."""
    return 1 if kind in FLAT else 2 ** depth


def stride_stages(kind: str, depth: int) -> int:
    """How often a kind halves the input side: ``depth``, or 0 for the kinds in :data:`FLAT`."""
    return 0 if kind in FLAT else depth

UNUSED_BY_KIND: dict[str, frozenset[str]] = {
    kind: frozenset(({"model.latent_dim", "model.latent_layout", "model.residual"} if kind not in BOTTLENECK else set())
                    | ({"model.recon_loss"} if kind == "vae" else set())
                    | ({"train.noise_sigma_min", "train.noise_sigma_max", "train.val_noise_sigma"}
                       if kind not in DENOISING else set()))
    for kind in MODEL_KINDS
}
"""Config keys that have no effect for a kind; the search leaves them out of that kind's space."""


def check_model_config(cfg: ModelConfig) -> None:
    """Validate a model config before any compute is spent.

    Raises:
        ValueError: naming the field and value: unknown kind / norm / input_norm / latent_layout / recon_loss, an
            ``image_size`` not divisible by ``2**depth`` (:func:`size_step`), a non-positive size, a ``dncnn`` of
            fewer than ``DNCNN_MIN_DEPTH`` layers, a spatial code that does not tile
            (:func:`tuneae.models.blocks.spatial_code_shape`), or images smaller than the SSIM window for
            ``l1_ssim``.
    """
    if cfg.kind not in MODEL_KINDS:
        raise ValueError(f"model.kind={cfg.kind!r} is unknown; choose one of {sorted(MODEL_KINDS)}")
    if cfg.depth < 1 or cfg.base_channels < 1 or cfg.latent_dim < 1 or cfg.image_size < 1:
        raise ValueError(f"model sizes must be positive: depth={cfg.depth}, base_channels={cfg.base_channels}, "
                         f"latent_dim={cfg.latent_dim}, image_size={cfg.image_size}")
    if cfg.kind in FLAT and cfg.depth < DNCNN_MIN_DEPTH:
        raise ValueError(f"model.depth={cfg.depth}: a {cfg.kind} needs at least {DNCNN_MIN_DEPTH} convolution layers "
                         f"(the paper: 17, or 20 for the blind DnCNN-B)")
    step = size_step(cfg.kind, cfg.depth)
    if cfg.image_size % step:
        raise ValueError(f"image_size={cfg.image_size} is not divisible by 2**depth={step} (depth={cfg.depth}); "
                         f"use e.g. {max(step, round(cfg.image_size / step) * step)}")
    if cfg.norm not in ("batch", "group", "none"):
        raise ValueError(f"model.norm={cfg.norm!r}; choose batch, group or none")
    if cfg.input_norm not in ("none", "standardize"):
        raise ValueError(f"model.input_norm={cfg.input_norm!r}; choose none or standardize")
    if cfg.kernel_size not in (3, 5):
        raise ValueError(f"model.kernel_size={cfg.kernel_size}; choose 3 or 5")
    if cfg.latent_layout not in LATENT_LAYOUTS:
        raise ValueError(f"model.latent_layout={cfg.latent_layout!r}; choose one of {list(LATENT_LAYOUTS)}")
    if cfg.latent_layout == "spatial" and cfg.kind in BOTTLENECK:
        spatial_code_shape(cfg.latent_dim, cfg.image_size, cfg.depth)
    if cfg.recon_loss not in RECON_LOSSES:
        raise ValueError(f"model.recon_loss={cfg.recon_loss!r}; choose one of {list(RECON_LOSSES)}")
    if cfg.recon_loss == "l1_ssim" and cfg.image_size < SSIM_WINDOW:
        raise ValueError(f"model.recon_loss='l1_ssim' needs model.image_size >= {SSIM_WINDOW} (the SSIM window), "
                         f"got {cfg.image_size}")


class Autoencoder(nn.Module, Generic[Code]):
    """The interface every model kind honours; ``Code`` is what ``encode`` returns and ``decode`` takes.

    Input and output are (B, 1, S, S) in [0, 1] with S = ``cfg.image_size`` divisible by :func:`size_step`. The
    training loop calls ``objective``, evaluation and the report call ``forward``, the report's feature maps
    ``forward_intermediates`` (timm's interface: every layer's activation without hooks). The default objective is
    ``cfg.recon_loss`` (mean squared error per pixel, the seed project's loss, by default); the VAE overrides it with
    its negative ELBO.
    """

    cfg: ModelConfig

    def encode(self, x: torch.Tensor) -> Code:
        """(B, 1, S, S) in [0, 1] -> the model's code (a latent vector, or a U-Net's feature maps)."""
        raise NotImplementedError

    def decode(self, code: Code) -> torch.Tensor:
        """The model's code -> an image (B, 1, S, S) (in [0, 1], except a U-Net's predicted noise)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S) in [0, 1] -> output (B, 1, S, S) in [0, 1]."""
        raise NotImplementedError

    def forward_intermediates(self, x: torch.Tensor) -> tuple[torch.Tensor, list[tuple[str, torch.Tensor]]]:
        """Output (B, 1, S, S) in [0, 1], equal to ``forward(x)``, and every encoder and decoder stage's activation
        ``[(name, (B, C, H, W)), ...]`` in network order, ending with ``("output", output)``."""
        raise NotImplementedError

    def objective(self, x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training loss: ``cfg.recon_loss`` (see :func:`tuneae.losses.reconstruction_loss`; fp32 under autocast).

        Args:
            x: input (B, 1, S, S) in [0, 1] (noisy for a denoising kind).
            target: clean image (B, 1, S, S) in [0, 1].
        Returns:
            (loss scalar, output (B, 1, S, S) in [0, 1]).
        """
        out = self(x)
        return reconstruction_loss(self.cfg.recon_loss, out, target), out


class ResidualDenoiser(Autoencoder[Code]):
    """A model whose network predicts the noise in pixel space: the clean estimate is ``x - R(x)`` (residual
    learning, Zhang et al. 2017, "Beyond a Gaussian Denoiser", IEEE TIP 26(7)). Subclasses define ``estimate``.

    The loss is taken on the UNCLAMPED estimate, so gradients reach every pixel (unclipped noise leaves [0, 1]);
    ``forward`` and the image ``objective`` returns are the estimate clamped to [0, 1], the clean image's range.
    """

    def estimate(self, x: torch.Tensor, keep: list | None = None) -> torch.Tensor:
        """(B, 1, H, W) input, any real values -> the unclamped clean estimate (B, 1, H, W) on the [0, 1] scale;
        ``keep`` receives every layer's activation, as in :meth:`forward_intermediates`."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) input (any real values) -> output (B, 1, H, W) in [0, 1]: the estimate clamped to [0, 1]."""
        return self.estimate(x).clamp(0.0, 1.0)

    def objective(self, x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training loss ``cfg.recon_loss`` on the unclamped estimate (fp32 under autocast).

        Args:
            x: input (B, 1, H, W) (noisy for a denoising kind), any real values.
            target: clean image (B, 1, H, W) in [0, 1].
        Returns:
            (loss scalar, output (B, 1, H, W) clamped to [0, 1], equal to ``forward(x)``).
        """
        est = self.estimate(x)
        return reconstruction_loss(self.cfg.recon_loss, est, target), est.clamp(0.0, 1.0)
