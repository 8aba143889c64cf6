"""The bottleneck kinds on the seed project's stack: :class:`ConvAutoencoder` (``ae``, ``dae``) and :class:`VAE`
(``vae``).

    encoder  (B, 1, 128, 128) -conv-> (B, 32, 64, 64) -> 64@32 -> 128@16 -> 256@8 -> (B, 512, 4, 4) -flatten-> code
    decoder  code -> (B, 512, 4, 4) -convT-> 256@8 -> 128@16 -> 64@32 -> 32@64 -convT-> (B, 1, 128, 128), sigmoid

Options (searched): ``latent_layout`` ``dense`` (Linear heads, the seed project's) or ``spatial`` (a C x h x w code
map of the same ``latent_dim`` numbers, conv heads; :mod:`tuneae.models.blocks`), ``residual`` (a residual block after
every stage), and, except for the VAE, ``recon_loss`` (:mod:`tuneae.losses`).
"""
from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from tuneae.config import ModelConfig
from tuneae.models.base import Autoencoder, check_model_config
from tuneae.models.blocks import down, from_code, maybe_residual, standardize, to_code, up


class ConvAutoencoder(Autoencoder[torch.Tensor]):
    """The seed project's convolutional autoencoder (kinds ``ae`` and ``dae``), loss ``cfg.recon_loss`` (MSE by
    default).

    Input and output are (B, 1, S, S) in [0, 1] with S = ``cfg.image_size`` divisible by ``2**cfg.depth``.
    The bottleneck is a code of ``cfg.latent_dim`` numbers: a vector (``latent_layout="dense"``) or a C x h x w map
    (``"spatial"``, see :mod:`tuneae.models.blocks`), (B, latent_dim) either way once flattened. ``cfg.residual``
    adds a :class:`tuneae.models.blocks.ResBlock` after every encoder and decoder stage. Also the denoising
    autoencoder (``kind="dae"``, Vincent et al. 2010, "Stacked Denoising Autoencoders", JMLR 11): the same network,
    trained by the training loop on a noisy input with the clean image as target.

    Raises:
        ValueError: an invalid config (see :func:`tuneae.models.check_model_config`).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        check_model_config(cfg)
        self.cfg = cfg
        chans = [cfg.base_channels * 2 ** i for i in range(cfg.depth)]  # seed: [32, 64, 128, 256, 512]
        self.chans = chans
        self.bottom = cfg.image_size // 2 ** cfg.depth  # seed: 128 // 32 = 4 pixels
        k, nm, res = cfg.kernel_size, cfg.norm, cfg.residual
        self.encoder = nn.ModuleList(
            maybe_residual(down(cin, cout, k, nm), cout, k, nm, res) for cin, cout in zip([1, *chans[:-1]], chans))
        flat = chans[-1] * self.bottom ** 2  # seed: 512 * 4 * 4 = 8192
        self.to_latent = self._latent_head(flat)
        # dense: Linear (B, L) -> (B, flat); spatial: conv (B, C, b, b) -> (B, C_last, b, b), flattened
        self.from_latent = from_code(cfg.latent_layout, chans[-1], self.bottom, cfg.latent_dim)
        rev = chans[::-1]  # [512, 256, 128, 64, 32]
        self.decoder = nn.ModuleList(
            maybe_residual(up(cin, cout, nm), cout, k, nm, res) for cin, cout in itertools.pairwise(rev))
        self.head = nn.ConvTranspose2d(chans[0], 1, 4, stride=2, padding=1)  # -> (B, 1, S, S) logits

    def _latent_head(self, flat: int) -> nn.Module:  # (B, flat) -> (B, latent_dim), dense or spatial
        return to_code(self.cfg.latent_layout, self.chans[-1], self.bottom, self.cfg.latent_dim)

    def _features(self, x: torch.Tensor, keep: list | None = None) -> torch.Tensor:
        """(B, 1, S, S) in [0, 1] -> (B, C_last * b * b) flattened encoder output."""
        h = standardize(x) if self.cfg.input_norm == "standardize" else x
        for i, block in enumerate(self.encoder):
            h = block(h)  # (B, C_i, S / 2**(i+1), S / 2**(i+1))
            if keep is not None:
                keep.append((f"encoder.{i}", h))
        return h.flatten(1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S) in [0, 1] -> latent code (B, latent_dim) (a spatial code flattened channel-major)."""
        return self.to_latent(self._features(x))

    def _decode_logits(self, z: torch.Tensor, keep: list | None = None) -> torch.Tensor:
        h = self.from_latent(z).view(-1, self.chans[-1], self.bottom, self.bottom)  # (B, C_last, b, b)
        for i, block in enumerate(self.decoder):
            h = block(h)  # side doubles each stage
            if keep is not None:
                keep.append((f"decoder.{i}", h))
        return self.head(h)  # (B, 1, S, S) logits

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent (B, latent_dim) -> reconstruction (B, 1, S, S) in [0, 1]."""
        return torch.sigmoid(self._decode_logits(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S) in [0, 1] -> reconstruction (B, 1, S, S) in [0, 1]."""
        return self.decode(self.encode(x))

    def forward_intermediates(self, x: torch.Tensor) -> tuple[torch.Tensor, list[tuple[str, torch.Tensor]]]:
        """Reconstruction plus every encoder and decoder stage's activation (after its LeakyReLU).

        Args:
            x: (B, 1, S, S) in [0, 1].
        Returns:
            (reconstruction (B, 1, S, S), [(name, (B, C, H, W)), ...]) in network order, ending with
            ``("output", reconstruction)``. For the VAE the latent mean is used (no sampling).
        """
        keep: list[tuple[str, torch.Tensor]] = []
        z = self._code_for_report(self._features(x, keep))
        recon = torch.sigmoid(self._decode_logits(z, keep))
        keep.append(("output", recon))
        return recon, keep

    def _code_for_report(self, flat: torch.Tensor) -> torch.Tensor:
        return self.to_latent(flat)


class VAE(ConvAutoencoder):
    """Variational autoencoder on the same stack (Kingma & Welling 2014, "Auto-Encoding Variational Bayes").

    The encoder gives a diagonal Gaussian q(z|x) = N(mu, exp(logvar)); z is drawn by the reparameterization trick
    z = mu + exp(logvar / 2) * eps, eps ~ N(0, I). The decoder is a Bernoulli likelihood over pixels in [0, 1].
    In eval mode ``forward`` decodes the mean (a deterministic reconstruction, used for val/mse and the report).
    With ``latent_layout="spatial"`` mu and logvar come from one 3 x 3 conv head of 2C channels (C x h x w maps,
    :mod:`tuneae.models.blocks`), flattened to (B, latent_dim) each, so the reparameterization and the KL term run
    element-wise on every one of the latent_dim numbers in either layout. ``cfg.recon_loss`` is ignored: the loss
    is the negative ELBO.
    """

    def _latent_head(self, flat: int) -> nn.Module:  # -> [mu, logvar], (B, 2 * latent_dim), channel-major halves
        return to_code(self.cfg.latent_layout, self.chans[-1], self.bottom, self.cfg.latent_dim, heads=2)

    def encode_dist(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 1, S, S) in [0, 1] -> (mu, logvar), each (B, latent_dim); logvar clamped to [-30, 20]."""
        mu, logvar = self.to_latent(self._features(x)).chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S) in [0, 1] -> the posterior mean mu (B, latent_dim)."""
        return self.encode_dist(x)[0]

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """z = mu + sigma * eps, eps ~ N(0, I) (Kingma & Welling 2014, section 2.4). Shapes (B, latent_dim)."""
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S) in [0, 1] -> reconstruction in [0, 1]; sampled z in training mode, z = mu in eval mode."""
        mu, logvar = self.encode_dist(x)
        return self.decode(self.reparameterize(mu, logvar) if self.training else mu)

    def objective(self, x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Negative ELBO in nats per image: BCE summed over pixels + KL(q(z|x) || N(0, I)), averaged over the batch.

        KL = -1/2 * sum(1 + logvar - mu^2 - exp(logvar)) (Kingma & Welling 2014, appendix B), summed over all
        latent_dim numbers (every cell of a spatial code). Averaging over the batch (the seed summed) makes the loss
        comparable across batch sizes. Loss terms in fp32 under autocast.

        Args:
            x: input (B, 1, S, S) in [0, 1]; z is sampled in training mode, z = mu in eval mode.
            target: image (B, 1, S, S) in [0, 1], the Bernoulli likelihood's (soft) targets.
        Returns:
            (loss scalar in nats per image, reconstruction (B, 1, S, S) in [0, 1]).
        """
        mu, logvar = self.encode_dist(x)  # (B, L) each
        z = self.reparameterize(mu, logvar) if self.training else mu
        logits = self._decode_logits(z).float()  # (B, 1, S, S)
        mu, logvar = mu.float(), logvar.float()
        bce = F.binary_cross_entropy_with_logits(logits, target.float(), reduction="none").flatten(1).sum(1)  # (B,)
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)  # (B,)
        return (bce + kl).mean(), torch.sigmoid(logits)

    def _code_for_report(self, flat: torch.Tensor) -> torch.Tensor:
        return self.to_latent(flat).chunk(2, dim=1)[0]

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw n images from the prior: z ~ N(0, I) -> decode. Returns (n, 1, S, S) in [0, 1]."""
        p = next(self.parameters())
        z = torch.randn(n, self.cfg.latent_dim, generator=generator).to(p.device, p.dtype)
        return self.decode(z)
