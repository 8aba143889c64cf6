"""Self-describing checkpoints: config, weights, epoch, metrics and package version in one file.

A checkpoint folder holds ``model.pt`` (everything needed to rebuild and evaluate the model; loaded with
``torch.load(..., weights_only=True)``) and ``optimizer.pt`` (Adam state, only for resuming a trial).
Both are written atomically (temporary file + ``os.replace``), so a crash never leaves a half-written file.
"""
from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import torch
from torch.torch_version import TorchVersion

from tuneae.config import DataConfig, ModelConfig, TrainConfig
from tuneae.files import atomic_torch_save
from tuneae.models import Autoencoder, build_model

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
                    epoch: int, metrics: dict[str, float], optimizer: torch.optim.Optimizer | None = None) -> Path:
    """Write ``folder/model.pt`` (and ``optimizer.pt`` when given) atomically.

    Args:
        model: the unwrapped model (not DDP); its weights are moved to CPU.
        epoch: epochs completed (1-based).
        metrics: the metrics reported for this epoch (``val/loss`` ...); non-numeric values are dropped.
    Returns:
        The path of ``model.pt``.
    Raises:
        OSError: the folder cannot be created or written (see :func:`atomic_torch_save`).
    """
    folder = Path(folder)
    payload = {
        "model_config": asdict(model.cfg),
        "data_config": asdict(data_cfg),
        "train_config": asdict(train_cfg),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "epoch": int(epoch),
        "metrics": {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))},
        "tuneae_version": package_version(),
        "torch_version": str(torch.__version__),  # plain str: TorchVersion is not a weights_only global
    }
    atomic_torch_save(payload, folder / MODEL_FILE)
    if optimizer is not None:
        atomic_torch_save(optimizer.state_dict(), folder / OPTIMIZER_FILE)
    return folder / MODEL_FILE


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
    try:
        model = build_model(ModelConfig(**payload["model_config"]))
        model.load_state_dict(payload["state_dict"])
    except (TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint {path} does not match its model config "
                              f"{payload['model_config']}: {exc}") from exc
    model.eval()
    return model, payload


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
