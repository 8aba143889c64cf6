"""Convolutional autoencoders: AE, VAE and denoising AE on one shared encoder/decoder stack, and U-Nets.

Kinds (:data:`MODELS`): ``ae``, ``vae`` and ``dae`` (denoising AE) squeeze every image through a code of
``latent_dim`` numbers (:mod:`tuneae.models.bottleneck`: the seed project's stack, with a dense or spatial code and
optional residual blocks); ``unet`` and ``dunet`` (:mod:`tuneae.models.unet`) have skip connections between encoder and
decoder at every scale (Ronneberger et al. 2015), ``dunet`` being the denoising U-Net (noisy input, clean target,
residual learning in pixel space); ``dncnn`` (:mod:`tuneae.models.dncnn`) is DnCNN (Zhang et al. 2017), a plain
stack of stride-1 convolutions that predicts the noise, without down-sampling (``model.depth`` counts its layers).

Every kind honours one interface, :class:`Autoencoder` (:mod:`tuneae.models.base`): ``encode``, ``decode``,
``forward`` (output in [0, 1]), ``objective`` (its own training loss) and ``forward_intermediates`` (every layer's
activation, for the report's feature maps). :class:`ConvAutoencoder` (ae, dae) and :class:`VAE` share the
bottleneck stack; :class:`UNetAE` and :class:`DnCNN` are siblings, not a subclass of them. Building blocks live in
:mod:`tuneae.models.blocks`, training losses in :mod:`tuneae.losses`. Pure PyTorch: nothing here imports Ray.
"""
from __future__ import annotations

from tuneae.config import ModelConfig
from tuneae.models.base import (
    BOTTLENECK,
    DENOISING,
    FLAT,
    FULLY_CONVOLUTIONAL,
    UNUSED_BY_KIND,
    Autoencoder,
    Code,
    ResidualDenoiser,
    check_model_config,
    size_step,
    stride_stages,
)
from tuneae.models.blocks import LATENT_LAYOUTS, LEAKY_SLOPE, standardize
from tuneae.models.bottleneck import VAE, ConvAutoencoder
from tuneae.models.dncnn import DnCNN
from tuneae.models.unet import UNetAE

__all__ = ["BOTTLENECK", "DENOISING", "FLAT", "FULLY_CONVOLUTIONAL", "LATENT_LAYOUTS", "LEAKY_SLOPE", "MODELS",
           "UNUSED_BY_KIND", "VAE", "Autoencoder", "Code", "ConvAutoencoder", "DnCNN", "ResidualDenoiser", "UNetAE",
           "build_model", "check_model_config", "size_step", "standardize", "stride_stages"]

MODELS: dict[str, type[Autoencoder]] = {"ae": ConvAutoencoder, "vae": VAE, "dae": ConvAutoencoder,
                                          "unet": UNetAE, "dunet": UNetAE, "dncnn": DnCNN}
"""Model kind -> class. ``dae`` / ``dunet`` / ``dncnn`` are trained on noisy input (see ``DENOISING``)."""


def build_model(cfg: ModelConfig) -> Autoencoder:
    """Build the model of ``cfg.kind``.

    Raises:
        ValueError: an invalid config, naming the field (see :func:`check_model_config`).
    """
    check_model_config(cfg)
    return MODELS[cfg.kind](cfg)
