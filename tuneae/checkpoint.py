"""Self-describing checkpoints: config, weights, epoch, metrics and package version in one file.

A checkpoint folder holds ``model.pt`` (everything needed to rebuild and evaluate the model; loaded with
``torch.load(..., weights_only=True)``) and, in resume checkpoints only, ``optimizer.pt``: the resume state of the
training recipe (:meth:`tuneae.recipe.Recipe.state_dict`: optimizer, LR scheduler and, with a weight average, the
raw weights and the average's state). **Which weights**: ``model.pt`` holds the weights that were validated, the
weight average's when ``TrainConfig.ema_decay > 0`` (``"weights": "ema"`` in the payload), else the trained ones
(``"raw"``), so a reloaded model reproduces its reported metrics; the raw weights a resume continues from are in
``optimizer.pt``.
Both are written atomically (temporary file + ``os.replace``), so a crash never leaves a half-written file.
A trial checkpoints only where a checkpoint is used (:func:`checkpoint_kind`): at the scheduler's rungs and its
last epoch (weights) and every ``TrainConfig.checkpoint_every`` epochs (weights + resume state).
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch.torch_version import TorchVersion

from tuneae.config import DataConfig, ModelConfig, TrainConfig
from tuneae.files import atomic_torch_save
from tuneae.models import Autoencoder, build_model
from tuneae.recipe import Recipe, resume_parts

MODEL_FILE = "model.pt"
OPTIMIZER_FILE = "optimizer.pt"
REQUIRED_KEYS = ("model_config", "data_config", "train_config", "state_dict", "epoch", "metrics")
"""Payload keys :func:`load_checkpoint` requires; :func:`save_checkpoint` always writes them (the report reads
``data_config`` and ``train_config`` to reload the validation split and re-evaluate)."""


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable or does not match its model config (message names the file)."""


def package_version() -> str:
    """The installed tuneae version (``"unknown"`` when run from a source tree without installing)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tuneae")
    except PackageNotFoundError:
        return "unknown"


def save_checkpoint(folder: str | os.PathLike, model: Autoencoder, data_cfg: DataConfig, train_cfg: TrainConfig,
                    epoch: int, metrics: dict[str, float], optimizer: torch.optim.Optimizer | Recipe | None = None, *,
                    resume: bool = True) -> Path:
    """Write ``folder/model.pt`` (and ``optimizer.pt`` when given with ``resume``) atomically.

    Args:
        model: the unwrapped model (not DDP) holding the raw weights; moved to CPU.
        optimizer: the trial's :class:`tuneae.recipe.Recipe` (``model.pt`` then takes its validated weights, the
            average's with ``ema_decay > 0``), or a bare optimizer (``model.pt`` takes ``model``'s weights).
        resume: also write the resume state ``optimizer.pt`` (the recipe's, or the bare optimizer's).
        epoch: epochs completed (1-based).
        metrics: the metrics reported for this epoch (``val/loss`` ...); non-numeric values are dropped.
    Returns:
        The path of ``model.pt``.
    Raises:
        OSError: the folder cannot be created or written (see :func:`atomic_torch_save`).
    """
    folder = Path(folder)
    weights = optimizer.validated if isinstance(optimizer, Recipe) else model
    payload = {
        "model_config": asdict(model.cfg),
        "data_config": asdict(data_cfg),
        "train_config": asdict(train_cfg),
        "state_dict": {k: v.detach().cpu() for k, v in weights.state_dict().items()},
        "weights": "raw" if weights is model else "ema",
        "epoch": int(epoch),
        "metrics": {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))},
        "tuneae_version": package_version(),
        "torch_version": str(torch.__version__),  # plain str: TorchVersion is not a weights_only global
    }
    atomic_torch_save(payload, folder / MODEL_FILE)
    if optimizer is not None and resume:
        atomic_torch_save(optimizer.state_dict(), folder / OPTIMIZER_FILE)
    return folder / MODEL_FILE


def _read_payload(path: str | os.PathLike, map_location: str | torch.device) -> tuple[Path, dict]:
    """(path of ``model.pt``, its payload) with every :data:`REQUIRED_KEYS` present.

    Raises:
        CheckpointError: the file is missing or unreadable, not a dict, or lacks a required key (names the file).
    """
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    try:
        # TorchVersion (a str subclass) is allowed for checkpoints written before the version was stored as str.
        with torch.serialization.safe_globals([TorchVersion]):
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(payload, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(payload).__name__}, not a dict; "
                              f"not a tuneae checkpoint")
    for key in REQUIRED_KEYS:
        if key not in payload:
            raise CheckpointError(f"checkpoint {path} lacks {key!r}; not a tuneae checkpoint")
    return path, payload


def _load_weights(model: Autoencoder, payload: dict, path: Path) -> None:
    try:
        model.load_state_dict(payload["state_dict"])
    except (TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint {path} does not match its model config "
                              f"{payload['model_config']}: {exc}") from exc


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[Autoencoder, dict]:
    """Rebuild a model from a checkpoint file or folder alone.

    Args:
        path: ``model.pt`` or the folder holding it.
        map_location: where the tensors are loaded (``torch.load``'s ``map_location``); the model is built there.
    Returns:
        (model in eval mode, payload dict with ``model_config``, ``data_config``, ``train_config``, ``epoch``,
        ``metrics``, ``tuneae_version``).
    Raises:
        CheckpointError: the file is missing or unreadable, lacks one of :data:`REQUIRED_KEYS`, or its weights do
            not fit its model config; the message names the file (and the missing key).
    """
    path, payload = _read_payload(path, map_location)
    try:
        model = build_model(ModelConfig(**payload["model_config"]))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} does not match its model config "
                              f"{payload['model_config']}: {exc}") from exc
    _load_weights(model, payload, path)
    model.eval()
    return model, payload


def restore_checkpoint(folder: str | os.PathLike, model: Autoencoder,
                       optimizer: torch.optim.Optimizer | Recipe | None = None) -> tuple[int, bool]:
    """Continue a trial from a checkpoint folder: its weights into ``model``, its resume state (when the folder
    holds ``optimizer.pt``, i.e. a resume checkpoint) into ``optimizer``.

    Tensors are loaded on the CPU; :func:`tuneae.train.fit` moves model and optimizer state to the device. With a
    resume state that holds raw weights (a weight average was on) those replace ``model.pt``'s averaged ones.

    Args:
        folder: a checkpoint folder written by :func:`save_checkpoint`.
        model: a model built from the same config (e.g. :func:`tuneae.train.seeded_model`).
        optimizer: the trial's :class:`tuneae.recipe.Recipe` (optimizer, schedule and average restored; the
            optimizer and schedule applied when :func:`tuneae.train.fit` starts it), a bare optimizer over
            ``model``'s parameters (its state only), or None to restore the weights only.
    Returns:
        (epochs completed at the checkpoint, whether the resume state was restored). Without it (a weights-only
        checkpoint) the optimizer starts with fresh moments from the restored weights, the schedule where the
        epoch puts it, the average at the restored weights.
    Raises:
        CheckpointError: an unreadable checkpoint or optimizer file, or one of another model config (names the
            file).
    """
    path, payload = _read_payload(folder, "cpu")
    if payload["model_config"] != asdict(model.cfg):
        raise CheckpointError(f"checkpoint {path} holds model config {payload['model_config']}, which does not "
                              f"match the trial's {asdict(model.cfg)}")
    _load_weights(model, payload, path)
    opt_path = path.parent / OPTIMIZER_FILE
    if optimizer is None or not opt_path.is_file():
        return int(payload["epoch"]), False
    try:
        state = resume_parts(torch.load(opt_path, map_location="cpu", weights_only=True))
        if isinstance(optimizer, Recipe):
            optimizer.load_state_dict(state)
        else:
            if state.get("model") is not None:
                model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
    except Exception as exc:
        raise CheckpointError(f"cannot restore the optimizer state {opt_path}: {exc}") from exc
    return int(payload["epoch"]), True


def configs_of(payload: dict) -> tuple[DataConfig, ModelConfig, TrainConfig]:
    """The (data, model, train) configs stored in a checkpoint payload.

    Args:
        payload: the dict returned by :func:`load_checkpoint` (which guarantees the three config keys).
    Returns:
        (DataConfig, ModelConfig, TrainConfig) rebuilt from ``data_config``, ``model_config``, ``train_config``.
    Raises:
        KeyError: a config key is missing (a payload not from :func:`load_checkpoint`).
        TypeError: a stored config has a field the installed tuneae does not know (written by another version).
    """
    return (DataConfig(**payload["data_config"]), ModelConfig(**payload["model_config"]),
            TrainConfig(**payload["train_config"]))


# ---------------------------------------------------------------------------------- when a trial checkpoints
def asha_rungs(grace_period: float, reduction_factor: float, max_t: float, *,
               below_max_t: bool = False) -> tuple[int, ...]:
    """The epochs at which Ray's ``ASHAScheduler`` (one bracket) records a trial and may stop it.

    Milestones ``grace_period * reduction_factor**k`` for ``k < int(log(max_t / grace_period) /
    log(reduction_factor) + 1)``, computed as Ray 2.60 computes them (``ray/tune/schedulers/async_hyperband.py``,
    ``_Bracket``; Li et al. 2020, "A System for Massively Parallel Hyperparameter Tuning"); a trial reporting once
    per epoch reaches a milestone at the first epoch >= it, hence the ceiling.

    Args:
        grace_period: ASHA's grace period in epochs, >= 1.
        reduction_factor: ASHA's reduction factor, > 1.
        max_t: the largest epoch count searched (ASHA's ``max_t``).
        below_max_t: leave out a rung at ``max_t`` or later, which ends every trial anyway: the epochs at which
            ASHA may *stop* a trial (what the searcher's study records).
    Returns:
        The rung epochs, ascending (empty when ``max_t < grace_period``), e.g. ``(1, 3, 9)`` for grace 1, factor 3
        and 9 epochs, ``(1, 3)`` below max_t.
    """
    if max_t < grace_period:
        return ()
    n = int(np.log(max_t / grace_period) / np.log(reduction_factor) + 1)
    rungs = sorted({math.ceil(grace_period * reduction_factor ** k) for k in range(n)})
    return tuple(r for r in rungs if r < max_t or not below_max_t)


def checkpoint_kind(epoch: int, epochs: int, every: int, rungs: Iterable[int] = ()) -> str:
    """What a trial writes after ``epoch``: ``"resume"`` (weights + the recipe's resume state), ``"weights"`` or
    ``""``.

    Weights-only at the last epoch (nothing resumes from it; the report reads it) and at the scheduler's rungs,
    also when a rung falls on a multiple of ``every``: most trials stop at a rung (all but 1 / reduction factor),
    and the report needs only their weights; a trial that goes on past a rung and is interrupted before its next
    resume checkpoint resumes from the rung's weights (the average's, with one) with fresh optimizer moments and its
    schedule moved to the rung. Weights and resume state every ``every`` epochs otherwise.

    Args:
        epoch: the epoch just finished (1-based).
        epochs: the trial's last epoch (``TrainConfig.epochs``).
        every: ``TrainConfig.checkpoint_every`` (0: no resume checkpoints).
        rungs: :func:`asha_rungs` of the search's scheduler (empty without one).
    Returns:
        ``"resume"``, ``"weights"`` or ``""`` (no checkpoint).
    """
    if epoch >= epochs or epoch in set(rungs):
        return "weights"
    return "resume" if every > 0 and epoch % every == 0 else ""
