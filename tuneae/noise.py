"""The noise protocol of every denoising experiment: training, validation, the report and the classical baselines.

Three protocols, ``sigma`` always the noise standard deviation on the [0, 1] intensity scale (0.1 = 10% of the range,
25.5 grey levels of 255):

- ``"awgn"`` (primary, ``PRIMARY``): additive white Gaussian noise, ``y = x + sigma * n`` with n ~ N(0, 1) per pixel,
  NOT clipped, so the noise has zero mean and variance sigma^2 everywhere, as the denoising literature defines the
  task (Dabov et al. 2007, "Image denoising by sparse 3-D transform-domain collaborative filtering", IEEE TIP 16(8);
  Zhang et al. 2017, "Beyond a Gaussian denoiser: residual learning of deep CNN for image denoising" (DnCNN),
  IEEE TIP 26(7)). Noisy values fall outside [0, 1].
- ``"clipped8"`` (secondary): the same draw clipped to [0, 1] and quantized to 8 bits, ``round(255 * clip(y)) / 255``,
  as a noisy image stored in an 8-bit file would be. Clipping biases the noise: where x = 0 its mean is
  sigma / sqrt(2 pi), not 0 (Foi 2009, "Clipped noisy images: heteroskedastic modeling and practical denoising",
  Signal Processing 89(12)); see ``tuneae.classical.debias_clipped``.
- ``"rician"``: the noise of a magnitude MR image, ``y = sqrt((x + sigma * n1)^2 + (sigma * n2)^2)`` with n1, n2 ~
  N(0, 1) per pixel: the modulus of the clean value plus complex Gaussian noise of sd sigma in its real and its
  imaginary channel (Gudbjartsson & Patz 1995, "The Rician distribution of noisy MRI data", Magnetic Resonance in
  Medicine 34(6)). y >= 0 and is not clipped above; it is biased upward where the signal is weak: at x = 0 it is
  Rayleigh distributed with mean sigma * sqrt(pi / 2), and for x >> sigma it is close to N(sqrt(x^2 + sigma^2),
  sigma^2); see :func:`rician_mean` and ``tuneae.classical.debias_rician``.

All protocols share one Gaussian draw for a given seed, so ``clipped8`` noisy images are exactly the clipped and
quantized ``awgn`` ones, and ``rician`` takes that draw as its real channel n1 (its imaginary channel n2 is the
generator's next draw). Evaluation noise (validation tuning, test) comes from a CPU ``torch.Generator`` seeded by
:func:`eval_seed`, the one seeding rule, so it is the same on every device and machine.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy.special import i0e, i1e

AWGN = "awgn"
"""Additive white Gaussian noise, not clipped (the primary protocol)."""
CLIPPED8 = "clipped8"
"""Gaussian noise clipped to [0, 1] and quantized to 8 bits (the secondary protocol)."""
RICIAN = "rician"
"""The magnitude of complex Gaussian noise (the noise of magnitude MR images)."""
PROTOCOLS = (AWGN, CLIPPED8, RICIAN)
"""Every noise protocol, primary first."""
PRIMARY = AWGN
"""The protocol of headline numbers and, by default, of training the learned denoisers."""
LEVELS_8BIT = 255
"""Largest 8-bit grey level: clipped8 noisy values are multiples of 1 / 255."""
SPLIT_STREAMS = {"test": 0, "val": 1}
"""Evaluation noise stream of each split (an entropy word of :func:`eval_seed`): the noise that tunes a classical
denoiser on validation images never repeats the test noise."""
SIGMA_SEED_QUANTUM = 1e-6
"""Sigma enters the evaluation seed as an integer count of this quantum (sigmas closer than 1e-6 share noise)."""


def check_protocol(protocol: str, what: str = "noise protocol") -> str:
    """Return ``protocol`` if it is one of ``PROTOCOLS``.

    Raises:
        ValueError: naming ``what`` (e.g. the config field) and the choices.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"{what}={protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    return protocol


def check_sigma(sigma: float, what: str = "sigma") -> float:
    """Return ``sigma`` as a float if it is finite and in (0, 1] (an evaluation noise level on the [0, 1] scale).

    Raises:
        ValueError: naming ``what`` and the value.
    """
    s = float(sigma)
    if not (math.isfinite(s) and 0 < s <= 1):
        raise ValueError(f"{what}={sigma}: a noise sd on the [0, 1] scale must lie in (0, 1]")
    return s


def add_noise(x: torch.Tensor, sigma: float | torch.Tensor, protocol: str = PRIMARY,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """A noisy copy of ``x`` under ``protocol`` (see the module docstring).

    Args:
        x: images (B, ...) float in [0, 1], on any device.
        sigma: noise sd on the [0, 1] scale, >= 0: a scalar, or (B,) one per image.
        protocol: ``"awgn"`` (not clipped), ``"clipped8"`` (clipped to [0, 1], quantized to 1/255) or ``"rician"``
            (magnitude of complex Gaussian noise).
        generator: seeds the draw; may live on another device than ``x`` (the noise is drawn there and moved), so a
            CPU generator gives the same noise on every device. None: the global generator of x's device.
    Returns:
        Same shape, dtype and device as x. ``awgn``: x + sigma * N(0, 1), unbounded; ``clipped8``: in [0, 1], on the
        1/255 grid; ``rician``: sqrt((x + sigma n1)^2 + (sigma n2)^2) >= 0, n1 the ``awgn`` draw. sigma 0 returns x
        (``clipped8``: x quantized; ``rician``: |x|).
    Raises:
        ValueError: an unknown protocol, a non-float x, a negative or non-finite sigma (a number or CPU tensor;
            a sigma tensor on an accelerator is not value-checked, to avoid a device synchronisation), or a sigma
            whose shape is neither () nor (B,).
    """
    check_protocol(protocol)
    if not x.is_floating_point():
        raise ValueError(f"add_noise: x must be float images in [0, 1], got {x.dtype} (see tuneae.data.to_float)")
    sigma = torch.as_tensor(sigma, dtype=x.dtype)  # a number stays on the CPU; a tensor keeps its device
    if sigma.dim() == 1 and sigma.shape[0] == x.shape[0]:
        sigma = sigma.view(-1, *([1] * (x.dim() - 1)))  # (B,) -> (B, 1, 1, 1)
    elif sigma.dim() != 0:
        raise ValueError(f"sigma must be a scalar or have shape ({x.shape[0]},), got {tuple(sigma.shape)}")
    # Values are checked on the CPU only: checking a tensor on an accelerator would wait for the device at every
    # training batch (the training loop draws sigma there from the checked TrainConfig range).
    if sigma.device.type == "cpu" and (not bool(torch.isfinite(sigma).all()) or bool((sigma < 0).any())):
        raise ValueError(f"sigma must be finite and >= 0, got {sigma.flatten().tolist()[:8]}")
    sigma = sigma.to(x.device)
    gen_device = generator.device if generator is not None else x.device
    noise = torch.randn(x.shape, generator=generator, device=gen_device, dtype=x.dtype).to(x.device)
    y = x + sigma * noise
    if protocol == CLIPPED8:
        y = torch.round(y.clamp_(0.0, 1.0) * LEVELS_8BIT) / LEVELS_8BIT
    elif protocol == RICIAN:
        imag = sigma * torch.randn(x.shape, generator=generator, device=gen_device, dtype=x.dtype).to(x.device)
        y = torch.hypot(y, imag)
    return y


def rician_mean(x: np.ndarray, sigma: float) -> np.ndarray:
    """E[y] of Rician data y = |x + sigma (n1 + i n2)|, n1, n2 ~ N(0, 1), at clean value x >= 0.

    Gudbjartsson & Patz 1995 (see the module docstring): ``sigma sqrt(pi / 2) 1F1(-1/2; 1; -a)`` with
    a = x^2 / (2 sigma^2), here written with exponentially scaled Bessel functions so it is stable for large a:
    ``sigma sqrt(pi / 2) [(1 + a) I0e(a / 2) + a I1e(a / 2)]``. Strictly increasing in x; sigma sqrt(pi / 2) at
    x = 0, sqrt(x^2 + sigma^2) + O(sigma^4 / x^3) for x >> sigma.

    Args:
        x: clean values, any shape, >= 0 (on the [0, 1] scale).
        sigma: noise sd of each channel on the [0, 1] scale, > 0.
    Returns:
        Same shape as x, float64, > x.
    """
    a = np.asarray(x, dtype=np.float64) ** 2 / (2.0 * sigma**2)
    return sigma * math.sqrt(math.pi / 2.0) * ((1.0 + a) * i0e(a / 2.0) + a * i1e(a / 2.0))


def eval_seed(seed: int, sigma: float, split: str = "test") -> int:
    """The seed of the evaluation noise added to ``split``'s images at ``sigma``: the one seeding rule.

    ``numpy.random.SeedSequence`` mixes (seed, split stream, sigma in ``SIGMA_SEED_QUANTUM`` units) into a 32-bit
    seed, so every (seed, split, sigma) gets its own, well-separated stream. The protocol is not part of it: the
    protocols share the draw (see the module docstring).

    Args:
        seed: the experiment's base seed, >= 0.
        sigma: noise sd on the [0, 1] scale.
        split: ``"test"`` or ``"val"`` (``SPLIT_STREAMS``).
    Returns:
        A seed for ``torch.Generator().manual_seed``, in [0, 2**32).
    Raises:
        ValueError: a negative seed, a sigma outside (0, 1] or an unknown split.
    """
    if split not in SPLIT_STREAMS:
        raise ValueError(f"split={split!r}: evaluation noise is drawn for {', '.join(SPLIT_STREAMS)}")
    if seed < 0:
        raise ValueError(f"seed={seed}: must be >= 0")
    quanta = round(check_sigma(sigma) / SIGMA_SEED_QUANTUM)
    return int(np.random.SeedSequence([int(seed), SPLIT_STREAMS[split], quanta]).generate_state(1)[0])


def eval_noisy(clean: torch.Tensor, sigma: float, protocol: str = PRIMARY, seed: int = 0,
               split: str = "test") -> torch.Tensor:
    """The seeded noisy copy of evaluation images (report: test images, and validation images that tune the
    classical denoisers): :func:`add_noise` with a CPU generator seeded by :func:`eval_seed`.

    Args:
        clean: (N, 1, S, S) float in [0, 1], on any device (the noise is drawn on the CPU and moved).
        sigma: noise sd on the [0, 1] scale, in (0, 1].
        protocol, seed, split: see :func:`add_noise` and :func:`eval_seed`.
    Returns:
        (N, 1, S, S), same dtype and device as ``clean``; the same draw under every protocol (see the module
        docstring).
    Raises:
        ValueError: as :func:`add_noise` and :func:`eval_seed`.
    """
    gen = torch.Generator().manual_seed(eval_seed(seed, sigma, split))
    return add_noise(clean, sigma, protocol, gen)


__all__ = [
    "AWGN",
    "CLIPPED8",
    "LEVELS_8BIT",
    "PRIMARY",
    "PROTOCOLS",
    "RICIAN",
    "SPLIT_STREAMS",
    "add_noise",
    "check_protocol",
    "check_sigma",
    "eval_noisy",
    "eval_seed",
    "rician_mean",
]
