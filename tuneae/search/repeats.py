"""Repeated configurations: training is seeded, so a configuration that already ran would only reproduce its result;
:func:`nearest_unseen` finds the nearest untried one instead (used by :mod:`tuneae.search.optuna_search`)."""
from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np


def config_key(params: dict[str, Any]) -> tuple:
    """A hashable form of one configuration (``{name: value}``), equal for equal configurations."""
    return tuple(sorted((k, repr(v)) for k, v in params.items()))


MAX_GRID = 200_000
"""Largest space (configurations) :func:`nearest_unseen` enumerates; above it a repeat is left as proposed."""


def _rank_distance(choices: list) -> Callable[[Any, Any], float]:
    """Distance between two choices of one hyperparameter: their distance in rank when every choice is a number
    (ordered: lr, sizes, epochs), else 0 for equal and 1 for different."""
    if all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in choices):
        rank = {repr(c): i for i, c in enumerate(sorted(choices))}
        return lambda a, b: abs(rank[repr(a)] - rank[repr(b)])
    return lambda a, b: float(repr(a) != repr(b))


def nearest_unseen(proposal: dict[str, Any], choices: dict[str, list], seen: set[tuple], seed: int = 0
                   ) -> dict[str, Any] | None:
    """The untried configuration nearest to ``proposal``: the sum over hyperparameters of the rank distance for
    numbers (one step along sorted choices counts 1) and 0 / 1 for other values.

    Used when TPE proposes a configuration that already ran: the nearest untried one keeps TPE's intent (look
    near the best) without repeating a seeded, deterministic training run. Among equally near ones a seeded draw
    picks, so runs stay reproducible.

    Args:
        proposal: ``{name: value}`` over every key of ``choices``.
        choices: each hyperparameter's categorical choices.
        seen: configurations already tried, as :func:`config_key` tuples.
        seed: seed of the tie-break.
    Returns:
        A new ``{name: value}``, or None when every configuration has been tried or the space has more than
        :data:`MAX_GRID` configurations.
    """
    names = list(choices)
    if math.prod(len(c) for c in choices.values()) > MAX_GRID:
        return None
    dist = {n: _rank_distance(list(choices[n])) for n in names}
    best, found = math.inf, []
    for values in itertools.product(*(choices[n] for n in names)):
        cand = dict(zip(names, values, strict=True))
        if config_key(cand) in seen:
            continue
        d = sum(dist[n](cand[n], proposal[n]) for n in names)
        if d < best:
            best, found = d, [cand]
        elif d == best:
            found.append(cand)
    return found[int(np.random.default_rng(seed).integers(len(found)))] if found else None
