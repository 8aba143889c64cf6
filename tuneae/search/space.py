"""The search space of each model kind, and its form for Ray Tune.

Model kinds differ in which hyperparameters mean anything (``model.latent_dim`` only for bottleneck kinds, noise
settings only for denoising kinds), so each kind's experiment searches only its own parameters and TPE never
models a parameter that has no effect (Optuna's conditional spaces, done per experiment).
"""
from __future__ import annotations

from typing import Any

from tuneae.config import Config, SearchConfig, TrainConfig
from tuneae.models import UNUSED_BY_KIND


def kind_space(search: SearchConfig, kind: str) -> dict[str, tuple]:
    """The search space of one model kind: the common space, the kind's own additions, minus unused keys.

    Args:
        search: the resolved search config (its ``space`` and ``space_by_kind``).
        kind: a model kind (``ae``, ``vae``, ``dae``, ``unet``, ``dunet``, ``dncnn``).
    Returns:
        ``{"section.field": (choice, ...)}``: the common space updated by ``space_by_kind[kind]``, without the keys
        in ``UNUSED_BY_KIND[kind]``. Raises nothing (an unknown kind just gets the common space).
    """
    space = {**search.space, **search.space_by_kind.get(kind, {})}
    return {k: tuple(v) for k, v in space.items() if k not in UNUSED_BY_KIND.get(kind, ())}


def max_t(space: dict[str, tuple], train: TrainConfig) -> int:
    """ASHA's ``max_t`` of one kind, in epochs: the largest ``train.epochs`` choice, else the fixed ``train.epochs``.

    Args:
        space: ``kind_space(search, kind)``.
        train: the fixed training settings.
    """
    return int(max(space.get("train.epochs", (train.epochs,))))


def param_space(kind: str, cfg: Config) -> dict[str, Any]:
    """Tune's ``param_space`` of one kind: the flat config (:meth:`tuneae.config.Config.flat`), each searched key a
    ``ray.tune.choice`` of its choices (upstream: ``ray.tune.search.sample.choice``), plus the search's ASHA
    settings (:func:`tuneae.trainable.asha_config`, with :func:`max_t`), from which each trial derives the rung
    epochs it checkpoints."""
    from ray import tune

    from tuneae.trainable import asha_config

    flat = cfg.of_kind(kind).flat()
    space = kind_space(cfg.search, kind)
    for key, choices in space.items():
        flat[key] = tune.choice(list(choices))
    flat.update(asha_config(cfg.search.grace_period, cfg.search.reduction_factor, max_t(space, cfg.train)))
    return flat
