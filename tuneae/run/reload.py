"""Reload what a run trained: each best trial's model from its checkpoint alone, the data it was trained on, and
a check that the reloaded model reproduces the validation loss the search reported."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from tuneae.checkpoint import CheckpointError, configs_of, load_checkpoint
from tuneae.config import DataConfig
from tuneae.data import DataError, Splits, load_splits, read_manifest
from tuneae.layout import resolve_recorded
from tuneae.models import Autoencoder
from tuneae.run.errors import RunError
from tuneae.run.find import Run, Trial
from tuneae.train import eval_batch_size, evaluate, make_loader

RELOAD_RTOL = 1e-4
"""Relative tolerance within which the reloaded val/loss counts as reproducing the search's."""


def load_model(trial: Trial) -> tuple[Autoencoder, dict]:
    """Rebuild a trial's model from its checkpoint alone (``torch.load(weights_only=True)``), in eval mode.

    Args:
        trial: the trial (its kind and checkpoint folder).
    Returns:
        (the model on the CPU, the checkpoint's payload: ``data_config``, ``model_config``, ``train_config``,
        ``epoch``, ``metrics``).
    Raises:
        RunError: the checkpoint is unreadable, does not match its model config, or is of another kind.
    """
    try:
        model, payload = load_checkpoint(trial.checkpoint)
    except CheckpointError as exc:
        raise RunError(f"{trial.kind} (trial {trial.trial_id}): {exc}") from exc
    if model.cfg.kind != trial.kind:
        raise RunError(f"checkpoint {trial.checkpoint} holds a {model.cfg.kind!r} model, expected {trial.kind!r}")
    return model, payload


def data_config(payload: dict, run: Run, source: str | None = None) -> DataConfig:
    """The checkpoint's data settings, with the source overridden by ``source`` (``--data``) when given.

    Without an override, a data folder that does not exist from here is replaced by the folder the summary
    recorded (relative to the results folder) when that one exists; a cache folder that does not exist by the run
    layout's (``<storage_path>/cache``).

    Args:
        payload: a checkpoint payload (``data_config``).
        run: the run (its summary and layout).
        source: the ``--data`` override, or None.
    Returns:
        The data settings to load the splits with.
    """
    cfg = DataConfig(**payload["data_config"])
    recorded = resolve_recorded(run.summary.data_source if run.summary else "", run.layout.results)
    if source:
        cfg = replace(cfg, source=source)
    elif not Path(cfg.source).expanduser().exists() and os.path.isabs(recorded) and Path(recorded).is_dir():
        cfg = replace(cfg, source=recorded)
    if not Path(cfg.cache_dir).expanduser().exists() and run.layout.local:
        cfg = replace(cfg, cache_dir=str(run.layout.cache_dir))
    return cfg


def load_data(models: dict[str, tuple[Autoencoder, dict]], run: Run, source: str | None = None) -> Splits:
    """The splits every model was trained on (``load_splits`` of the checkpoints' data settings).

    Args:
        models: kind -> (model, checkpoint payload), as :func:`load_model` returns.
        run: the run (its summary's data record and its layout).
        source: the ``--data`` override, or None.
    Returns:
        The splits: uint8 (N, 1, S, S) arrays in [0, 255] with labels and class names.
    Raises:
        RunError: the models were trained on different data, the data cannot be loaded (naming the source and
            suggesting ``--data``), it splits into other images per class than the search's ``summary.json``
            records, or into other test images (by content) than its ``manifest.csv`` (the data changed), or its
            image size does not fit a model.
    """
    cfgs = {kind: data_config(payload, run, source) for kind, (_, payload) in models.items()}
    same = {k: {f: v for f, v in asdict(c).items() if f not in ("cache_dir", "skip_unreadable")}
            for k, c in cfgs.items()}
    if len({json.dumps(v, sort_keys=True) for v in same.values()}) > 1:
        raise RunError(f"the models were trained on different data, so one test set cannot compare them: {same}")
    cfg = next(iter(cfgs.values()))
    try:
        splits = load_splits(cfg)
    except DataError as exc:
        hint = "" if source else " (named in the checkpoints; pass --data SOURCE when the run was made elsewhere)"
        raise RunError(f"cannot load the data {cfg.source!r}{hint}: {exc}") from exc
    recorded = run.summary.per_class if run.summary else None
    if recorded and json.loads(json.dumps(splits.counts.get("per_class"))) != recorded:
        raise RunError(f"the data {cfg.source!r} now splits into other images than the search's (images per class "
                          f"per split now {splits.counts.get('per_class')}, in the search's summary.json {recorded}): "
                          f"the data changed since the search, so its test set would not be the one the search "
                          f"held out; pass --data with the search's data")
    _check_test_membership(run, splits, cfg.source)
    for kind, (model, _) in models.items():
        if model.cfg.image_size != splits.test.shape[-1]:
            raise RunError(f"{kind}: the model takes {model.cfg.image_size} px images, the data "
                              f"{cfg.source!r} has {splits.test.shape[-1]} px")
    return splits


def _test_rows(rows) -> set[tuple[str, str]]:
    """(sha256, slice) of the manifest rows in the test split: the test images by content, wherever the files lie."""
    return {(str(r.get("sha256") or ""), str(r.get("slice") if r.get("slice") is not None else ""))
            for r in rows if r.get("split") == "test"}


def _check_test_membership(run: Run, splits: Splits, source: str) -> None:
    """Refuse a reloaded split whose test images (by content) are not those of the search's ``manifest.csv``.

    Raises:
        RunError: the manifest cannot be read, or the test sets differ (counts and an example of each side).
    """
    path = run.layout.manifest_file if run.layout.results else None
    if path is None or not path.is_file() or not splits.manifest:
        return  # an experiment folder, or a run made before manifests: the per-class counts were checked
    try:
        recorded = _test_rows(read_manifest(path))
    except (OSError, ValueError) as exc:
        raise RunError(f"cannot read the search's manifest {path}: {exc}") from exc
    now = _test_rows(splits.manifest)
    if recorded != now:
        gone, new = sorted(recorded - now), sorted(now - recorded)
        raise RunError(f"the data {source!r} now puts other images in the test split than the search's {path} "
                       f"({len(gone)} of its test images are missing, {len(new)} others are in, e.g. sha256 "
                       f"{(gone or new)[0][0][:12]}...): the search's held-out images would not be the ones "
                       "tested; pass --data with the search's data")


def reload_check(model: Autoencoder, payload: dict, val_images: np.ndarray, reported: float | None) -> dict:
    """Re-evaluate a reloaded model on the validation split exactly as the search did (``tuneae.train.evaluate``,
    same batch size and noise seed) and compare with the ``val/loss`` the search reported.

    Args:
        model: the reloaded model.
        payload: its checkpoint payload (the training settings: batch size, loss, validation noise).
        val_images: the validation split, uint8 (N, 1, S, S) in [0, 255].
        reported: the ``val/loss`` the search (or the final fit) reported, or None.
    Returns:
        ``{"reported_val_loss", "reloaded_val_loss", "rel_diff", "reproduced"}`` (rel_diff relative to the reported
        value, None without one; reproduced when within ``RELOAD_RTOL``).
    """
    _, _, tcfg = configs_of(payload)
    loader = make_loader(val_images, eval_batch_size(tcfg.batch_size), shuffle=False)  # as the trainable validates
    reloaded = evaluate(model, loader, torch.device("cpu"), tcfg)["val/loss"]
    rel = abs(reloaded - reported) / max(abs(reported), 1e-12) if reported is not None else None
    return {"reported_val_loss": reported, "reloaded_val_loss": reloaded, "rel_diff": rel,
            "reproduced": rel is not None and rel <= RELOAD_RTOL}
