"""The U-Net kinds (:class:`UNetAE`): ``unet`` (reconstruction) and ``dunet`` (the denoising U-Net)."""
from __future__ import annotations

import torch
from torch import nn

from tuneae.config import ModelConfig
from tuneae.models.base import ResidualDenoiser, check_model_config
from tuneae.models.blocks import double_conv, down, standardize


class UNetAE(ResidualDenoiser[list[torch.Tensor]]):
    """U-Net autoencoder: skip connections between encoder and decoder at every scale (Ronneberger et al. 2015,
    "U-Net: Convolutional Networks for Biomedical Image Segmentation", MICCAI).

    Stage i (0 <= i < depth) holds base_channels * 2**i channels at side S / 2**i; the bottleneck holds
    base_channels * 2**depth at side S / 2**depth. Down: stride-2 conv; up: ConvTranspose(2, stride 2), concatenated
    with the encoder's feature map of the same scale, then a double conv. The head predicts the noise in PIXEL space
    and the estimate is ``x - head(h)`` (residual learning, DnCNN: Zhang et al. 2017, "Beyond a Gaussian Denoiser",
    IEEE TIP 26(7)), the head initialised to zero so training starts from the identity. No sigmoid or logit: the
    noisy input of unclipped AWGN leaves [0, 1], where a logit-space residual has no meaning and a final sigmoid
    saturates. The loss (``cfg.recon_loss``, MSE by default) is taken on the unclamped estimate, so gradients reach
    every pixel; the image ``forward`` and ``objective`` return is that estimate clamped to [0, 1], the clean
    image's range (a projection that can only lower the error to a target in [0, 1]). ``kind="unet"`` trains it as a
    reconstructor (clean input; it can copy through its skips, so it is no bottleneck model), ``kind="dunet"`` as
    a denoiser (noisy input, clean target). Fully convolutional: any input side divisible by 2**depth works (so
    training on random crops does). ``latent_dim``, ``latent_layout`` and ``residual`` are unused.

    ``encode`` returns every scale's feature map (the skips and the bottleneck); ``decode`` takes that list.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        check_model_config(cfg)
        self.cfg = cfg
        k, nm = cfg.kernel_size, cfg.norm
        chans = [cfg.base_channels * 2 ** i for i in range(cfg.depth + 1)]  # e.g. [32, 64, 128, 256, 512]
        self.chans = chans
        self.stem = double_conv(1, chans[0], k, nm)
        self.down = nn.ModuleList(down(chans[i], chans[i], k, nm) for i in range(cfg.depth))
        self.enc = nn.ModuleList(double_conv(chans[i], chans[i + 1], k, nm) for i in range(cfg.depth))
        self.up = nn.ModuleList(nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2) for i in range(cfg.depth))
        self.dec = nn.ModuleList(double_conv(2 * chans[i], chans[i], k, nm) for i in range(cfg.depth))
        self.head = nn.Conv2d(chans[0], 1, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, 1, S, S) -> [(B, c_0, S, S), (B, c_1, S/2, S/2), ..., bottleneck (B, c_d, S/2**d, S/2**d)]."""
        return self._encode(x)

    def _encode(self, x: torch.Tensor, keep: list | None = None) -> list[torch.Tensor]:
        """:meth:`encode`; ``keep``, when given, receives ``("encoder.stem", ...)``, ``("encoder.0", ...)``, ..."""
        h = standardize(x) if self.cfg.input_norm == "standardize" else x
        h = self.stem(h)  # (B, c_0, S, S)
        feats = [h]
        if keep is not None:
            keep.append(("encoder.stem", h))
        for i, (dn, enc) in enumerate(zip(self.down, self.enc)):
            h = enc(dn(h))  # (B, c_{i+1}, S / 2**(i+1), S / 2**(i+1))
            feats.append(h)
            if keep is not None:
                keep.append((f"encoder.{i}", h))
        return feats

    def _noise(self, feats: list[torch.Tensor], keep: list | None = None) -> torch.Tensor:
        h = feats[-1]
        for i in reversed(range(self.cfg.depth)):
            h = self.up[i](h)  # (B, c_i, S / 2**i, S / 2**i)
            h = self.dec[i](torch.cat([h, feats[i]], dim=1))  # skip connection: (B, 2 c_i, ...) -> (B, c_i, ...)
            if keep is not None:
                keep.append((f"decoder.{self.cfg.depth - 1 - i}", h))
        return self.head(h)  # (B, 1, S, S) predicted noise on the [0, 1] pixel scale

    def decode(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """Feature list from ``encode`` -> the predicted noise (B, 1, S, S) on the [0, 1] pixel scale (unbounded).

        Without the input image there is nothing to subtract it from, so this is only meaningful for visualisation;
        ``forward`` is the reconstruction.
        """
        return self._noise(feats)

    def estimate(self, x: torch.Tensor, keep: list | None = None) -> torch.Tensor:
        """Unclamped clean estimate ``x - predicted noise`` (pixel-space residual, DnCNN).

        Args:
            x: (B, 1, S, S) input, any real values (unclipped noise leaves [0, 1]).
            keep: receives every stage's activation, as in :meth:`forward_intermediates`.
        Returns:
            (B, 1, S, S) on the [0, 1] scale, not clamped.
        """
        return x - self._noise(self._encode(x, keep), keep)



    def forward_intermediates(self, x: torch.Tensor) -> tuple[torch.Tensor, list[tuple[str, torch.Tensor]]]:
        """Output plus every encoder and decoder stage's activation (after its last LeakyReLU), for the report.

        Args:
            x: (B, 1, S, S) (noisy for ``dunet``: any real values).
        Returns:
            (output (B, 1, S, S) in [0, 1], equal to ``forward(x)``, and [(name, activation), ...] in network order,
            with c_i = base_channels * 2**i and d = depth: ``encoder.stem`` (B, c_0, S, S); ``encoder.i``
            (B, c_{i+1}, S / 2**(i+1), S / 2**(i+1)) for i < d; ``decoder.j`` (B, c_{d-1-j}, S / 2**(d-1-j),
            S / 2**(d-1-j)) for j < d, after the skip concatenation and double conv; last ``("output", output)``).
        """
        keep: list[tuple[str, torch.Tensor]] = []
        out = self.estimate(x, keep).clamp(0.0, 1.0)
        keep.append(("output", out))
        return out, keep
