"""The search's side of its saved Optuna study: the progress key, the space as saved, and the resume check.

The study file's storage and the read-back (:func:`tuneae.run.study.study_storage`, :func:`read_study`,
:func:`study_record`) live in the run layer and are imported here for the search. Only Optuna is imported (no
Ray), so the command line uses it before Ray starts.
"""
from __future__ import annotations

import json
from pathlib import Path

from tuneae.run.study import read_study, study_record, study_storage

STEP_KEY = "epoch"
"""The reported result that counts a trial's progress: Optuna's ``step`` and ASHA's ``time_attr``."""


def jsonable_space(space: dict[str, tuple]) -> dict[str, list]:
    """A search space as JSON values (``{"train.lr": [0.001, 0.0005]}``), the form saved in the study."""
    return json.loads(json.dumps({k: list(v) for k, v in space.items()}))


def check_resume(path: str | Path, kind: str, num_samples: int, space: dict[str, tuple]) -> None:
    """Refuse a ``--resume`` that asks for another budget or space than the saved experiment's, before Ray starts.

    Tune's ``Tuner.restore`` keeps the saved ``num_samples`` and the restored searcher its saved space, so a changed
    ``--num-samples`` ran no new trial and the search looped as "interrupted", and a changed
    space was silently ignored. A kind without a saved study (not started yet, or searched before the study was
    saved) passes.

    Args:
        path: the experiment's study file (``RunLayout.study_file``); a missing file passes.
        kind: the model kind (the study's name).
        num_samples: trials per kind asked for now.
        space: the kind's search space asked for now (``kind_space(search, kind)``).
    Raises:
        ValueError: the budget or the space differs; the message names ``--num-samples`` or the space keys, the
            saved and the new values, and what to do.
    """
    import optuna

    path = Path(path).expanduser()
    if not path.is_file():
        return
    storage = study_storage(path)
    if kind not in optuna.get_all_study_names(storage):
        return
    attrs = optuna.load_study(study_name=kind, storage=storage).user_attrs
    saved_n = attrs.get("num_samples")
    if saved_n is not None and saved_n != num_samples:
        raise ValueError(f"--num-samples {num_samples}: this experiment was started with {saved_n} trials per kind "
                         f"(study {kind!r} in {path}), and --resume continues the saved search with its saved "
                         f"budget; resume with --num-samples {saved_n}, or start a new search under another --name")
    saved_space, now = attrs.get("space"), jsonable_space(space)
    if saved_space is not None and saved_space != now:
        changed = sorted(k for k in set(saved_space) | set(now) if saved_space.get(k) != now.get(k))
        detail = "; ".join(f"{k} saved {saved_space.get(k)}, now {now.get(k)}" for k in changed)
        raise ValueError(f"the search space of {kind} differs from the saved experiment's (study in {path}): "
                         f"{detail}; --resume continues the saved space: resume with the same flags and config, "
                         f"or start a new search under another --name")


__all__ = ["STEP_KEY", "check_resume", "jsonable_space", "read_study", "study_record", "study_storage"]
