"""The one seeding rule of a trial: every random stream gets its seed from :func:`stream_seed`.

Named streams (:class:`Seed`) instead of scattered numbers: weights, the shuffling of each epoch, the training
noise and torch's global generator (the VAE's reparameterization). The validation noise has one fixed seed,
:data:`VAL_NOISE_SEED`, shared by every trial and every reload.
"""
from __future__ import annotations

import enum

import numpy as np

VAL_NOISE_SEED = 1234
"""Seed of the validation noise of denoising kinds: one fixed noisy validation set for every trial, epoch and reload
(the value every earlier run used, so their checkpoints still reproduce their reported ``val/loss``)."""


class Seed(enum.IntEnum):
    """The independent random streams of one trial; :func:`stream_seed` gives each its seed, per epoch and rank."""

    WEIGHTS = 0
    """Weight initialisation (the same on every rank)."""
    SHUFFLE = 1
    """The epoch's permutation of the training images (the same on every rank; each rank takes its own shard)."""
    NOISE = 2
    """Training noise of denoising kinds (per rank)."""
    SAMPLING = 3
    """torch's global generator, i.e. the VAE's reparameterization (per rank)."""


def stream_seed(seed: int, stream: Seed, epoch: int = 0, rank: int = 0) -> int:
    """The one seeding rule: a 32-bit seed for ``stream`` of trial seed ``seed`` at ``epoch`` on ``rank``.

    Mixed by numpy's ``SeedSequence`` (distinct inputs give independent streams). Every stream restarts from its
    own seed each epoch, so a trial resumed from a checkpoint after epoch k trains epoch k + 1 exactly as an
    uninterrupted one would (same device and thread count).

    Args:
        seed: ``TrainConfig.seed``, >= 0.
        stream: which stream (:class:`Seed`).
        epoch: the epoch (1-based; 0 for per-trial streams such as the weights).
        rank: the DDP rank (0 without DDP).
    Returns:
        An int in [0, 2**32).
    Raises:
        ValueError: a negative input (from ``SeedSequence``).
    """
    return int(np.random.SeedSequence([seed, int(stream), epoch, rank]).generate_state(1)[0])
