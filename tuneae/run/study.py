"""The saved Optuna study of a search, read back: the study file's storage and the studies as plain data.

Each experiment keeps its Optuna studies (one per model kind, named after it) in ``<experiment>/optuna.db``
(:attr:`tuneae.layout.RunLayout.study_file`; upstream: ``optuna.storages.RDBStorage``);
``optuna-dashboard sqlite:///<experiment>/optuna.db`` browses it. :func:`read_study` turns it into plain data
(trials with state, parameters, per-epoch values and final value; counts; fANOVA importances) for ``summary.json``
and the report. Only Optuna is imported here (no Ray), lazily.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from tuneae.layout import STUDY_FILE

RECIPE_ORIGIN = "seed recipe"
"""The ``origin`` user attribute of the trial that ran the default recipe (:mod:`tuneae.search.searcher` enqueues
it as each kind's first trial)."""
IMPORTANCE_METHOD = "fANOVA (Hutter et al. 2014; optuna.importance.FanovaImportanceEvaluator, seed 0)"
"""How :func:`read_study` measures hyperparameter importance (on completed trials only: pruned trials stopped at
other budgets)."""


def study_storage(path: str | Path, storage_class: type | None = None):
    """An ``optuna.storages.RDBStorage`` on the SQLite file ``path`` (created with its folder if missing).

    Args:
        path: the SQLite file; made absolute, so the URL holds wherever the driver runs.
        storage_class: a subclass of ``RDBStorage`` to build instead (the searcher's
            storage, which follows a moved experiment folder).
    Returns:
        The storage (URL ``sqlite:////abs/path``; a 60 s busy timeout, so a dashboard reading it never fails a write).
    """
    import optuna

    path = Path(path).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    cls = storage_class or optuna.storages.RDBStorage
    return cls(f"sqlite:///{path}", engine_kwargs={"connect_args": {"timeout": 60}})


def _finite(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def _importances(study, trials) -> tuple[dict[str, float] | None, str]:
    """fANOVA importances of the parameters that vary among the completed trials, or None and why not."""
    import optuna

    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and _finite(t.value) is not None]
    if len(done) < 2:
        return None, f"{len(done)} completed trial(s): fANOVA needs 2 or more"
    varying = sorted(p for p in done[0].params if len({json.dumps(t.params.get(p)) for t in done}) > 1)
    if not varying:
        return None, f"the {len(done)} completed trials share every parameter value"
    if len({t.value for t in done}) < 2:
        return None, f"the {len(done)} completed trials share one value"
    try:
        imp = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0), params=varying)
    except (ValueError, RuntimeError, ImportError) as exc:  # ImportError: scikit-learn missing
        return None, f"fANOVA failed: {exc}"
    return {k: float(v) for k, v in imp.items()}, f"{IMPORTANCE_METHOD}, {len(done)} completed trials"


def _trial(t) -> dict[str, Any]:
    return {"number": t.number, "tune_trial_id": t.user_attrs.get("tune_trial_id"),
            "origin": t.user_attrs.get("origin", "sampler"), "state": t.state.name,
            "params": dict(t.params),
            "intermediate": [[int(s), _finite(v)] for s, v in sorted(t.intermediate_values.items())],
            "value": _finite(t.value)}


def read_study(path: str | Path, kinds: list[str] | None = None,
               importances: bool = True) -> dict[str, dict[str, Any]]:
    """Read an experiment's saved studies back as plain data (JSON-ready: non-finite numbers become None).

    Args:
        path: the study file (``RunLayout.study_file``).
        kinds: the studies to read (default: every study in the file).
        importances: measure the importances (fANOVA, seconds per study); False leaves them None.
    Returns:
        ``{kind: study}``; each study has
        ``name``; ``direction`` (``minimize``/``maximize``);
        ``attrs``: what the searcher saved (``num_samples``, ``space``, ``seed``, ``n_startup_trials``,
        ``constant_liar``, ``rungs`` (ASHA's rung epochs), ``step``, ``seed_point``, ...);
        ``trials``: one dict per trial, in order, with ``number``, ``tune_trial_id``, ``origin`` (``seed
        recipe``: the seed project's recipe, ``sampler`` or ``nearest unseen ...``), ``state`` (``COMPLETE``,
        ``PRUNED``, ``FAIL``, ``RUNNING``,
        ``WAITING``), ``params``, ``intermediate`` (``[[epoch, value], ...]``, the objective per epoch) and
        ``value`` (final; for a PRUNED trial its last intermediate value);
        ``counts``: ``completed``, ``pruned``, ``failed``, ``running``, and ``repeats_replaced`` (proposals that
        repeated a tried configuration, replaced by the nearest untried one before they became trials: the
        trials whose ``origin`` is ``nearest unseen ...``);
        ``importances``: ``{param: share}`` summing to 1, largest first, or None;
        ``importance_note``: how they were measured, or why there are none.
    Raises:
        FileNotFoundError: no file at ``path``.
        KeyError: a kind in ``kinds`` has no study in the file.
    """
    import optuna

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no Optuna study file at {path}")
    storage = study_storage(path)
    names = optuna.get_all_study_names(storage)
    missing = sorted(set(kinds or []) - set(names))
    if missing:
        raise KeyError(f"{path}: no study for {missing} (studies: {sorted(names)})")
    out = {}
    for name in kinds or names:
        study = optuna.load_study(study_name=name, storage=storage)
        everything = study.get_trials(deepcopy=False)
        # studies written before the repeat was replaced inside the sampler hold it as a FAIL trial `duplicate_of`
        trials = [t for t in everything if "duplicate_of" not in t.user_attrs]
        states = [t.state.name for t in trials]
        replaced = sum(str(t.user_attrs.get("origin", "")).startswith("nearest unseen") for t in trials)
        imp, note = _importances(study, trials) if importances else (None, "not measured here")
        out[name] = {"name": name, "direction": study.direction.name.lower(), "attrs": dict(study.user_attrs),
                     "trials": [_trial(t) for t in trials],
                     "counts": {"completed": states.count("COMPLETE"), "pruned": states.count("PRUNED"),
                                "failed": states.count("FAIL"), "running": states.count("RUNNING"),
                                "repeats_replaced": replaced},
                     "importances": imp, "importance_note": note}
    return out


def recipe_trials(studies: dict[str, dict[str, Any]]) -> dict[str, str | None]:
    """kind -> the Tune trial id of its trial that ran the default recipe (``origin`` :data:`RECIPE_ORIGIN`, else
    the study's first trial; None for a study without trials).

    Args:
        studies: :func:`read_study`'s value (or the report's ``m["search"]``).
    """
    out = {}
    for kind, study in studies.items():
        trials = study.get("trials") or []
        t = next((t for t in trials if t.get("origin") == RECIPE_ORIGIN), trials[0] if trials else None)
        out[kind] = (t or {}).get("tune_trial_id")
    return out


def same_as_recipe(study: dict[str, Any] | None, best: str | None, recipe: str | None) -> str:
    """Why a kind's best trial ``best`` is its default recipe ``recipe`` itself: the same trial, or the same searched
    parameters in the study (a repeat); "" when it is not, or when that is unknown (an id or a study missing).

    Args:
        study: one value of :func:`read_study` (its ``trials`` with ``tune_trial_id`` and ``params``), or None.
        best: the Tune trial id of the kind's best trial.
        recipe: the Tune trial id of its default-recipe trial (:func:`recipe_trials`).
    """
    if not best or not recipe:
        return ""
    if best == recipe:
        return f"the best trial ({best}) is the one that ran the default recipe"
    trials = {t.get("tune_trial_id"): t for t in (study or {}).get("trials") or []}
    a, b = (trials.get(best) or {}).get("params"), (trials.get(recipe) or {}).get("params")
    if a and a == b:
        return f"the best trial ({best}) has the default recipe's configuration (trial {recipe})"
    return ""


def _points(seed_point: Any) -> dict[str, list]:
    """The study's saved ``seed_point`` (``{param: [value]}``), {} when not saved."""
    return seed_point if isinstance(seed_point, dict) else {}


def study_record(study: dict[str, Any], relpath: str = STUDY_FILE) -> dict[str, Any]:
    """What ``summary.json`` keeps of one kind's study (:func:`read_study`): the searcher's settings, the counts and
    the importances.

    Args:
        study: one value of :func:`read_study`.
        relpath: the study file relative to the experiment folder.
    Returns:
        ``{"file", "study_name", "n_startup_trials", "constant_liar", "seed_point", "completed", "pruned", "failed",
        "repeats_replaced", "importances", "importance_note"}``.
    """
    a = study["attrs"]
    return {"file": relpath, "study_name": study["name"], "n_startup_trials": a.get("n_startup_trials"),
            "constant_liar": a.get("constant_liar"),
            "seed_point": {k: v[0] for k, v in _points(a.get("seed_point")).items()},
            **{k: study["counts"][k] for k in ("completed", "pruned", "failed", "repeats_replaced")},
            "importances": study["importances"], "importance_note": study["importance_note"]}
