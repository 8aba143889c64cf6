"""DnCNN (:class:`DnCNN`, kind ``dncnn``): a plain stack of 'same' convolutions that predicts the noise."""
from __future__ import annotations

import torch
from torch import nn

from tuneae.config import ModelConfig
from tuneae.models.base import ResidualDenoiser, check_model_config
from tuneae.models.blocks import norm_layer, standardize


class DnCNN(ResidualDenoiser[torch.Tensor]):
    """The denoising CNN of Zhang, Zuo, Chen, Meng & Zhang 2017 ("Beyond a Gaussian Denoiser: Residual Learning of
    Deep CNN for Image Denoising", IEEE TIP 26(7), section III-A and Fig. 1).

    ``cfg.depth`` = D convolution layers, all stride 1 with 'same' padding, so every map keeps the input's side:
    layer 1 Conv(1 -> C) + ReLU, layers 2 .. D-1 Conv(C -> C) + norm + ReLU (the paper's BatchNorm with
    ``cfg.norm = "batch"``; ``group`` / ``none`` as in :func:`tuneae.models.blocks.norm_layer`), layer D
    Conv(C -> 1), with C = ``cfg.base_channels`` (the paper: 64) and k x k kernels, k = ``cfg.kernel_size`` (the
    paper: 3). The paper uses D = 17 for a known sigma and D = 20 for its blind model DnCNN-B (receptive field
    (2D + 1) px = 35 / 41 at k = 3); tuneae trains it blind over [train.noise_sigma_min, train.noise_sigma_max].

    Residual learning: the network R predicts the noise and the clean estimate is ``x - R(x)``; the paper's loss
    ``1/(2N) sum ||R(y_i) - (y_i - x_i)||^2`` equals half the squared error of that estimate, so training takes
    ``cfg.recon_loss`` (MSE by default) on the unclamped estimate, as the U-Nets do (:class:`tuneae.models.UNetAE`).
    The last layer starts at zero, so training starts from the identity (the paper initialises every layer as He et
    al. 2015; the hidden layers here keep PyTorch's Kaiming-uniform default). ``forward`` clamps the estimate to
    [0, 1]. Fully convolutional without down-sampling: any input side works (random crops of any size, native
    resolution in ``python -m tuneae.denoise``). ``latent_dim``, ``latent_layout`` and ``residual`` are unused.

    ``encode`` returns the last hidden map (B, C, S, S); ``decode`` maps it to the predicted noise.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        check_model_config(cfg)
        self.cfg = cfg
        k, c, pad, bias = cfg.kernel_size, cfg.base_channels, cfg.kernel_size // 2, cfg.norm == "none"
        hidden = [nn.Sequential(nn.Conv2d(1, c, k, padding=pad), nn.ReLU())]
        hidden += [nn.Sequential(nn.Conv2d(c, c, k, padding=pad, bias=bias), norm_layer(cfg.norm, c), nn.ReLU())
                   for _ in range(cfg.depth - 2)]
        self.hidden = nn.ModuleList(hidden)  # D - 1 layers, each (B, *, S, S) -> (B, C, S, S)
        self.head = nn.Conv2d(c, 1, k, padding=pad)  # layer D: (B, C, S, S) -> (B, 1, S, S) predicted noise
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def _features(self, x: torch.Tensor, keep: list | None = None) -> torch.Tensor:
        h = standardize(x) if self.cfg.input_norm == "standardize" else x
        for i, layer in enumerate(self.hidden):
            h = layer(h)  # (B, C, S, S)
            if keep is not None:
                keep.append((f"layer.{i}", h))
        return h

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S) input (any real values) -> the last hidden map (B, C, S, S), C = ``cfg.base_channels``."""
        return self._features(x)

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) from ``encode`` -> the predicted noise (B, 1, S, S) on the [0, 1] pixel scale (unbounded).

        Without the input there is nothing to subtract it from: only for visualisation; ``forward`` denoises.
        """
        return self.head(code)

    def estimate(self, x: torch.Tensor, keep: list | None = None) -> torch.Tensor:
        """Unclamped clean estimate ``x - R(x)`` (residual learning).

        Args:
            x: (B, 1, H, W) noisy input on the [0, 1] scale, any real values (unclipped noise leaves [0, 1]); any
                H, W.
            keep: receives every hidden layer's activation, as in :meth:`forward_intermediates`.
        Returns:
            (B, 1, H, W) on the [0, 1] scale, not clamped.
        """
        return x - self.head(self._features(x, keep))



    def forward_intermediates(self, x: torch.Tensor) -> tuple[torch.Tensor, list[tuple[str, torch.Tensor]]]:
        """Output plus every hidden layer's activation (after its ReLU), for the report.

        Args:
            x: (B, 1, S, S) noisy input, any real values.
        Returns:
            (output (B, 1, S, S) in [0, 1], equal to ``forward(x)``, and ``[("layer.0", (B, C, S, S)), ...,
            ("layer.{D-2}", (B, C, S, S)), ("output", output)]`` with C = ``cfg.base_channels``, D = ``cfg.depth``).
        """
        keep: list[tuple[str, torch.Tensor]] = []
        out = self.estimate(x, keep).clamp(0.0, 1.0)
        keep.append(("output", out))
        return out, keep
