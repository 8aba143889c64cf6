"""Convolutional autoencoders: AE, VAE and denoising AE on one shared encoder/decoder stack, and U-Nets.

Kinds (:data:`MODELS`): ``ae``, ``vae`` and ``dae`` (denoising AE) squeeze every image through a ``latent_dim``
vector; ``unet`` and ``dunet`` (:class:`UNetAE`) have skip connections between encoder and decoder at every scale
(Ronneberger et al. 2015), ``dunet`` being the denoising U-Net (noisy input, clean target).

The bottleneck stack is the seed project's (5 x stride-2 conv down, 5 x transposed conv up, LeakyReLU):

    encoder  (B, 1, 128, 128) -conv-> (B, 32, 64, 64) -> 64@32 -> 128@16 -> 256@8 -> (B, 512, 4, 4) -flatten-> Linear
    decoder  Linear -> (B, 512, 4, 4) -convT-> 256@8 -> 128@16 -> 64@32 -> 32@64 -convT-> (B, 1, 128, 128), sigmoid

Every model exposes ``encode``, ``decode``, ``forward`` (reconstruction in [0, 1]), ``objective`` (its own
training loss) and ``forward_intermediates`` (every layer's activation, for the report's feature maps).
Pure PyTorch: nothing here imports Ray.
"""
from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from tuneae.config import ModelConfig

LEAKY_SLOPE = 0.2
"""Negative slope of every LeakyReLU."""


def check_model_config(cfg: ModelConfig) -> None:
    """Validate a model config before any compute is spent.

    Raises:
        ValueError: naming the field and value: unknown kind / norm / input_norm, an ``image_size`` not divisible by
            ``2**depth``, or a non-positive size.
    """
    if cfg.kind not in MODELS:
        raise ValueError(f"model.kind={cfg.kind!r} is unknown; choose one of {sorted(MODELS)}")
    if cfg.depth < 1 or cfg.base_channels < 1 or cfg.latent_dim < 1 or cfg.image_size < 1:
        raise ValueError(f"model sizes must be positive: depth={cfg.depth}, base_channels={cfg.base_channels}, "
                         f"latent_dim={cfg.latent_dim}, image_size={cfg.image_size}")
    step = 2 ** cfg.depth
    if cfg.image_size % step:
        raise ValueError(f"image_size={cfg.image_size} is not divisible by 2**depth={step} (depth={cfg.depth}); "
                         f"use e.g. {max(step, round(cfg.image_size / step) * step)}")
    if cfg.norm not in ("batch", "group", "none"):
        raise ValueError(f"model.norm={cfg.norm!r}; choose batch, group or none")
    if cfg.input_norm not in ("none", "standardize"):
        raise ValueError(f"model.input_norm={cfg.input_norm!r}; choose none or standardize")
    if cfg.kernel_size not in (3, 5):
        raise ValueError(f"model.kernel_size={cfg.kernel_size}; choose 3 or 5")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    return nn.Identity()


def _down(cin: int, cout: int, k: int, norm: str) -> nn.Sequential:
    """Conv(k, stride 2, 'same' padding) + norm + LeakyReLU: halves the side."""
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride=2, padding=k // 2), _norm(norm, cout),
                         nn.LeakyReLU(LEAKY_SLOPE))


def _up(cin: int, cout: int, norm: str) -> nn.Sequential:
    """ConvTranspose(4, stride 2, padding 1) + norm + LeakyReLU: doubles the side."""
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1), _norm(norm, cout),
                         nn.LeakyReLU(LEAKY_SLOPE))


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


class Autoencoder(nn.Module):
    """The seed's convolutional autoencoder, loss MSE.

    Input and output are (B, 1, S, S) in [0, 1] with S = ``cfg.image_size`` divisible by ``2**cfg.depth``.
    The bottleneck is a ``cfg.latent_dim`` vector. Also the denoising autoencoder (``kind="dae"``, Vincent et al.
    2010, "Stacked Denoising Autoencoders", JMLR 11): the same network, trained by the training loop on a noisy
    input with the clean image as target.

    Raises:
        ValueError: an invalid config (see :func:`check_model_config`).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        check_model_config(cfg)
        self.cfg = cfg
        chans = [cfg.base_channels * 2 ** i for i in range(cfg.depth)]  # seed: [32, 64, 128, 256, 512]
        self.chans = chans
        self.bottom = cfg.image_size // 2 ** cfg.depth  # seed: 128 // 32 = 4 pixels
        self.encoder = nn.ModuleList(
            _down(cin, cout, cfg.kernel_size, cfg.norm) for cin, cout in zip([1, *chans[:-1]], chans))
        flat = chans[-1] * self.bottom ** 2  # seed: 512 * 4 * 4 = 8192
        self.to_latent = self._latent_head(flat)
        self.from_latent = nn.Linear(cfg.latent_dim, flat)
        rev = chans[::-1]  # [512, 256, 128, 64, 32]
        self.decoder = nn.ModuleList(_up(cin, cout, cfg.norm) for cin, cout in itertools.pairwise(rev))
        self.head = nn.ConvTranspose2d(chans[0], 1, 4, stride=2, padding=1)  # -> (B, 1, S, S) logits

    def _latent_head(self, flat: int) -> nn.Module:
        return nn.Linear(flat, self.cfg.latent_dim)

    def _features(self, x: torch.Tensor, keep: list | None = None) -> torch.Tensor:
        """(B, 1, S, S) in [0, 1] -> (B, C_last * b * b) flattened encoder output."""
        h = standardize(x) if self.cfg.input_norm == "standardize" else x
        for i, block in enumerate(self.encoder):
            h = block(h)  # (B, C_i, S / 2**(i+1), S / 2**(i+1))
            if keep is not None:
                keep.append((f"encoder.{i}", h))
        return h.flatten(1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S) in [0, 1] -> latent code (B, latent_dim)."""
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

    def objective(self, x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training loss: mean squared error per pixel (the seed's loss).

        Args:
            x: input (B, 1, S, S) in [0, 1] (noisy for a denoising AE).
            target: clean image (B, 1, S, S) in [0, 1].
        Returns:
            (loss scalar, reconstruction (B, 1, S, S) in [0, 1]).
        """
        recon = self(x)
        return F.mse_loss(recon.float(), target), recon  # fp32 loss under bf16 autocast

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


class VAE(Autoencoder):
    """Variational autoencoder on the same stack (Kingma & Welling 2014, "Auto-Encoding Variational Bayes").

    The encoder gives a diagonal Gaussian q(z|x) = N(mu, exp(logvar)); z is drawn by the reparameterization trick
    z = mu + exp(logvar / 2) * eps, eps ~ N(0, I). The decoder is a Bernoulli likelihood over pixels in [0, 1].
    In eval mode ``forward`` decodes the mean (a deterministic reconstruction, used for val/mse and the report).
    """

    def _latent_head(self, flat: int) -> nn.Module:
        return nn.Linear(flat, 2 * self.cfg.latent_dim)  # -> [mu, logvar]

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

        KL = -1/2 * sum(1 + logvar - mu^2 - exp(logvar)) (Kingma & Welling 2014, appendix B). Averaging over the
        batch (the seed summed) makes the loss comparable across batch sizes.

        Args:
            x: input (B, 1, S, S) in [0, 1]; z is sampled in training mode, z = mu in eval mode.
            target: image (B, 1, S, S) in [0, 1], the Bernoulli likelihood's (soft) targets.
        Returns:
            (loss scalar in nats per image, reconstruction (B, 1, S, S) in [0, 1]).
        """
        mu, logvar = self.encode_dist(x)  # (B, L) each
        z = self.reparameterize(mu, logvar) if self.training else mu
        logits = self._decode_logits(z).float()  # (B, 1, S, S); loss terms in fp32 under bf16 autocast
        mu, logvar = mu.float(), logvar.float()
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).sum(1)  # (B,)
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)  # (B,)
        return (bce + kl).mean(), torch.sigmoid(logits)

    def _code_for_report(self, flat: torch.Tensor) -> torch.Tensor:
        return self.to_latent(flat).chunk(2, dim=1)[0]

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw n images from the prior: z ~ N(0, I) -> decode. Returns (n, 1, S, S) in [0, 1]."""
        p = next(self.parameters())
        z = torch.randn(n, self.cfg.latent_dim, generator=generator).to(p.device, p.dtype)
        return self.decode(z)


def _double_conv(cin: int, cout: int, k: int, norm: str) -> nn.Sequential:
    """Two Conv(k, stride 1, 'same') + norm + LeakyReLU: keeps the side (the U-Net block)."""
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2), _norm(norm, cout), nn.LeakyReLU(LEAKY_SLOPE),
                         nn.Conv2d(cout, cout, k, padding=k // 2), _norm(norm, cout), nn.LeakyReLU(LEAKY_SLOPE))


class UNetAE(Autoencoder):
    """U-Net autoencoder: skip connections between encoder and decoder at every scale (Ronneberger et al. 2015,
    "U-Net: Convolutional Networks for Biomedical Image Segmentation", MICCAI).

    Stage i (0 <= i < depth) holds base_channels * 2**i channels at side S / 2**i; the bottleneck holds
    base_channels * 2**depth at side S / 2**depth. Down: stride-2 conv; up: ConvTranspose(2, stride 2), concatenated
    with the encoder's feature map of the same scale, then a double conv. The head predicts a correction in logit
    space to the input: ``out = sigmoid(logit(x) + head(h))`` with the head initialised to zero, so training starts
    from the identity (residual learning, as in DnCNN, Zhang et al. 2017). ``kind="unet"`` trains it as a
    reconstructor (clean input; it can copy through its skips, so it is no bottleneck model), ``kind="dunet"`` as
    a denoiser (noisy input, clean target). Loss: MSE per pixel. ``latent_dim`` is unused.

    ``encode`` returns every scale's feature map (the skips and the bottleneck); ``decode`` takes that list.
    """

    def __init__(self, cfg: ModelConfig):
        nn.Module.__init__(self)
        check_model_config(cfg)
        self.cfg = cfg
        k, nm = cfg.kernel_size, cfg.norm
        chans = [cfg.base_channels * 2 ** i for i in range(cfg.depth + 1)]  # e.g. [32, 64, 128, 256, 512]
        self.chans = chans
        self.stem = _double_conv(1, chans[0], k, nm)
        self.down = nn.ModuleList(_down(chans[i], chans[i], k, nm) for i in range(cfg.depth))
        self.enc = nn.ModuleList(_double_conv(chans[i], chans[i + 1], k, nm) for i in range(cfg.depth))
        self.up = nn.ModuleList(nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2) for i in range(cfg.depth))
        self.dec = nn.ModuleList(_double_conv(2 * chans[i], chans[i], k, nm) for i in range(cfg.depth))
        self.head = nn.Conv2d(chans[0], 1, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def encode(self, x: torch.Tensor, keep: list | None = None) -> list[torch.Tensor]:  # type: ignore[override]
        """(B, 1, S, S) in [0, 1] -> [(B, c_0, S, S), (B, c_1, S/2, S/2), ..., bottleneck (B, c_d, S/2**d, ...)].

        ``keep``, when given, receives ``("encoder.stem", ...)``, ``("encoder.0", ...)``, ... in order.
        """
        h = standardize(x) if self.cfg.input_norm == "standardize" else x
        h = self.stem(h)  # (B, c_0, S, S)
        feats = [h]
        if keep is not None:
            keep.append(("encoder.stem", h))
        for i, (down, enc) in enumerate(zip(self.down, self.enc)):
            h = enc(down(h))  # (B, c_{i+1}, S / 2**(i+1), S / 2**(i+1))
            feats.append(h)
            if keep is not None:
                keep.append((f"encoder.{i}", h))
        return feats

    def _decode_logits(self, feats: list[torch.Tensor], keep: list | None = None) -> torch.Tensor:  # type: ignore[override]
        h = feats[-1]
        for i in reversed(range(self.cfg.depth)):
            h = self.up[i](h)  # (B, c_i, S / 2**i, S / 2**i)
            h = self.dec[i](torch.cat([h, feats[i]], dim=1))  # skip connection: (B, 2 c_i, ...) -> (B, c_i, ...)
            if keep is not None:
                keep.append((f"decoder.{self.cfg.depth - 1 - i}", h))
        return self.head(h)  # (B, 1, S, S) correction in logit space

    def decode(self, feats: list[torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        """Feature list from ``encode`` -> correction logits passed through a sigmoid, (B, 1, S, S) in [0, 1].

        Without the input image there is no residual to correct, so this is only meaningful for visualisation;
        ``forward`` is the reconstruction.
        """
        return torch.sigmoid(self._decode_logits(feats))

    @staticmethod
    def _logit(x: torch.Tensor) -> torch.Tensor:
        return torch.logit(x.clamp(1e-3, 1 - 1e-3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S) in [0, 1] -> output (B, 1, S, S) in [0, 1]."""
        return torch.sigmoid(self._logit(x) + self._decode_logits(self.encode(x)))

    def forward_intermediates(self, x: torch.Tensor) -> tuple[torch.Tensor, list[tuple[str, torch.Tensor]]]:
        """Output plus every encoder and decoder stage's activation (after its last LeakyReLU), for the report.

        Args:
            x: (B, 1, S, S) in [0, 1] (noisy for ``dunet``).
        Returns:
            (output (B, 1, S, S) in [0, 1], equal to ``forward(x)``, and [(name, activation), ...] in network order,
            with c_i = base_channels * 2**i and d = depth: ``encoder.stem`` (B, c_0, S, S); ``encoder.i``
            (B, c_{i+1}, S / 2**(i+1), S / 2**(i+1)) for i < d; ``decoder.j`` (B, c_{d-1-j}, S / 2**(d-1-j),
            S / 2**(d-1-j)) for j < d, after the skip concatenation and double conv; last ``("output", output)``).
        """
        keep: list[tuple[str, torch.Tensor]] = []
        out = torch.sigmoid(self._logit(x) + self._decode_logits(self.encode(x, keep), keep))
        keep.append(("output", out))
        return out, keep


MODELS: dict[str, type[Autoencoder]] = {"ae": Autoencoder, "vae": VAE, "dae": Autoencoder, "unet": UNetAE,
                                          "dunet": UNetAE}
"""Model kind -> class. ``dae`` / ``dunet`` are trained on noisy input (see ``DENOISING``)."""

BOTTLENECK = frozenset({"ae", "vae", "dae"})
"""Kinds whose only path from input to output is the ``latent_dim`` bottleneck."""

DENOISING = frozenset({"dae", "dunet"})
"""Kinds the training loop feeds a noisy input with the clean image as target."""

UNUSED_BY_KIND: dict[str, frozenset[str]] = {
    kind: frozenset(({"model.latent_dim"} if kind not in BOTTLENECK else set())
                    | ({"train.noise_sigma_min", "train.noise_sigma_max", "train.val_noise_sigma"}
                       if kind not in DENOISING else set()))
    for kind in MODELS
}
"""Config keys that have no effect for a kind; the search leaves them out of that kind's space."""


def build_model(cfg: ModelConfig) -> Autoencoder:
    """Build the model of ``cfg.kind``.

    Raises:
        ValueError: an invalid config, naming the field (see :func:`check_model_config`).
    """
    check_model_config(cfg)
    return MODELS[cfg.kind](cfg)
