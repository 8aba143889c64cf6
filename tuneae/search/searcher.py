"""The searcher: Optuna's TPE (Bergstra et al. 2011, "Algorithms for Hyper-Parameter Optimization", NeurIPS; the
multivariate form of Falkner et al. 2018, BOHB, ICML) through Ray Tune's ``OptunaSearch``, its study saved in the
experiment folder. What differs from a bare ``OptunaSearch(sampler=TPESampler(seed=...))``:

- **Start-up scaled to the budget.** TPE samples at random until ``n_startup_trials`` trials have finished (Optuna's
  default 10 made every trial of a 4-trial search random). Here ``max(2, num_samples // 4)`` (:func:`startup_trials`):
  a quarter of the budget explores, the rest is modelled; the seed project's recipe is the first start-up trial.
- **Constant liar** (``TPESampler(constant_liar=True)``) when trials run in parallel: a running trial counts as a
  bad result, so parallel proposals spread out instead of repeating one guess.
- **ASHA-stopped trials are PRUNED, failed trials FAIL**, each epoch's value reported
  (``optuna.trial.Trial.report(value, step=epoch)``): upstream ``OptunaSearch`` told a trial ASHA stopped after one
  epoch as COMPLETE with its 1-epoch loss; TPE now ranks it below every completed trial, by how far it got
  (:class:`tuneae.search.optuna_search.PruningOptunaSearch`).
- **No repeated configuration**: training is seeded, so a repeat would only reproduce a result; a proposal that
  repeats a tried configuration is replaced by the nearest untried one (:func:`nearest_unseen`).
- **The seed project's recipe first** (:func:`seed_point`, enqueued with ``optuna.Study.enqueue_trial``, which is what
  ``OptunaSearch(points_to_evaluate=...)`` does): a search never ends below the recipe it set out to improve.
- **A persistent study**: ``optuna.storages.RDBStorage`` on ``<experiment>/optuna.db``
  (:attr:`tuneae.layout.RunLayout.study_file`), one study per model kind named after it;
  ``optuna-dashboard sqlite:///<experiment>/optuna.db`` opens it. ``--resume`` restores the searcher, which
  reconnects to the same file (:func:`tuneae.search.study.check_resume` first refuses a budget or space other than
  the saved one: Tune's restore keeps the saved ``num_samples`` and space).

Seeding: the sampler is seeded (``TPESampler(seed=...)``), so with one trial at a time two runs propose the same
configurations in the same order.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tuneae.config import seed_recipe
from tuneae.search.repeats import config_key, nearest_unseen
from tuneae.search.study import STEP_KEY, jsonable_space, study_storage

__all__ = ["config_key", "make_searcher", "nearest_choice", "nearest_unseen", "seed_point", "startup_trials"]


def startup_trials(num_samples: int) -> int:
    """TPE's random start-up for a budget: ``max(2, num_samples // 4)`` trials.

    Optuna's ``TPESampler`` samples at random until ``n_startup_trials`` trials have finished (COMPLETE or PRUNED).
    Two is the least from which its Parzen estimators split good from bad; a quarter of the budget keeps most of
    a large budget modelled (27 trials: 6 random, 21 modelled; 4 trials: 2 random, 2 modelled).

    Args:
        num_samples: trials per model kind, >= 1.
    Returns:
        The number of start-up trials (the seed project's recipe is the first of them).
    """
    return max(2, int(num_samples) // 4)


def nearest_choice(value: Any, choices: tuple | list) -> Any:
    """The choice equal to ``value``, else the nearest one: on a log scale for positive numbers (learning rates and
    sizes are scales), by difference for other numbers, the first choice for anything else.

    Args:
        value: the wanted value (number or string).
        choices: the non-empty categorical choices of one hyperparameter.
    Returns:
        One element of ``choices``; ties go to the earlier choice.
    Raises:
        ValueError: ``choices`` is empty.
    """
    if not choices:
        raise ValueError("no choices to pick from")
    for c in choices:
        if c == value and isinstance(c, bool) == isinstance(value, bool):  # True == 1, but not as a choice
            return c

    def number(x):
        return isinstance(x, (int, float)) and not isinstance(x, bool)

    if number(value) and all(number(c) for c in choices):
        if value > 0 and all(c > 0 for c in choices):
            return min(choices, key=lambda c: abs(math.log(c) - math.log(value)))
        return min(choices, key=lambda c: abs(c - value))
    return choices[0]


def seed_point(space: dict[str, tuple]) -> dict[str, Any]:
    """The seed project's recipe expressed in one kind's space: every searched key set to one of its choices.

    ``train.epochs`` is the largest choice; every other key takes the recipe's value (the dataclass defaults,
    :func:`tuneae.config.seed_recipe`), mapped to the nearest choice (:func:`nearest_choice`) when it is not one.

    Args:
        space: ``kind_space(search, kind)``: ``{"section.field": (choice, ...)}``.
    Returns:
        ``{"section.field": choice}`` for every key of ``space``.
    """
    recipe = seed_recipe()
    return {key: max(choices) if key == "train.epochs" else nearest_choice(recipe.get(key), tuple(choices))
            for key, choices in space.items()}


def make_searcher(kind: str, space: dict[str, tuple], planned_epochs: int, *, num_samples: int,
                  max_concurrent: int, seed: int, study_file: str | Path, rungs: list[float] | None = None,
                  mode: str = "min"):
    """A new searcher for one kind's experiment, its study created afresh in ``study_file`` (a resumed experiment
    restores its searcher from Tune's saved state instead, which reconnects to the same file).

    Args:
        kind: the model kind: the study's name.
        space: ``kind_space(search, kind)``; Tune passes the same space as ``tune.choice`` domains in ``param_space``,
            which ``OptunaSearch`` turns into ``CategoricalDistribution``\\ s.
        planned_epochs: the epochs of a trial when ``train.epochs`` is not searched (the fixed ``train.epochs``).
        num_samples: trials of this kind (sets :func:`startup_trials`; saved for
            :func:`tuneae.search.study.check_resume`).
        max_concurrent: trials running at once; > 1 turns on the constant liar.
        seed: seed of the sampler.
        study_file: the SQLite file (``<experiment>/optuna.db``); an older study of this kind in it is replaced.
        rungs: the epochs at which ASHA may stop a trial (:func:`tuneae.checkpoint.asha_rungs` below max_t),
            saved with the study for the report's learning curves.
        mode: ``min`` or ``max``, as ``TuneConfig(mode=...)``.
    Returns:
        A :class:`tuneae.search.optuna_search.PruningOptunaSearch` (space, metric and mode arrive from
        ``TuneConfig`` and ``param_space``).
    Raises:
        ValueError: ``num_samples`` < 1 or an empty space entry.
    """
    import optuna

    from tuneae.search.optuna_search import MovableStorage, PruningOptunaSearch

    if num_samples < 1:
        raise ValueError(f"num_samples {num_samples} must be >= 1")
    if any(not choices for choices in space.values()):
        raise ValueError(f"{kind}: empty choices in the search space {space}")
    storage = study_storage(study_file, MovableStorage)  # pickled into Tune's state: must survive a moved folder
    direction = "minimize" if mode == "min" else "maximize"
    if kind in optuna.get_all_study_names(storage):  # a fresh experiment: no trials of an older one
        optuna.delete_study(study_name=kind, storage=storage)
    study = optuna.create_study(storage=storage, study_name=kind, direction=direction)
    n_startup, liar = startup_trials(num_samples), max_concurrent > 1
    point = seed_point(space)
    for key, value in {"num_samples": num_samples, "space": jsonable_space(space), "seed": seed,
                       "n_startup_trials": n_startup, "constant_liar": liar, "multivariate": True,
                       "rungs": list(rungs or []), "step": STEP_KEY, "mode": mode,
                       "seed_point": jsonable_space({k: (v,) for k, v in point.items()})}.items():
        study.set_user_attr(key, value)
    if space:
        study.enqueue_trial(point, user_attrs={"origin": "seed recipe"})
    sampler = optuna.samplers.TPESampler(n_startup_trials=n_startup, constant_liar=liar, multivariate=True,
                                         seed=seed)
    return PruningOptunaSearch(sampler=sampler, study_name=kind, storage=storage,
                               planned_epochs=int(planned_epochs))
