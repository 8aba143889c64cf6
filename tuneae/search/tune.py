"""The Tune wiring of one model kind: trainable, searcher, scheduler and ``Tuner``; how many trials run at once.

One Ray Tune experiment per model kind (their objectives differ): Optuna's TPE searcher (:mod:`.searcher`)
proposes configs from categorical choices, ASHA (Li et al. 2020, "A System for Massively Parallel Hyperparameter
Tuning", MLSys; ``ray.tune.schedulers.ASHAScheduler``) stops weak trials at rungs counted in epochs, and each trial
trains under Ray Train (:func:`tuneae.trainable.run_trial`). The only module that imports ``ray.tune``'s ``Tuner``.
"""
from __future__ import annotations

import math

from tuneae import tracking
from tuneae.checkpoint import asha_rungs
from tuneae.config import Config, SearchConfig
from tuneae.layout import RunLayout
from tuneae.run.best import METRIC, MODE
from tuneae.search.searcher import make_searcher
from tuneae.search.space import kind_space, max_t, param_space
from tuneae.search.study import STEP_KEY


def derive_max_concurrent(cluster: dict[str, float], search: SearchConfig) -> int:
    """How many trials run at once.

    The Tune driver functions take no CPU and the Train controllers take none (``num_cpus=0`` upstream), so only
    the workers hold resources and a waiting trial never blocks a running one: no deadlock at any concurrency.
    Without ``max_concurrent`` the number is what the cluster holds now,
    ``floor(CPUs / (workers * cpus_per_worker))`` and likewise for GPUs when requested (at least 1: an
    autoscaling cluster adds nodes for a pending trial). A set ``max_concurrent`` (> 0) is used as given, so a
    cluster that scales up from zero GPUs can still run many trials.

    Args:
        cluster: ``ray.cluster_resources()`` (e.g. ``{"CPU": 2.0, "GPU": 0.0, ...}``).
        search: the resolved search config (resources per trial, ``max_concurrent``).
    Returns:
        The concurrency, >= 1.
    """
    if search.max_concurrent > 0:
        return search.max_concurrent
    per_cpu = search.workers_per_trial * search.cpus_per_trial
    n = math.floor(cluster.get("CPU", 0.0) / per_cpu + 1e-9)
    if search.gpus_per_trial > 0:
        n = min(n, math.floor(cluster.get("GPU", 0.0) / (search.workers_per_trial * search.gpus_per_trial) + 1e-9))
    return max(n, 1)


def _trial_dirname(trial) -> str:
    return f"trial_{trial.trial_id}"


def _trainable(layout: RunLayout, search: SearchConfig, data_box: dict, board: str):
    """The trial function with its data, resources, Train storage and decision board bound, and its own
    (near-zero) resources."""
    from ray import tune

    from tuneae.trainable import TrialResources, run_trial

    resources = TrialResources(search.workers_per_trial, search.cpus_per_trial, search.gpus_per_trial)
    trainable = tune.with_parameters(run_trial, data_box=data_box, resources=resources,
                                     train_storage=layout.train_dir, decision_board=board)
    # The driver function only waits on TorchTrainer.fit(): no CPU, a sliver of the head node's marker resource
    # (an all-zero request is rejected). Drivers therefore never starve workers of CPUs: no deadlock.
    return tune.with_resources(trainable, {"CPU": 0, "node:__internal_head__": 0.001})


def run_one(kind: str, cfg: Config, data_box: dict, max_concurrent: int, resume: bool):
    """Run (or resume) the Tune experiment of one model kind under ``RunLayout.of(search).kind_dir(kind)``.

    Optuna TPE (Bergstra et al. 2011; :func:`tuneae.search.searcher.make_searcher`, its study in
    ``RunLayout.study_file``) proposes configs, ASHA (Li et al. 2020) stops trials at rungs counted by the
    reported ``epoch`` (:func:`tuneae.search.space.max_t`), each trial is :func:`tuneae.trainable.run_trial`
    (upstream API: ``ray.tune.Tuner``, ``ray.tune.search.optuna.OptunaSearch``, ``ray.tune.schedulers.ASHAScheduler``).

    Args:
        kind: the model kind searched.
        cfg: the resolved root config; ``kind_space(cfg.search, kind)`` is searched.
        data_box: ``{"ref": ObjectRef}`` of the uint8 train/val arrays in the Ray object store.
        max_concurrent: trials running at once (:func:`derive_max_concurrent`).
        resume: continue a saved experiment at that path when one exists (finished trials are kept, errored ones
            stay failed); a kind whose saved trials all finished is returned without running anything.
    Returns:
        The ``ray.tune.ResultGrid``; failed trials are in it with their error (Tune's ``max_failures=0``), not raised.
    Raises:
        KeyboardInterrupt: a second Ctrl-C (the first makes Tune save its state and return).
        Exception: an error outside the trials (Tune itself, a failed restore), which ``Tuner.fit`` re-raises
            (upstream: ``ray.tune.Tuner.fit`` docs).
    """
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from tuneae.decisions import DecisionCallback, board_name

    search = cfg.search
    layout = RunLayout.of(search)
    path = layout.kind_dir(kind)
    board = board_name(path)  # a stopped trial's workers stop at its rung (tuneae.decisions)
    trainable = _trainable(layout, search, data_box, board)
    space = param_space(kind, cfg)
    callback = tracking.tune_callback(search.wandb_project, f"{search.name}-{kind}") if search.wandb else None
    if resume and tune.Tuner.can_restore(path):
        from tuneae.search.optuna_search import study_file_now

        # Unfinished trials continue (keeping their ids) from their Train checkpoints, finished ones are kept,
        # errored ones stay failed (a diverged trial would only diverge again), and the searcher and scheduler
        # reload their state from `path`. The W&B callback comes back from the saved tuner state. The pickled
        # searcher reconnects to the study where it is now (the experiment folder may have moved).
        with study_file_now(layout.study_file):
            tuner = tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True, resume_errored=False,
                                       param_space=space)
            done = tuner.get_results()
            if done.num_terminated + done.num_errors >= search.num_samples:
                print(f"[tuneae] {kind} already finished in {path}; kept as it is", flush=True)
                return done
            print(f"[tuneae] resuming {kind} from {path}", flush=True)
            return tuner.fit()
    choices = kind_space(search, kind)
    last = max_t(choices, cfg.train)
    # Rungs count the reported `epoch`, not Tune's iterations: a trial resumed after a driver restart
    # continues from its Train checkpoint at epoch k + 1 while its iteration count starts again at 1.
    scheduler = ASHAScheduler(time_attr=STEP_KEY, max_t=last, grace_period=search.grace_period,
                              reduction_factor=search.reduction_factor)
    rungs = asha_rungs(search.grace_period, search.reduction_factor, last, below_max_t=True)
    searcher = make_searcher(kind, choices, cfg.train.epochs, num_samples=search.num_samples,
                             max_concurrent=max_concurrent, seed=search.seed, study_file=layout.study_file, mode=MODE,
                             rungs=[float(r) for r in rungs])
    tuner = tune.Tuner(
        trainable, param_space=space,
        tune_config=tune.TuneConfig(metric=METRIC, mode=MODE, search_alg=searcher, scheduler=scheduler,
                                    num_samples=search.num_samples, max_concurrent_trials=max_concurrent,
                                    trial_dirname_creator=_trial_dirname),
        run_config=tune.RunConfig(name=kind, storage_path=layout.experiment,
                                  callbacks=[DecisionCallback(board, STEP_KEY), *([callback] if callback else [])],
                                  verbose=1, failure_config=tune.FailureConfig(max_failures=0)),
    )
    return tuner.fit()


def saved_statuses(path: str) -> dict[str, str]:
    """Trial id -> status in the experiment state that Tune saved last under ``path`` (what ``--resume`` continues).

    On Ctrl-C Tune saves its state (unfinished trials still ``RUNNING`` or ``PENDING``) and only then stops the
    trials, which the returned ``ResultGrid`` then shows as ``TERMINATED``; the saved state tells them apart.

    Args:
        path: one kind's experiment folder, :meth:`tuneae.layout.RunLayout.kind_dir` (local path or URI).
    Returns:
        ``{trial_id: status}`` with Tune's statuses (``TERMINATED``, ``ERROR``, ``RUNNING``, ``PENDING``, ...).
    Raises:
        ValueError: no experiment state file under ``path`` (upstream: ``ray.tune.ExperimentAnalysis``).
    """
    from ray.tune import ExperimentAnalysis

    return {t.trial_id: t.status for t in ExperimentAnalysis(path).trials}
