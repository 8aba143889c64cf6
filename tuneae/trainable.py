"""The Ray Train layer: the per-worker training loop and the ``TorchTrainer`` each Tune trial launches.

The only module that imports ``ray.train``. Under Ray 2.60 (Train V2) a Tune *function* trainable builds a
``TorchTrainer`` and calls ``fit()``; ``TuneReportCallback`` forwards each rank-0 ``ray.train.report`` to Tune as
one training iteration, so ASHA's rungs count epochs (upstream: Ray docs, Train user guide "Hyperparameter Tuning
with Ray Tune"). The pure PyTorch pieces live in :mod:`tuneae.train`.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
import ray.train
import ray.train.torch
import torch
from ray.train.torch import TorchTrainer
from ray.tune.integration.ray_train import TuneReportCallback
from torch.utils.data.distributed import DistributedSampler

from tuneae.checkpoint import MODEL_FILE, OPTIMIZER_FILE, save_checkpoint
from tuneae.config import from_flat
from tuneae.layout import RunLayout
from tuneae.models import build_model
from tuneae.train import LossModule, eval_batch_size, evaluate, make_loader, train_one_epoch

DATA_KEY = "_data"
"""Config key carrying ``{"ref": ObjectRef}`` of the uint8 train/val arrays (a dict, so Ray does not resolve it)."""
DIVERGED_KEY = "diverged"
"""Key of the worker loop's return value that carries the reason a trial diverged."""


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
    """Ray Train worker loop: build the model, resume from the latest checkpoint, report once per epoch.

    Args:
        config: flat ``section.field`` config (see :func:`tuneae.config.to_flat`) plus ``DATA_KEY``.
    Reports per epoch: ``train/loss``, ``val/loss``, ``val/mse``, ``val/psnr`` (dB), ``epoch``, ``node_id`` (the
    Ray node of this worker) and a checkpoint folder with ``model.pt`` (self-describing) and ``optimizer.pt``
    written by rank 0.
    Returns:
        None, or ``{DIVERGED_KEY: reason}`` when the loss diverged. Divergence is returned, not raised, because
        Ray Train retries every worker error from the last checkpoint (``max_failures``), and a diverged trial
        would only diverge again; :func:`run_trial` raises it after ``fit``.
    """
    data_cfg, model_cfg, train_cfg = from_flat(config)
    arrays = ray.get(config[DATA_KEY]["ref"])  # {"train": (N,1,S,S) uint8, "val": (M,1,S,S) uint8}, read-only
    ctx = ray.train.get_context()
    rank = ctx.get_world_rank()
    device = ray.train.torch.get_device()
    torch.manual_seed(train_cfg.seed)

    model = build_model(model_cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=train_cfg.lr)
    start_epoch = 0
    resume = ray.train.get_checkpoint()
    if resume is not None:  # a restarted worker group or a resumed experiment continues where it stopped
        with resume.as_directory() as folder:
            payload = torch.load(Path(folder) / MODEL_FILE, map_location="cpu", weights_only=True)
            model.load_state_dict(payload["state_dict"])
            optimizer.load_state_dict(torch.load(Path(folder) / OPTIMIZER_FILE, map_location="cpu",
                                                 weights_only=True))
            start_epoch = int(payload["epoch"])

    loss_module = ray.train.torch.prepare_model(LossModule(model))  # DDP when world size > 1; moves to device
    for state in optimizer.state.values():  # optimizer state follows the model to the device
        for k, v in state.items():
            if torch.is_tensor(v) and k != "step":
                state[k] = v.to(device)
    train_loader = ray.train.torch.prepare_data_loader(
        make_loader(arrays["train"], train_cfg.batch_size, shuffle=True, seed=train_cfg.seed + rank))
    val_loader = make_loader(arrays["val"], eval_batch_size(train_cfg.batch_size), shuffle=False)
    gen = torch.Generator().manual_seed(train_cfg.seed * 1000 + rank)
    node_id = ray.get_runtime_context().get_node_id()  # shows where each trial ran (trials.csv), not sent to W&B

    for epoch in range(start_epoch + 1, train_cfg.epochs + 1):
        sampler = getattr(train_loader, "sampler", None)
        if isinstance(sampler, DistributedSampler):
            sampler.set_epoch(epoch)
        try:  # every rank raises at the same step (train_one_epoch agrees across ranks), so all return together
            train_loss = train_one_epoch(loss_module, model_cfg.kind, train_loader, optimizer, device, train_cfg,
                                         gen)
        except FloatingPointError as exc:
            return {DIVERGED_KEY: str(exc)}
        metrics = {"train/loss": train_loss, **evaluate(model, val_loader, device, train_cfg), "epoch": epoch}
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = None
            if rank == 0:
                save_checkpoint(tmp, model, data_cfg, train_cfg, epoch, metrics, optimizer)
                checkpoint = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report({**metrics, "node_id": node_id}, checkpoint=checkpoint)
    return None


def run_trial(config: dict[str, Any], *, data_box: dict, resources: TrialResources, train_storage: str,
              max_failures: int = 2) -> None:
    """Tune function trainable: launch one ``TorchTrainer`` run for this trial's config and wait for it.

    Args:
        config: the trial's flat config (sampled by the searcher).
        data_box: ``{"ref": ObjectRef}`` of the uint8 arrays (put once by the search driver).
        resources: per-trial worker resources.
        train_storage: folder (or URI) under which each trial's Train run keeps its checkpoints.
        max_failures: restarts of a failed worker group (a lost node, a worker error) from the latest checkpoint.
    Raises:
        ray.train.TrainingFailedError: the run failed beyond ``max_failures`` (Tune marks the trial errored).
        FloatingPointError: the loss diverged (not retried; Tune marks the trial errored with this reason).
    """
    trial_id = ray.tune.get_context().get_trial_id()  # stable across driver restarts: resume finds its run
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={**config, DATA_KEY: data_box},
        scaling_config=ray.train.ScalingConfig(
            num_workers=resources.workers, use_gpu=resources.gpus_per_worker > 0,
            resources_per_worker=resources.per_worker()),
        run_config=ray.train.RunConfig(
            name=RunLayout.trial_run(trial_id),
            storage_path=train_storage,
            callbacks=[TuneReportCallback()],
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=1),
            failure_config=ray.train.FailureConfig(max_failures=max_failures),
        ),
    )
    outcome = trainer.fit().return_value or {}  # rank 0's return value
    if outcome.get(DIVERGED_KEY):
        raise FloatingPointError(outcome[DIVERGED_KEY])
