"""The searcher's Tune hooks: a Ray Tune ``Searcher`` that drives an Optuna study through its ask/tell API, telling
Optuna how each trial really ended (imported only when a searcher is made: it imports ``ray.tune``).

Public APIs only: Ray Tune's custom-searcher interface (``ray.tune.search.Searcher``), Optuna's ask/tell
(``optuna.Study.ask`` / ``tell``, ``optuna.trial.Trial.report``, ``optuna.Study.enqueue_trial``) and its sampler
interface (``optuna.samplers.BaseSampler``). The one workaround of upstream behaviour, :class:`MovableStorage`, is
the marked block below."""
from __future__ import annotations

import logging
import math
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.exceptions import UpdateFinishedTrialError
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState
from ray.tune.search import Searcher
from ray.tune.search.sample import Categorical, Domain

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


def search_space(config: dict[str, Any], prefix: str = "") -> dict[str, BaseDistribution]:
    """Optuna's distributions of a Tune ``param_space``: each ``tune.choice`` a ``CategoricalDistribution``.

    Args:
        config: Tune's ``param_space`` (constants are left out: Tune merges them into every trial's config).
        prefix: the path of ``config`` inside the whole space (nested dicts are joined with ``/``).
    Returns:
        ``{name: distribution}`` in the order of ``config``; nested keys as ``outer/inner``.
    Raises:
        ValueError: a ``tune.grid_search`` or a Tune domain other than ``tune.choice`` (the search space is
            categorical: every hyperparameter is a list of choices).
    """
    space: dict[str, BaseDistribution] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            if "grid_search" in value:
                raise ValueError(f"{name}: tune.grid_search is not searched by Optuna; use tune.choice")
            space.update(search_space(value, f"{name}/"))
        elif isinstance(value, Categorical):
            space[name] = CategoricalDistribution(value.categories)
        elif isinstance(value, Domain):
            raise ValueError(f"{name}: {type(value).__name__} domain; the search space takes tune.choice only")
    return space


def _nested(params: dict[str, Any]) -> dict[str, Any]:
    """``{"outer/inner": v}`` back into ``{"outer": {"inner": v}}`` (the inverse of :func:`search_space`'s names)."""
    out: dict[str, Any] = {}
    for name, value in params.items():
        *outer, last = name.split("/")
        node = out
        for part in outer:
            node = node.setdefault(part, {})
        node[last] = value
    return out


class RepeatFreeSampler(BaseSampler):
    """An Optuna sampler that proposes what ``sampler`` proposes, except that a configuration already tried (or
    running) is replaced by the nearest untried one (:func:`tuneae.search.repeats.nearest_unseen`).

    Training is seeded, so a configuration that already ran would only reproduce its result; TPE proposes such
    repeats often in small categorical spaces (Optuna allows them for noisy objectives: optuna/optuna#2021). The
    replacement happens inside the sampler, through Optuna's public sampler interface
    (``optuna.samplers.BaseSampler``), before the trial has any parameter: the repeated proposal never becomes a
    trial, so the study holds no trace of it but the replacement's ``origin`` (which the searcher records,
    :meth:`take_origin`). Nothing is failed, pruned or discarded: the study's states stay those of the trials
    that ran, which is what optuna-dashboard shows.

    How: over a categorical space (:attr:`space`, set by the searcher) the whole configuration is sampled as one
    relative sample, ``sampler``'s relative sample (multivariate TPE, after its start-up) completed by its
    independent samples for the rest (random during the start-up), in the order Optuna's ``Trial`` would ask them;
    the complete configuration can then be compared with the study's tried ones. A space that is not all
    categorical is passed to ``sampler`` unchanged (no replacement).

    Args:
        sampler: the sampler that proposes (here the seeded ``optuna.samplers.TPESampler``).
    """

    def __init__(self, sampler: BaseSampler):
        self.sampler = sampler
        self.space: dict[str, BaseDistribution] = {}
        self._origins: dict[int, str] = {}

    def _replaces(self) -> bool:
        return bool(self.space) and all(isinstance(d, CategoricalDistribution) for d in self.space.values())

    def take_origin(self, number: int) -> str | None:
        """How trial ``number``'s configuration was chosen when it replaced a repeat (``"nearest unseen (TPE
        repeated #k)"``, k the trial it repeated), else None; forgotten once taken."""
        return self._origins.pop(number, None)

    def infer_relative_search_space(self, study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        """The whole categorical :attr:`space` (sampled at once by :meth:`sample_relative`), else ``sampler``'s."""
        if self._replaces():
            return dict(self.space)
        return self.sampler.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
                        ) -> dict[str, Any]:
        """``sampler``'s proposal for the whole space, a tried configuration replaced by the nearest untried one
        (ties broken by a draw seeded with the trial number, so seeded runs repeat)."""
        if not self._replaces() or search_space != self.space:
            return self.sampler.sample_relative(study, trial, search_space)
        params = dict(self.sampler.sample_relative(study, trial, self.sampler.infer_relative_search_space(study,
                                                                                                           trial)))
        proposal = {name: params[name] if name in params else
                    self.sampler.sample_independent(study, trial, name, dist) for name, dist in self.space.items()}
        tried = {config_key(t.params): t.number for t in study.get_trials(deepcopy=False, states=_TRIED)
                 if t.number != trial.number}
        repeated = tried.get(config_key(proposal))
        if repeated is None:
            return proposal
        choices = {name: list(dist.choices) for name, dist in self.space.items()}
        unseen = nearest_unseen(proposal, choices, set(tried), seed=trial.number)
        if unseen is None:  # every configuration tried, or too many to enumerate: the repeat runs
            return proposal
        self._origins[trial.number] = f"nearest unseen (TPE repeated #{repeated})"
        return unseen

    def sample_independent(self, study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
                           ) -> Any:
        return self.sampler.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study, trial: FrozenTrial) -> None:
        self.sampler.before_trial(study, trial)

    def after_trial(self, study, trial: FrozenTrial, state: TrialState, values) -> None:
        self.sampler.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.sampler.reseed_rng()


class PruningOptunaSearch(Searcher):
    """A Ray Tune searcher over an Optuna study that tells Optuna how each trial really ended.

    Implements Tune's custom-searcher interface (``ray.tune.search.Searcher``: :meth:`set_search_properties`,
    :meth:`suggest`, :meth:`on_trial_result`, :meth:`on_trial_complete`, :meth:`save`, :meth:`restore`) on Optuna's
    ask/tell API, with the seeded TPE sampler (Bergstra et al. 2011, "Algorithms for Hyper-Parameter
    Optimization", NeurIPS) made by :func:`tuneae.search.searcher.make_searcher`:

    - each trial is ``optuna.Study.ask`` over the space's ``CategoricalDistribution``\\ s; a trial enqueued in the
      study (``optuna.Study.enqueue_trial``: the seed project's recipe, ``points_to_evaluate``) is asked first;
    - every result is reported at its ``epoch`` (``optuna.trial.Trial.report(value, step=epoch)``), once per epoch
      (Tune repeats a trial's last result), including the last one, which Tune gives only to
      :meth:`on_trial_complete` when the scheduler stops the trial; these intermediate values are the study's
      learning curves;
    - a trial whose last epoch is below its planned ``train.epochs`` (ASHA stopped it) is told
      ``TrialState.PRUNED`` (Optuna records its last intermediate value as its value), so TPE ranks it below every
      completed trial; one that reached them, COMPLETE with its final value; a trial that errored, ended without a
      result, or whose value is not finite, FAIL (``optuna.Study.tell``);
    - a proposal repeating a configuration already tried or running is replaced by the nearest untried one inside
      the sampler (:class:`RepeatFreeSampler`), before it becomes a trial: the study has no trial for the repeat,
      so its trial states count exactly the trials Tune ran (no FAIL without an error, no PRUNED without ASHA);
      the replacement carries the user attribute ``origin`` (``nearest unseen (TPE repeated #k)``);
    - each Optuna trial carries its Tune trial id (user attribute ``tune_trial_id``);
    - :meth:`save` pickles the searcher's state (the study, whose storage reconnects to the SQLite file on
      unpickling, and the Optuna trial of each Tune trial); on :meth:`restore` (``--resume``), trials the study
      holds as RUNNING but the restored searcher never knew (asked after Tune's last save, then the driver died,
      so Tune does not know them either) are told FAIL, as Optuna's own stale-trial handling does, so the constant
      liar does not avoid them forever.

    Args:
        planned_epochs: the epochs of a trial whose config does not search ``train.epochs``.
        sampler: Optuna's sampler (wrapped in a :class:`RepeatFreeSampler`); default ``TPESampler()``.
        study_name: the study in ``storage`` (created there if missing).
        storage: the study's storage (an ``optuna.storages.RDBStorage`` or its URL); None keeps it in memory.
        metric: the reported metric minimised or maximised (else from :meth:`set_search_properties`).
        mode: ``min`` or ``max`` (else from :meth:`set_search_properties`).
        points_to_evaluate: configurations enqueued before any proposal (once: ``skip_if_exists``).
    """

    def __init__(self, *, planned_epochs: int, sampler: BaseSampler | None = None, study_name: str = "optuna",
                 storage: optuna.storages.BaseStorage | str | None = None, metric: str | None = None,
                 mode: str | None = None, points_to_evaluate: list[dict[str, Any]] | None = None):
        super().__init__(metric=metric, mode=mode)
        self._target, self._direction = metric, mode
        self._planned_epochs = int(planned_epochs)
        self._sampler = RepeatFreeSampler(sampler or optuna.samplers.TPESampler())
        self._study_name, self._storage = study_name, storage
        self._points = [dict(p) for p in points_to_evaluate or []]
        self._space: dict[str, BaseDistribution] = {}
        self._study: optuna.Study | None = None
        self._trials: dict[str, optuna.trial.Trial] = {}  # Tune trial id -> its Optuna trial
        self._reported: dict[str, set[int]] = {}  # Tune trial id -> epochs reported (Tune repeats the last result)
        self._told: set[str] = set()  # Tune trial ids whose end Optuna was told

    @property
    def metric(self) -> str | None:
        """The reported metric the search minimises or maximises."""
        return self._target

    @property
    def mode(self) -> str | None:
        """``min`` or ``max``."""
        return self._direction

    @property
    def study(self) -> optuna.Study | None:
        """The Optuna study (None before :meth:`set_search_properties`)."""
        return self._study

    @property
    def sampler(self) -> BaseSampler:
        """The sampler that proposes (inside the :class:`RepeatFreeSampler`)."""
        return self._sampler.sampler

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec) -> bool:
        """Take Tune's metric, mode and ``param_space`` (:func:`search_space`) and open the study (created if
        missing, with the direction of ``mode``), enqueueing ``points_to_evaluate``.

        Returns:
            True; False when a space is already set (Tune then keeps this searcher's space).
        """
        if self._space:
            return False
        self._space = search_space(config)
        self._target = metric or self._target
        self._direction = mode or self._direction
        if self._direction not in ("min", "max"):
            raise ValueError(f"mode {self._direction!r}: 'min' or 'max'")
        self._sampler.space = dict(self._space)
        self._study = optuna.create_study(storage=self._storage, study_name=self._study_name, sampler=self._sampler,
                                          direction="minimize" if self._direction == "min" else "maximize",
                                          load_if_exists=True)
        for point in self._points:
            self._study.enqueue_trial(point, skip_if_exists=True)
        return True

    def suggest(self, trial_id: str) -> dict | None:
        """The next configuration: ``optuna.Study.ask`` over the space (an enqueued trial first, else the
        sampler's proposal, a repeat replaced by :class:`RepeatFreeSampler`), the Optuna trial labelled with
        ``tune_trial_id`` and, for a replacement, its ``origin``.

        Raises:
            RuntimeError: no search space, metric or mode (:meth:`set_search_properties` not called).
        """
        if self._study is None or not self._target or not self._direction:
            raise RuntimeError("PruningOptunaSearch has no search space, metric or mode: Tune passes them through "
                               "set_search_properties (TuneConfig(metric, mode) and param_space)")
        trial = self._study.ask(self._space)
        origin = self._sampler.take_origin(trial.number)
        if origin is not None and "origin" not in trial.user_attrs:
            trial.set_user_attr("origin", origin)
        trial.set_user_attr("tune_trial_id", trial_id)
        self._trials[trial_id] = trial
        return _nested(trial.params)

    def _report(self, trial_id: str, result: dict | None) -> tuple[Any, Any]:
        """Report ``result``'s metric at its epoch unless already reported; returns (value, epoch) or Nones."""
        result = result or {}
        value, step = result.get(self._target), result.get(STEP_KEY)
        trial = self._trials.get(trial_id)
        if trial is None or value is None or step is None:
            return value, step
        done = self._reported.setdefault(trial_id, set())
        if int(step) not in done:
            try:
                trial.report(float(value), int(step))
            except (UpdateFinishedTrialError, ValueError, TypeError) as exc:  # told before a resume; bad value
                logger.warning("trial %s: epoch %s not reported to Optuna: %s", trial_id, step, exc)
            done.add(int(step))
        return value, step

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """Report the trial's metric at its epoch (``optuna.trial.Trial.report``)."""
        if trial_id not in self._told:
            self._report(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Tell Optuna the trial's end: COMPLETE, PRUNED (stopped before its planned epochs) or FAIL."""
        trial = self._trials.get(trial_id)
        if trial_id in self._told or trial is None:
            logger.warning("trial %s: completion not told to Optuna (already told, or unknown)", trial_id)
            return
        value, step = self._report(trial_id, result)
        planned = int(trial.params.get("train.epochs", self._planned_epochs))
        if error or value is None or step is None or not math.isfinite(float(value)):
            state, told = TrialState.FAIL, None
        elif int(step) < planned:
            state, told = TrialState.PRUNED, None
        else:
            state, told = TrialState.COMPLETE, float(value)
        try:
            self._study.tell(trial, told, state=state, skip_if_finished=True)
        except (ValueError, RuntimeError) as exc:
            logger.warning("trial %s: Optuna refused %s: %s", trial_id, state.name, exc)
        self._told.add(trial_id)

    def get_state(self) -> dict[str, Any]:
        """What :meth:`save` pickles: ``study`` (with its storage and sampler), ``trials`` (Tune trial id -> Optuna
        trial), ``reported``, ``told``, ``space``, ``metric``, ``mode``, ``planned_epochs``, ``points_to_evaluate``."""
        return {"study": self._study, "study_name": self._study_name, "storage": self._storage,
                "sampler": self._sampler, "trials": self._trials, "reported": self._reported, "told": self._told,
                "space": self._space, "metric": self._target, "mode": self._direction,
                "planned_epochs": self._planned_epochs, "points_to_evaluate": self._points}

    def set_state(self, state: dict[str, Any]) -> None:
        """Take the state of :meth:`get_state`."""
        self._study, self._study_name, self._storage = state["study"], state["study_name"], state["storage"]
        self._sampler, self._trials, self._reported = state["sampler"], state["trials"], state["reported"]
        self._told, self._space, self._points = state["told"], state["space"], state["points_to_evaluate"]
        self._target, self._direction = state["metric"], state["mode"]
        self._planned_epochs = state["planned_epochs"]

    def save(self, checkpoint_path: str) -> None:
        """Pickle :meth:`get_state` to ``checkpoint_path`` (Tune's ``searcher-state-*.pkl``). The study itself
        lives in its storage; the pickled storage reconnects to it (:class:`MovableStorage`)."""
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.get_state(), f)

    def restore(self, checkpoint_path: str) -> None:
        """Load the state :meth:`save` wrote, then tell FAIL the study's RUNNING trials the restored searcher does
        not know (asked after that save, then the driver died: no Tune trial will ever end them)."""
        with open(checkpoint_path, "rb") as f:
            self.set_state(pickle.load(f))  # written by this experiment's own driver: trusted
        if self._study is None:
            return
        known = {t.number for t in self._trials.values()}
        for t in self._study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if t.number not in known:
                self._study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
