"""The Ray Train layer: the per-worker training loop and the ``TorchTrainer`` each Tune trial launches.

The only module that imports ``ray.train``. Under Ray 2.60 (Train V2) a Tune *function* trainable builds a
``TorchTrainer`` and calls ``fit()``; ``TuneReportCallback`` forwards each rank-0 ``ray.train.report`` to Tune as
one training iteration, so ASHA's rungs count epochs (upstream: Ray docs, Train user guide "Hyperparameter Tuning
with Ray Tune"). The pure PyTorch pieces live in :mod:`tuneae.train`.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
import ray.train
import ray.train.torch
from ray.train.torch import TorchTrainer
from ray.tune.integration.ray_train import TuneReportCallback

from tuneae.checkpoint import asha_rungs, checkpoint_kind, restore_checkpoint, save_checkpoint
from tuneae.config import from_flat
from tuneae.decisions import StoppedByScheduler, wait_for_decision
from tuneae.layout import RunLayout
from tuneae.recipe import Recipe
from tuneae.train import fit, seeded_model

DATA_KEY = "_data"
"""Config key carrying ``{"ref": ObjectRef}`` of the uint8 train/val arrays (a dict, so Ray does not resolve it)."""
FAILED_KEY = "failed"
"""Key of the worker loop's return value that carries ``[error type, message]`` of a failure not worth retrying."""
NOT_RETRIED = (FloatingPointError, ValueError)
"""Errors of the worker loop that would only happen again on a retry: divergence, impossible settings or data."""
ASHA_KEYS = ("asha.grace_period", "asha.reduction_factor", "asha.max_t")
"""Trial-config keys of the search's ASHA settings; the worker derives the rung epochs it checkpoints from them."""
TRIAL_KEY = "_trial"
"""Config key carrying ``{"id": Tune trial id, "board": decision board name, "run": Train run folder}``."""
TRAIN_RUN_METRIC = "train_run"
"""Reported every epoch: the trial's Ray Train run folder (or URI), which ``ray.train.Result.from_path`` opens to
list the trial's checkpoints with their metrics (the search's results from Tune record it too)."""


WORKER_SETUP_HOOK = "tuneae.trainable.warm_worker"
"""A ``worker_process_setup_hook`` for ``ray.init(runtime_env=...)``: every Ray worker process imports this module
(torch, Ray Train, tuneae) when it starts, before a trial needs it (see ``benchmarks/overhead.py``, variant
``preimport``, for what it saves and costs)."""


def warm_worker() -> None:
    """Ray runs this at the start of every worker process of the job; importing this module did the work."""


def asha_config(grace_period: int, reduction_factor: float, max_t: int) -> dict[str, float]:
    """The :data:`ASHA_KEYS` entries of a trial config, for the search to add to every trial's config."""
    return dict(zip(ASHA_KEYS, (grace_period, reduction_factor, max_t), strict=True))


@dataclass(frozen=True)
class TrialResources:
    """Resources of one trial's Ray Train run.

    The Tune driver function itself takes no CPU (it waits on ``fit``) and the Train controller actor takes none
    (``num_cpus=0`` upstream), so only the workers hold CPUs/GPUs: a trial can never wait on its own driver.
    """

    workers: int = 1
    """Train workers (DDP processes) per trial."""
    cpus_per_worker: float = 1.0
    """CPUs per worker; torch uses this many threads."""
    gpus_per_worker: float = 0.0
    """GPUs per worker; fractions such as 0.25 pack several small trials on one GPU."""

    def per_worker(self) -> dict[str, float]:
        """``resources_per_worker`` for ``ScalingConfig``."""
        res = {"CPU": self.cpus_per_worker}
        if self.gpus_per_worker > 0:
            res["GPU"] = self.gpus_per_worker
        return res


def train_loop_per_worker(config: dict[str, Any]) -> dict[str, str] | None:
    """Ray Train worker loop: build the model, restore the latest checkpoint, run :func:`tuneae.train.fit`.

    Args:
        config: flat ``section.field`` config (see :func:`tuneae.config.to_flat`) plus ``DATA_KEY`` and, in a
            search, the :data:`ASHA_KEYS` (the rung epochs are checkpointed).
    Reports per epoch: ``train/loss``, ``val/loss``, ``val/mse``, ``val/psnr`` (dB), ``epoch``, ``node_id`` (the
    Ray node of this worker), ``checkpoint/bytes`` and ``checkpoint/save_s`` (what rank 0 wrote, 0 when nothing),
    :data:`TRAIN_RUN_METRIC`; a checkpoint folder where :func:`tuneae.checkpoint.checkpoint_kind` asks for one.
    After reporting a rung epoch the worker waits for the scheduler's decision (:mod:`tuneae.decisions`) and ends
    the loop, writing nothing more, when the trial was stopped there.
    Returns:
        None, or ``{FAILED_KEY: [type name, message]}`` for an error of :data:`NOT_RETRIED` (the loss diverged,
        or settings or data training cannot use). It is returned, not raised, because Ray Train retries every
        worker error from the last checkpoint (``max_failures``) and these would only happen again;
        :func:`run_trial` raises it after ``fit``.
    """
    cfg = from_flat(config)
    data_cfg, train_cfg = cfg.data, cfg.train
    arrays = ray.get(config[DATA_KEY]["ref"])  # {"train": (N,1,S,S) uint8, "val": (M,1,S,S) uint8}, read-only
    rank, world = ray.train.get_context().get_world_rank(), ray.train.get_context().get_world_size()
    device = ray.train.torch.get_device()
    model = seeded_model(cfg.model, train_cfg)
    recipe = Recipe(model, train_cfg, device)  # optimizer, LR schedule, weight average (tuneae.recipe)
    start_epoch = 0
    resume = ray.train.get_checkpoint()
    if resume is not None:  # a restarted worker group or a resumed experiment continues where it stopped
        with resume.as_directory() as folder:
            start_epoch, exact = restore_checkpoint(folder, model, recipe)
        if rank == 0 and not exact:
            print(f"[tuneae] resumed at epoch {start_epoch} from a weights-only checkpoint: the optimizer's "
                  f"moments (and a weight average) start afresh")
    rungs = asha_rungs(*(config[k] for k in ASHA_KEYS)) if all(k in config for k in ASHA_KEYS) else ()
    node_id = ray.get_runtime_context().get_node_id()  # shows where each trial ran (trials.csv), not sent to W&B
    trial = config.get(TRIAL_KEY, {})

    def report(epoch: int, metrics: dict[str, float]) -> None:
        kind = checkpoint_kind(epoch, train_cfg.epochs, train_cfg.checkpoint_every, rungs)
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint, written, took = None, 0, 0.0
            if kind and rank == 0:
                t = time.perf_counter()
                save_checkpoint(tmp, model, data_cfg, train_cfg, epoch, metrics, recipe, resume=kind == "resume")
                took = time.perf_counter() - t
                written = sum(f.stat().st_size for f in Path(tmp).iterdir())
                checkpoint = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report({**metrics, "node_id": node_id, "checkpoint/bytes": written,
                              "checkpoint/save_s": took, TRAIN_RUN_METRIC: trial.get("run", "")},
                             checkpoint=checkpoint)
        if epoch in rungs and epoch < train_cfg.epochs and wait_for_decision(trial.get("board", ""),
                                                                             trial.get("id", ""), epoch):
            raise StoppedByScheduler(epoch)

    try:  # every rank raises at the same step (fit agrees across ranks), so all return together
        fit(model, arrays["train"], arrays["val"], train_cfg, device, report, optimizer=recipe,
            start_epoch=start_epoch, rank=rank, world_size=world, wrap=ray.train.torch.prepare_model)
    except NOT_RETRIED as exc:
        return {FAILED_KEY: [type(exc).__name__, str(exc)]}
    except StoppedByScheduler:  # every rank waited for the same decision: all end here
        return None
    return None


def run_trial(config: dict[str, Any], *, data_box: dict, resources: TrialResources, train_storage: str,
              max_failures: int = 2, decision_board: str = "") -> None:
    """Tune function trainable: launch one ``TorchTrainer`` run for this trial's config and wait for it.

    Args:
        config: the trial's flat config (sampled by the searcher).
        data_box: ``{"ref": ObjectRef}`` of the uint8 arrays (put once by the search driver).
        resources: per-trial worker resources.
        train_storage: folder (or URI) under which each trial's Train run keeps its checkpoints.
        max_failures: restarts of a failed worker group (a lost node, a worker error) from the latest checkpoint.
        decision_board: the experiment's :class:`tuneae.decisions.DecisionBoard` name ("": none, never wait).
    Raises:
        ray.train.TrainingFailedError: the run failed beyond ``max_failures`` (Tune marks the trial errored).
        FloatingPointError: the loss diverged (not retried; Tune marks the trial errored with this reason).
        ValueError: settings or data that training cannot use (not retried either).
    """
    trial_id = ray.tune.get_context().get_trial_id()  # stable across driver restarts: resume finds its run
    run = f"{train_storage.rstrip('/')}/{RunLayout.trial_run(trial_id)}"
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={**config, DATA_KEY: data_box,
                           TRIAL_KEY: {"id": trial_id, "board": decision_board, "run": run}},
        scaling_config=ray.train.ScalingConfig(
            num_workers=resources.workers, use_gpu=resources.gpus_per_worker > 0,
            resources_per_worker=resources.per_worker()),
        run_config=ray.train.RunConfig(
            name=RunLayout.trial_run(trial_id),
            storage_path=train_storage,
            callbacks=[TuneReportCallback()],
            # Two, not one: when ASHA stops a trial at a rung, the worker may already have checkpointed the next
            # epoch before Tune stops it; the rung's checkpoint, which the trial's last result names, must survive.
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
            failure_config=ray.train.FailureConfig(max_failures=max_failures),
        ),
    )
    outcome = trainer.fit().return_value or {}  # rank 0's return value
    if outcome.get(FAILED_KEY):
        name, message = outcome[FAILED_KEY]
        raise {e.__name__: e for e in NOT_RETRIED}[name](message)
