"""The searcher: Optuna's TPE (Bergstra et al. 2011, "Algorithms for Hyper-Parameter Optimization", NeurIPS)
through Ray Tune's ``OptunaSearch`` (upstream: ``ray.tune.search.optuna.OptunaSearch``,
``optuna.samplers.TPESampler``). The only module that imports ``optuna``.
"""
from __future__ import annotations

from tuneae.config import SearchConfig


def make_searcher(search: SearchConfig):
    """A new, seeded searcher for one kind's experiment (a resumed experiment restores its own from storage).

    Args:
        search: the resolved search config (``search.seed`` seeds the sampler).
    Returns:
        A ``ray.tune.search.optuna.OptunaSearch`` over the ``param_space`` it is given by the ``Tuner``, metric and
        mode from ``TuneConfig``.
    """
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    return OptunaSearch(sampler=optuna.samplers.TPESampler(seed=search.seed), seed=search.seed)
