"""The search space of each model kind, and its form for Ray Tune.

Model kinds differ in which hyperparameters mean anything (``model.latent_dim`` only for bottleneck kinds, noise
settings only for denoising kinds), so each kind's experiment searches only its own parameters and TPE never
models a parameter that has no effect (Optuna's conditional spaces, done per experiment).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from tuneae.config import DataConfig, ModelConfig, SearchConfig, TrainConfig, to_flat
from tuneae.models import UNUSED_BY_KIND


def kind_space(search: SearchConfig, kind: str) -> dict[str, tuple]:
    """The search space of one model kind: the common space, the kind's own additions, minus unused keys.

    Args:
        search: the resolved search config (its ``space`` and ``space_by_kind``).
        kind: a model kind (``ae``, ``vae``, ``dae``, ``unet``, ``dunet``).
    Returns:
        ``{"section.field": (choice, ...)}``: the common space updated by ``space_by_kind[kind]``, without the keys
        in ``UNUSED_BY_KIND[kind]``. Raises nothing (an unknown kind just gets the common space).
    """
    space = {**search.space, **search.space_by_kind.get(kind, {})}
    return {k: tuple(v) for k, v in space.items() if k not in UNUSED_BY_KIND.get(kind, ())}


def param_space(kind: str, search: SearchConfig, data: DataConfig, model: ModelConfig,
                train: TrainConfig) -> dict[str, Any]:
    """Tune's ``param_space`` of one kind: the flat configs (:func:`tuneae.config.to_flat`), each searched key a
    ``ray.tune.choice`` of its choices (upstream: ``ray.tune.search.sample.choice``)."""
    from ray import tune

    flat = to_flat(data, replace(model, kind=kind), train)
    for key, choices in kind_space(search, kind).items():
        flat[key] = tune.choice(list(choices))
    return flat
