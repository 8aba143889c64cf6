"""Ray Tune's ``OptunaSearch`` telling Optuna how each trial really ended (imported only when a searcher is made:
it imports ``ray.tune``)."""
from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from tuneae.search.repeats import config_key, nearest_unseen
from tuneae.search.study import STEP_KEY

logger = logging.getLogger(__name__)

_TRIED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
"""Trials whose configuration has run or is running (FAIL is left out: a failed configuration may be retried)."""


# --- Workaround: a pickled study storage that follows a moved experiment folder --------------------------------
# Upstream behaviour worked around (Ray 2.60, Optuna 5.1): Tune pickles the searcher, and with it the study's
# ``optuna.storages.RDBStorage``, into the experiment's state (``tuner.pkl``, ``searcher-state-*.pkl``) and unpickles
# it inside ``Tuner.restore`` and ``Tuner.fit`` with no hook to say where the experiment is now; ``RDBStorage``
# unpickles onto the absolute SQLite URL it was made with. After ``mv runs/x elsewhere/x``, ``--resume
# --storage-path elsewhere`` then died with "unable to open database file". Here the storage pickles as a call to
# its public constructor, and the URL it reopens is the study file named by :func:`study_file_now` around the
# restore. tests/test_searcher.py::test_upstream_storage_still_pickles_its_absolute_url fails once upstream
# changes this (then this block can go).

_STUDY_FILE_NOW: ContextVar[Path | None] = ContextVar("tuneae_study_file_now", default=None)
"""Where the experiment being restored keeps its study now; None outside :func:`study_file_now`."""


def _reopen_storage(url: str, engine_kwargs: dict[str, Any]) -> MovableStorage:
    """Unpickle a :class:`MovableStorage`: reopen it on the study file where it is now (inside
    :func:`study_file_now`), else on ``url``, the SQLite URL it was made with."""
    now = _STUDY_FILE_NOW.get()
    return MovableStorage(f"sqlite:///{now}" if now is not None else url, engine_kwargs=engine_kwargs)


class MovableStorage(optuna.storages.RDBStorage):
    """The study's ``RDBStorage`` that, when unpickled inside :func:`study_file_now`, reopens the study file at its
    current place (see the workaround note above).

    Args:
        url: the SQLite URL (``sqlite:////abs/optuna.db``).
        engine_kwargs: as ``RDBStorage``'s (here the SQLite busy timeout).
    """

    def __init__(self, url: str, engine_kwargs: dict[str, Any] | None = None):
        super().__init__(url, engine_kwargs=engine_kwargs)
        self._movable_args = (url, dict(engine_kwargs or {}))

    def __reduce__(self):
        return _reopen_storage, self._movable_args


@contextmanager
def study_file_now(path: str | Path) -> Iterator[None]:
    """While restoring an experiment (``Tuner.restore`` and its ``fit``, which reload the searcher in this thread),
    every :class:`MovableStorage` unpickled opens ``path``, the experiment's study file where it is now."""
    token = _STUDY_FILE_NOW.set(Path(path).resolve())
    try:
        yield
    finally:
        _STUDY_FILE_NOW.reset(token)

# --- end of the workaround ---------------------------------------------------------------------------------------


class PruningOptunaSearch(OptunaSearch):
    """Ray Tune's ``OptunaSearch`` that tells Optuna how each trial really ended.

    Upstream (``ray.tune.search.optuna.OptunaSearch``, Ray 2.60) reports each result at Tune's
    ``training_iteration`` (which restarts at 1 when a trial resumes) and tells every trial that has a result as
    COMPLETE, including one ASHA stopped after its first rung. Here:

    - every result is reported at its ``epoch`` (``optuna.trial.Trial.report(value, step=epoch)``), including the
      last one, which Tune gives only to ``on_trial_complete`` when the scheduler stops the trial;
    - a trial whose last epoch is below its planned ``train.epochs`` is told ``TrialState.PRUNED`` (Optuna records
      its last intermediate value as its value); one that reached them, COMPLETE with its final value; a trial that
      errored, ended without a result, or whose value is not finite, FAIL (``optuna.Study.tell``);
    - a proposal repeating a configuration already tried or running is replaced by the nearest untried one
      (training is seeded: a repeat would only reproduce a result; see :meth:`suggest`);
    - each Optuna trial carries its Tune trial id (user attribute ``tune_trial_id``);
    - on restore (``--resume``), trials the study holds as RUNNING but the restored searcher never knew (asked after
      Tune's last save, then the driver was killed) are told FAIL, so the constant liar does not avoid them forever.

    Args:
        planned_epochs: the epochs of a trial whose config does not search ``train.epochs``.
        **kwargs: as ``OptunaSearch`` (here ``sampler``, ``study_name``, ``storage``).
    """

    def __init__(self, *, planned_epochs: int, **kwargs: Any):
        super().__init__(**kwargs)
        self._planned_epochs = int(planned_epochs)
        self._reported: dict[str, set[int]] = {}  # trial id -> epochs reported (Tune repeats a trial's last result)

    def suggest(self, trial_id: str) -> dict | None:
        """Upstream ``suggest`` (``Study.ask`` over the space), a repeated configuration replaced by the nearest
        untried one (:func:`tuneae.search.repeats.nearest_unseen`), then the Tune trial id saved on the Optuna
        trial.

        Training is seeded, so a configuration that already ran (or runs) would only repeat its result; TPE proposes
        such repeats often in small categorical spaces (Optuna allows them for noisy objectives: optuna/optuna#2021).
        The repeat is told FAIL with the user attribute ``duplicate_of`` (TPE ignores failed trials;
        :func:`tuneae.search.study.read_study` leaves it out of the trials and counts it apart), and the nearest
        configuration not yet tried is enqueued and asked instead (``optuna.Study.enqueue_trial``).
        """
        config = super().suggest(trial_id)
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is None:
            return config
        dup = self._duplicate_of(ot_trial)
        if dup is not None and self._all_categorical():
            seen = {config_key(t.params) for t in self._ot_study.get_trials(deepcopy=False, states=_TRIED)}
            choices = {k: list(d.choices) for k, d in self._space.items()}
            unseen = nearest_unseen(ot_trial.params, choices, seen, seed=ot_trial.number)
            if unseen is not None:
                ot_trial.set_user_attr("duplicate_of", dup)
                self._ot_study.tell(ot_trial, state=TrialState.FAIL)
                del self._ot_trials[trial_id]
                self._ot_study.enqueue_trial(unseen, user_attrs={"origin": f"nearest unseen (TPE repeated #{dup})"})
                config = super().suggest(trial_id)
                ot_trial = self._ot_trials[trial_id]
        if "tune_trial_id" not in ot_trial.user_attrs:
            ot_trial.set_user_attr("tune_trial_id", trial_id)
        return config

    def _all_categorical(self) -> bool:
        return isinstance(self._space, dict) and all(
            isinstance(d, optuna.distributions.CategoricalDistribution) for d in self._space.values())

    def _duplicate_of(self, ot_trial) -> int | None:
        """The number of an earlier trial (tried or running) with the same parameters, or None."""
        key = config_key(ot_trial.params)
        for t in self._ot_study.get_trials(deepcopy=False, states=_TRIED):
            if t.number != ot_trial.number and config_key(t.params) == key:
                return t.number
        return None

    def _report(self, trial_id: str, result: dict | None) -> tuple[Any, Any]:
        """Report ``result``'s metric at its epoch unless already reported; returns (value, epoch) or Nones."""
        result = result or {}
        value, step = result.get(self.metric), result.get(STEP_KEY)
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is None or value is None or step is None:
            return value, step
        done = self._reported.setdefault(trial_id, set())
        if int(step) not in done:
            try:
                ot_trial.report(float(value), int(step))
            except (UpdateFinishedTrialError, ValueError, TypeError) as exc:  # told before a resume; bad value
                logger.warning("trial %s: epoch %s not reported to Optuna: %s", trial_id, step, exc)
            done.add(int(step))
        return value, step

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """Report the trial's metric at its epoch (``optuna.trial.Trial.report``)."""
        if trial_id not in self._completed_trials:
            self._report(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Tell Optuna the trial's end: COMPLETE, PRUNED (stopped before its planned epochs) or FAIL."""
        ot_trial = self._ot_trials.get(trial_id)
        if trial_id in self._completed_trials or ot_trial is None:
            logger.warning("trial %s: completion not told to Optuna (already told, or unknown)", trial_id)
            return
        value, step = self._report(trial_id, result)
        planned = int(ot_trial.params.get("train.epochs", self._planned_epochs))
        if error or value is None or step is None or not math.isfinite(float(value)):
            state, told = TrialState.FAIL, None
        elif int(step) < planned:
            state, told = TrialState.PRUNED, None
        else:
            state, told = TrialState.COMPLETE, float(value)
        try:
            self._ot_study.tell(ot_trial, told, state=state, skip_if_finished=True)
        except (ValueError, RuntimeError) as exc:
            logger.warning("trial %s: Optuna refused %s: %s", trial_id, state.name, exc)
        self._completed_trials.add(trial_id)

    def restore(self, checkpoint_path: str) -> None:
        """Upstream ``restore`` (the pickled searcher, whose storage reconnects to the same SQLite file), then the
        study's RUNNING trials unknown to the restored searcher told FAIL."""
        super().restore(checkpoint_path)
        if self._ot_study is None:
            return
        known = {t.number for t in self._ot_trials.values()}
        for t in self._ot_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if t.number not in known:
                self._ot_study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
