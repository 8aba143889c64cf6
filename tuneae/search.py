"""The search: ``python -m tuneae.search``. The only module that imports ``ray.tune`` and ``optuna``.

One Ray Tune experiment per model kind (their objectives differ): Optuna's TPE searcher (Bergstra et al. 2011,
via ``ray.tune.search.optuna.OptunaSearch``) proposes configs from categorical choices, ASHA (Li et al. 2020,
``ray.tune.schedulers.ASHAScheduler``) stops weak trials at rungs counted in epochs, and each trial trains under
Ray Train (:mod:`tuneae.trainable`). Every trial is logged to W&B through Ray's ``WandbLoggerCallback``
(offline unless an API key is set). At the end: a summary table per model, ``results/<name>/summary.json`` and
``results/<name>/trials.csv``; checkpoints stay in ``<storage_path>/<name>``.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import re
import shlex
import socket
import sys
import time
import tomllib
import warnings
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

from tuneae.checkpoint import atomic_write, atomic_write_csv
from tuneae.config import MODEL_KINDS, PRESETS, DataConfig, ModelConfig, SearchConfig, TrainConfig, to_flat
from tuneae.data import DataError, check_source, load_splits
from tuneae.models import UNUSED_BY_KIND, check_model_config

METRIC, MODE = "val/loss", "min"
"""What the searcher and the scheduler optimise: each kind's own objective on the validation split."""
SHOWN_METRICS = ("val/loss", "val/mse", "val/psnr", "train/loss")
"""Metrics in the summary table, trials.csv and summary.json."""


# ----------------------------------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    """The command-line interface (every flag documented in ``--help``)."""
    p = argparse.ArgumentParser(
        prog="python -m tuneae.search",
        description="Find the best autoencoder for brain-tumour MRI reconstruction by distributed hyperparameter "
                    "search: Ray Tune + Optuna TPE + ASHA, each trial trained under Ray Train, logged to W&B.",
        epilog="Presets: smoke = synthetic 32 px phantoms, 4 trials per model of 3 epochs, ~1-2 min on 2 CPUs "
               "(the tests use it); cpu = the real data at 128x128 with a reduced budget for 2 CPUs "
               "(ae, vae, dae and the denoising U-Net dunet, 4 trials each; epochs {3, 6, 9} for the bottleneck "
               "models, {4, 8} for dunet with base channels {8, 16} and depth {3, 4}; ASHA grace 1 / reduction 3; "
               "80 min on 2 CPUs); "
               "gpu = the seed's full grid (lr {1e-3,5e-4,1e-4}, epochs {10,20,40}, batch {16,32,64}, latent "
               "{512,1024,2048}) plus base channels, kernel size, normalization and depth, the same four kinds, "
               "27 trials each, 1/4 GPU per trial. Flags override the preset; a --config TOML file sits between "
               "the two.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--preset", choices=sorted(PRESETS), default="cpu", help="budget preset (default: cpu)")
    a("--config", metavar="FILE.toml", help="TOML file with [search], [data], [model], [train] and [space] tables "
                                            "(space: e.g. 'train.lr' = [1e-3, 1e-4])")
    a("--data", metavar="SOURCE", help="a Hugging Face hub id (default benschill/brain-tumor-collection, read from "
                                       "its parquet export), a local folder in imagefolder layout "
                                       "(train/<class>/*.jpg, test/<class>/*.jpg), or 'phantom' (synthetic)")
    a("--model", nargs="+", choices=MODEL_KINDS,
      help="model kinds, one search each (default: the preset's; cpu and gpu: ae vae dae dunet)")
    a("--num-samples", type=int, help="trials per model kind")
    a("--max-concurrent", type=int, help="concurrent trials (default: as many as the cluster's CPUs/GPUs hold)")
    a("--cpus-per-trial", type=float, help="CPUs per Train worker (= torch threads)")
    a("--gpus-per-trial", type=float, help="GPUs per Train worker; fractions (0.25) pack trials on one GPU")
    a("--workers-per-trial", type=int, help="Train workers per trial (DDP when > 1)")
    a("--storage-path", help="experiment storage for Tune state and checkpoints (local folder outside git, or "
                             "s3://...); default ./runs")
    a("--results-dir", help="where summary.json and trials.csv go (default ./results)")
    a("--name", help="experiment name (default: the preset's name)")
    a("--resume", action="store_true", help="resume the experiment --name from its storage (finished trials are "
                                            "kept, the searcher keeps its history)")
    a("--seed", type=int, help="seed of the searcher, the data split and training (default 0)")
    a("--image-size", type=int, help="input side in pixels, divisible by 2**depth of every model searched (32 for the "
                                           "seed's depth 5; default 128, smoke: 32)")
    a("--grace-period", type=int, help="ASHA grace period in epochs (first rung)")
    a("--reduction-factor", type=float, help="ASHA reduction factor")
    a("--lr", type=float, nargs="+", help="learning-rate choices (search space override)")
    a("--epochs", type=int, nargs="+", help="epoch choices; the largest is ASHA's max_t")
    a("--batch-size", type=int, nargs="+", help="batch-size choices")
    a("--latent-dim", type=int, nargs="+", help="latent-dimension choices")
    a("--address", help="Ray cluster to join ('auto' or RAY_ADDRESS); default: start Ray on this machine")
    a("--no-wandb", action="store_true", help="do not log to W&B")
    a("--wandb-mode", choices=["offline", "online"], help="W&B mode (default: online if WANDB_API_KEY is set, "
                                                          "else offline; sync later with `wandb sync`)")
    a("--wandb-project", help="W&B project (default tuneae)")
    a("--skip-unreadable", action="store_true", help="count and skip unreadable images instead of failing")
    a("--report", action="store_true", help="run the best-trial report (python -m tuneae.report) afterwards")
    return p


class ConfigError(ValueError):
    """A bad ``--config`` file: unreadable, or an unknown table or field, or a value of the wrong type; the message
    names the file, table and field."""


def _merge(cls, base, updates: dict[str, Any], where: str):
    known = {f.name for f in fields(cls)}
    bad = sorted(set(updates) - known)
    if bad:
        raise ConfigError(f"unknown field(s) {bad} in {where}; known: {sorted(known)}")
    for name, value in updates.items():  # TOML gives typed values: they must match the field's type
        default = getattr(base, name)
        ok = ((isinstance(value, type(default)) and not (isinstance(value, bool) and not isinstance(default, bool)))
              or (isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool))
              or (isinstance(default, tuple) and isinstance(value, list)))
        if not ok:
            raise ConfigError(f"{where} {name} = {value!r}: expected {type(default).__name__}")
    return replace(base, **{k: tuple(v) if isinstance(v, list) else v for k, v in updates.items()})


def resolve(argv: list[str] | None = None) -> tuple[SearchConfig, DataConfig, ModelConfig, TrainConfig,
                                                     argparse.Namespace]:
    """Merge preset, config file and command line (in that order) into typed configs. Starts nothing, reads no data.

    Also: ``--seed`` seeds the data split and training too; a local ``storage_path`` sets the default
    ``data.cache_dir`` to ``<storage_path>/cache`` (absolute); a local data folder is made absolute (checkpoints
    store it); ``model.image_size`` follows ``data.image_size``; ``RAY_ADDRESS`` is used when ``--address`` is not
    given. A ``[model]``/``[train]`` value that the space also searches gives a ``UserWarning`` (the space wins).

    Args:
        argv: command-line arguments without the program name; None reads ``sys.argv[1:]``.
    Returns:
        (search, data, model, train, parsed arguments); ``search.space`` / ``search.space_by_kind`` map
        ``"section.field"`` to a tuple of choices.
    Raises:
        ConfigError: a config file that cannot be read, or an unknown table, field or badly typed value, or a
            ``[space]`` entry that is not a non-empty list, naming the file, table and field at fault.
        SystemExit: bad command-line flags (argparse prints the error and exits with status 2), or ``--help``.
    """
    args = build_parser().parse_args(argv)
    preset = PRESETS[args.preset]
    search = replace(SearchConfig(), **preset["search"], space=dict(preset["space"]),
                     space_by_kind={k: dict(v) for k, v in preset.get("space_by_kind", {}).items()})
    data = replace(DataConfig(), **preset["data"])
    model = replace(ModelConfig(), **preset.get("model", {}))
    train = TrainConfig()
    if args.config:
        path = Path(args.config)
        try:
            doc = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc
        unknown = sorted(set(doc) - {"search", "data", "model", "train", "space"})
        if unknown:
            raise ConfigError(f"{path}: unknown table(s) {unknown}")
        not_tables = sorted(k for k, v in doc.items() if not isinstance(v, dict))
        if not_tables:
            raise ConfigError(f"{path}: {not_tables} must be tables ([name] headers), not plain values")
        search = _merge(SearchConfig, search, dict(doc.get("search", {})), f"{path} [search]")
        data = _merge(DataConfig, data, doc.get("data", {}), f"{path} [data]")
        model = _merge(ModelConfig, model, doc.get("model", {}), f"{path} [model]")
        train = _merge(TrainConfig, train, doc.get("train", {}), f"{path} [train]")
        if "space" in doc:
            space, by_kind = dict(search.space), {k: dict(v) for k, v in search.space_by_kind.items()}
            for key, choices in doc["space"].items():
                if key in MODEL_KINDS and isinstance(choices, dict):  # [space.dunet] table: that kind only
                    for sub, sub_choices in choices.items():
                        by_kind.setdefault(key, {})[sub] = _choices(sub_choices, f"{path} [space.{key}] {sub!r}")
                    continue
                space[key] = _choices(choices, f"{path} [space] {key!r}")
                for per_kind in by_kind.values():
                    per_kind.pop(key, None)
            search = replace(search, space=space, space_by_kind=by_kind)
    s: dict[str, Any] = {}
    for flag, fieldname in [("num_samples", "num_samples"), ("max_concurrent", "max_concurrent"),
                            ("cpus_per_trial", "cpus_per_trial"), ("gpus_per_trial", "gpus_per_trial"),
                            ("workers_per_trial", "workers_per_trial"), ("storage_path", "storage_path"),
                            ("results_dir", "results_dir"), ("name", "name"), ("seed", "seed"),
                            ("grace_period", "grace_period"), ("reduction_factor", "reduction_factor"),
                            ("address", "address"), ("wandb_mode", "wandb_mode"),
                            ("wandb_project", "wandb_project")]:
        if getattr(args, flag) is not None:
            s[fieldname] = getattr(args, flag)
    if args.model:
        s["models"] = tuple(dict.fromkeys(args.model))
    if args.no_wandb:
        s["wandb"] = False
    if not args.address and os.environ.get("RAY_ADDRESS"):
        s["address"] = os.environ["RAY_ADDRESS"]
    space, by_kind = dict(search.space), {k: dict(v) for k, v in search.space_by_kind.items()}
    for flag, key in [("lr", "train.lr"), ("epochs", "train.epochs"), ("batch_size", "train.batch_size"),
                      ("latent_dim", "model.latent_dim")]:
        if getattr(args, flag):
            space[key] = tuple(getattr(args, flag))
            for per_kind in by_kind.values():  # a flag overrides every kind
                per_kind.pop(key, None)
    search = replace(search, **s, space=space, space_by_kind=by_kind)
    if args.config:  # a fixed value in [model] / [train] that the space also searches would be silently ignored
        for section in ("model", "train"):
            for name in doc.get(section, {}):
                if any(f"{section}.{name}" in kind_space(search, k) for k in search.models):
                    warnings.warn(f"{args.config}: [{section}] {name} is also in the search space, which wins; "
                                  f"set it under [space] as a one-element list to fix it", stacklevel=2)
    d: dict[str, Any] = {}
    if args.data:
        d["source"] = args.data
    if args.image_size is not None:
        d["image_size"] = args.image_size
    if args.seed is not None:
        d["seed"] = args.seed
        train = replace(train, seed=args.seed)
    if args.skip_unreadable:
        d["skip_unreadable"] = True
    if "://" not in search.storage_path:
        d.setdefault("cache_dir", str((Path(search.storage_path) / "cache").resolve()))
    source = d.get("source", data.source)
    if Path(source).expanduser().is_dir():  # checkpoints store the data config: make it valid from any folder
        d["source"] = str(Path(source).expanduser().resolve())
    data = replace(data, **d)
    model = replace(model, image_size=data.image_size)
    return search, data, model, train, args


def _choices(value: Any, where: str) -> tuple:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where} must be a non-empty list of choices")
    return tuple(value)


def kind_space(search: SearchConfig, kind: str) -> dict[str, tuple]:
    """The search space of one model kind: the common space, the kind's own additions, minus unused keys.

    Model kinds differ in which hyperparameters mean anything (``model.latent_dim`` only for bottleneck kinds,
    noise settings only for denoising kinds), so each kind's experiment searches only its own parameters and TPE
    never models a parameter that has no effect (Optuna's conditional spaces, done per experiment).

    Args:
        search: the resolved search config (its ``space`` and ``space_by_kind``).
        kind: a model kind (``ae``, ``vae``, ``dae``, ``unet``, ``dunet``).
    Returns:
        ``{"section.field": (choice, ...)}``: the common space updated by ``space_by_kind[kind]``, without the keys
        in ``UNUSED_BY_KIND[kind]``. Raises nothing (an unknown kind just gets the common space).
    """
    space = {**search.space, **search.space_by_kind.get(kind, {})}
    return {k: tuple(v) for k, v in space.items() if k not in UNUSED_BY_KIND.get(kind, ())}


def validate(search: SearchConfig, data: DataConfig, model: ModelConfig) -> None:
    """Check everything that can be checked before Ray starts or any image is decoded.

    Checks every kind's space keys against the config fields, epochs / batch size >= 1 and lr > 0 among the
    choices, the trial budget, the resources per trial, ASHA's settings, and that every combination of the
    ``model.*`` choices builds (:func:`tuneae.models.check_model_config`, e.g. image size divisible by 2**depth).

    Args:
        search: the resolved search config.
        data: not read at present (the image size is checked through ``model.image_size``).
        model: the base model config; each kind's ``model.*`` choices are applied on top of it.
    Raises:
        ValueError: naming the field and value (search space keys, budgets, resources, model sizes).
    """
    valid_keys = {f"{sec}.{f.name}" for sec, cls in (("data", DataConfig), ("model", ModelConfig),
                                                        ("train", TrainConfig)) for f in fields(cls)}
    for kind in search.models:
        space = kind_space(search, kind)
        for key, choices in space.items():
            if key not in valid_keys:
                raise ValueError(f"search space key {key!r} is unknown; use one of {sorted(valid_keys)}")
            if not choices:
                raise ValueError(f"search space {key!r} has no choices")
        for e in space.get("train.epochs", ()):
            if int(e) < 1:
                raise ValueError(f"train.epochs choice {e} must be >= 1")
        for b in space.get("train.batch_size", ()):
            if int(b) < 1:
                raise ValueError(f"train.batch_size choice {b} must be >= 1")
        for lr in space.get("train.lr", ()):
            if not float(lr) > 0:
                raise ValueError(f"train.lr choice {lr} must be > 0")
    if search.num_samples < 1:
        raise ValueError(f"--num-samples {search.num_samples} must be >= 1")
    if search.cpus_per_trial <= 0 or search.gpus_per_trial < 0 or search.workers_per_trial < 1:
        raise ValueError(f"resources per trial must be positive: cpus={search.cpus_per_trial}, "
                         f"gpus={search.gpus_per_trial}, workers={search.workers_per_trial}")
    if search.grace_period < 1 or search.reduction_factor <= 1:
        raise ValueError(f"ASHA needs grace_period >= 1 and reduction_factor > 1 "
                         f"(got {search.grace_period}, {search.reduction_factor})")
    for kind in search.models:  # every architecture the searcher may propose must build
        space = {k.split(".", 1)[1]: v for k, v in kind_space(search, kind).items() if k.startswith("model.")}
        for combo in itertools.product(*space.values()):
            check_model_config(replace(model, kind=kind, **dict(zip(space, combo, strict=True))))


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


# ---------------------------------------------------------------------------------------------- environment
def _local(path: str) -> bool:
    return "://" not in path


def experiment_dir(search: SearchConfig) -> str:
    """``<storage_path>/<name>`` as an absolute path (or URI)."""
    if _local(search.storage_path):
        return str((Path(search.storage_path) / search.name).resolve())
    return f"{search.storage_path.rstrip('/')}/{search.name}"


def wandb_env(search: SearchConfig) -> dict[str, str]:
    """Environment for W&B: offline unless a key is set, and every W&B folder inside the experiment folder.

    ``WandbLoggerCallback`` reads only the environment, so ``WANDB_MODE`` must be set before Ray starts
    (measured with Ray 2.60 / wandb 0.31).
    """
    mode = search.wandb_mode or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
    base = Path(experiment_dir(search)) if _local(search.storage_path) else Path("runs") / search.name
    wdir = str((base / "wandb").resolve())
    return {"WANDB_MODE": mode, "WANDB_DIR": wdir, "WANDB_CONFIG_DIR": f"{wdir}/.config",
            "WANDB_CACHE_DIR": f"{wdir}/.cache", "WANDB_DATA_DIR": f"{wdir}/.data",
            "WANDB_ARTIFACT_DIR": f"{wdir}/.artifacts", "WANDB_SILENT": "true"}


def _wandb_callback(search: SearchConfig, kind: str):
    """Ray's W&B logger callback, or None (with a warning) when W&B cannot start: W&B never stops the search."""
    if not search.wandb:
        return None
    try:
        from ray.air.integrations.wandb import WandbLoggerCallback

        class ClosingWandbLoggerCallback(WandbLoggerCallback):
            """Closes every trial's W&B run at the end of the experiment, also after Ctrl-C.

            On Ctrl-C Tune ends the experiment without ending the running trials first; Ray's callback then
            waited ``upload_timeout`` for runs never told to finish and killed them, leaving runs without an exit
            record (measured with Ray 2.60 / wandb 0.31). Ray's own ``__del__`` does the same as here, too late.
            """

            def on_experiment_end(self, trials, **info):
                for trial in list(self._trial_logging_actors):
                    self._signal_logging_actor_stop(trial=trial)
                super().on_experiment_end(trials, **info)

            def __del__(self):
                # Ray's __del__ calls ray.is_initialized(), which raises when it runs during interpreter shutdown
                # (modules already torn down): a harmless but alarming traceback. Runs were closed above.
                try:
                    super().__del__()
                except Exception:
                    pass

        Path(os.environ["WANDB_DIR"]).mkdir(parents=True, exist_ok=True)
        return ClosingWandbLoggerCallback(project=search.wandb_project, group=f"{search.name}-{kind}",
                                          upload_timeout=60, excludes=["checkpoint_path", "node_id"])
    except Exception as exc:
        warnings.warn(f"W&B logging disabled: {exc}", stacklevel=2)
        return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_local_ray(env: dict[str, str] | None = None, **kwargs: Any) -> None:
    """Start Ray on this machine with its dashboard, pinned so that Ray Train finds *this* Ray instance.

    Ray Train V2 frees the placement group of a stopped trial from a cleaner actor that asks the State API
    (served by the dashboard, hence ``ray[default]``) whether the trial's controller is alive. Without an address
    that actor auto-detects "the" Ray instance and, with two instances on one machine (a search and a test run),
    fails ("Found multiple active Ray instances") or asks the wrong one; the group then leaks and the next trial
    waits forever. Setting ``RAY_API_SERVER_ADDRESS`` to this instance's dashboard, before the workers start,
    removes the ambiguity.

    Args:
        env: extra environment variables for every Ray worker (W&B settings).
        **kwargs: passed to ``ray.init`` (e.g. ``num_cpus``).
    """
    import ray

    port = _free_port()
    api = f"http://127.0.0.1:{port}"
    os.environ["RAY_API_SERVER_ADDRESS"] = api
    env_vars = {**(env or {}), "RAY_API_SERVER_ADDRESS": api}
    ray.init(include_dashboard=True, dashboard_port=port, runtime_env={"env_vars": env_vars}, **kwargs)


def join_ray(address: str, env: dict[str, str] | None = None) -> None:
    """Connect to a running Ray cluster (``auto``, ``host:port`` or ``ray://...``), pinned like :func:`start_local_ray`.

    The pin here is ``RAY_ADDRESS`` = the cluster's GCS address, resolved once by Ray's own rule (so ``auto``
    means the same cluster for the driver and for Ray Train's State API queries in the workers).

    Args:
        address: the cluster address.
        env: extra environment variables for every Ray worker (W&B settings).
    """
    import ray

    env_vars = dict(env or {})
    if not address.startswith("ray://"):  # Ray Client: the State API goes through the client server instead
        from ray._private.services import canonicalize_bootstrap_address_or_die

        address = canonicalize_bootstrap_address_or_die(address)
        env_vars["RAY_ADDRESS"] = address
    ray.init(address=address, runtime_env={"env_vars": env_vars})


# ---------------------------------------------------------------------------------------------- the search
def _param_space(kind: str, search: SearchConfig, data: DataConfig, model: ModelConfig, train: TrainConfig):
    from ray import tune

    from tuneae.trainable import asha_config

    flat = to_flat(data, replace(model, kind=kind), train)
    for key, choices in kind_space(search, kind).items():
        flat[key] = tune.choice(list(choices))
    max_t = int(max(kind_space(search, kind).get("train.epochs", (train.epochs,))))  # as run_one's ASHA max_t
    flat.update(asha_config(search.grace_period, search.reduction_factor, max_t))  # trials checkpoint the rungs
    return flat


def _trial_dirname(trial) -> str:
    return f"trial_{trial.trial_id}"


def run_one(kind: str, search: SearchConfig, data: DataConfig, model: ModelConfig, train: TrainConfig,
            data_box: dict, max_concurrent: int, resume: bool):
    """Run (or resume) the Tune experiment of one model kind under ``<experiment_dir>/<kind>``.

    Optuna TPE (Bergstra et al. 2011) proposes configs, ASHA (Li et al. 2020) stops trials at rungs counted by the
    reported ``epoch`` (max_t: the largest ``train.epochs`` choice), each trial is :func:`tuneae.trainable.run_trial`
    (upstream API: ``ray.tune.Tuner``, ``ray.tune.search.optuna.OptunaSearch``, ``ray.tune.schedulers.ASHAScheduler``).

    Args:
        kind: the model kind searched.
        search, data, model, train: the resolved configs; ``kind_space(search, kind)`` is searched.
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
    import optuna
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from tuneae.trainable import TrialResources, run_trial

    exp = experiment_dir(search)
    resources = TrialResources(search.workers_per_trial, search.cpus_per_trial, search.gpus_per_trial)
    trainable = tune.with_parameters(run_trial, data_box=data_box, resources=resources,
                                     train_storage=f"{exp}/train")
    # The driver function only waits on TorchTrainer.fit(): no CPU, a sliver of the head node's marker resource
    # (an all-zero request is rejected). Drivers therefore never starve workers of CPUs: no deadlock.
    trainable = tune.with_resources(trainable, {"CPU": 0, "node:__internal_head__": 0.001})
    path = f"{exp}/{kind}"
    callbacks = [cb for cb in [_wandb_callback(search, kind)] if cb is not None]
    if resume and tune.Tuner.can_restore(path):
        # Unfinished trials continue (keeping their ids) from their Train checkpoints, finished ones are kept,
        # errored ones stay failed (a diverged trial would only diverge again), and the searcher and scheduler
        # reload their state from `path`. The W&B callback comes back from the saved tuner state.
        tuner = tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True, resume_errored=False,
                                   param_space=_param_space(kind, search, data, model, train))
        done = tuner.get_results()
        if done.num_terminated + done.num_errors >= search.num_samples:
            print(f"[tuneae] {kind} already finished in {path}; kept as it is", flush=True)
            return done
        print(f"[tuneae] resuming {kind} from {path}", flush=True)
    else:
        max_t = int(max(kind_space(search, kind).get("train.epochs", (train.epochs,))))
        searcher = OptunaSearch(sampler=optuna.samplers.TPESampler(seed=search.seed), seed=search.seed)
        # Rungs count the reported `epoch`, not Tune's iterations: a trial resumed after a driver restart
        # continues from its Train checkpoint at epoch k + 1 while its iteration count starts again at 1.
        scheduler = ASHAScheduler(time_attr="epoch", max_t=max_t, grace_period=search.grace_period,
                                  reduction_factor=search.reduction_factor)
        tuner = tune.Tuner(
            trainable,
            param_space=_param_space(kind, search, data, model, train),
            tune_config=tune.TuneConfig(metric=METRIC, mode=MODE, search_alg=searcher, scheduler=scheduler,
                                        num_samples=search.num_samples, max_concurrent_trials=max_concurrent,
                                        trial_dirname_creator=_trial_dirname),
            run_config=tune.RunConfig(name=kind, storage_path=exp, callbacks=callbacks, verbose=1,
                                      failure_config=tune.FailureConfig(max_failures=0)),
        )
    return tuner.fit()


FINAL_STATUSES = {"TERMINATED", "ERROR"}
"""Tune trial statuses of a finished trial; any other status in the saved state means the search was interrupted."""


def saved_statuses(path: str) -> dict[str, str]:
    """Trial id -> status in the experiment state that Tune saved last under ``path`` (what ``--resume`` continues).

    On Ctrl-C Tune saves its state (unfinished trials still ``RUNNING`` or ``PENDING``) and only then stops the
    trials, which the returned ``ResultGrid`` then shows as ``TERMINATED``; the saved state tells them apart.

    Args:
        path: one kind's experiment folder, ``<experiment_dir>/<kind>`` (local path or URI).
    Returns:
        ``{trial_id: status}`` with Tune's statuses (``TERMINATED``, ``ERROR``, ``RUNNING``, ``PENDING``, ...).
    Raises:
        ValueError: no experiment state file under ``path`` (upstream: ``ray.tune.ExperimentAnalysis``).
    """
    from ray.tune import ExperimentAnalysis

    return {t.trial_id: t.status for t in ExperimentAnalysis(path).trials}


def trial_rows(kind: str, grid, search: SearchConfig, saved: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """One row per trial: searched params, last epoch, metrics, status, stopped early or not, error.

    Args:
        kind: the model kind (the ``model`` column).
        grid: the kind's ``ray.tune.ResultGrid`` (or any iterable of ``ray.tune.Result``).
        search: selects the parameter columns (``kind_space(search, kind)``).
        saved: :func:`saved_statuses`; a trial saved as unfinished gets the status ``INTERRUPTED``.
    Returns:
        One dict per trial with keys ``model``, ``trial_id``, ``status`` (``TERMINATED``, ``ERROR`` or
        ``INTERRUPTED``), ``stopped_early`` (terminated before its planned epochs: ASHA), ``error`` (one line, at
        most 300 characters, "" if none), the searched ``section.field`` keys, ``last_epoch``, the
        ``SHOWN_METRICS`` (``val/psnr`` in dB; None when the trial reported nothing), ``time_total_s``,
        ``checkpoint_path`` and ``node_id`` ("" when absent).
    """
    rows = []
    for r in grid:
        cfg = r.config or {}
        m = r.metrics or {}
        last = int(m.get("epoch", 0) or 0)
        planned = int(cfg.get("train.epochs", 0))
        trial_id = m.get("trial_id") or Path(str(r.path)).name.removeprefix("trial_")  # no result: diverged at once
        status = "ERROR" if r.error else (saved or {}).get(trial_id, "TERMINATED")
        status = status if status in FINAL_STATUSES else "INTERRUPTED"
        row = {"model": kind, "trial_id": trial_id, "status": status,
               "stopped_early": bool(status == "TERMINATED" and 0 < last < planned),
               "error": _reason(r.error)}
        for key in kind_space(search, kind):
            row[key] = cfg.get(key)
        row["last_epoch"] = last
        for key in SHOWN_METRICS:
            row[key] = m.get(key)
        row["time_total_s"] = m.get("time_total_s")
        row["checkpoint_path"] = m.get("checkpoint_path", "")
        row["node_id"] = m.get("node_id", "")
        rows.append(row)
    return rows


def _reason(error: BaseException | None) -> str:
    """The most telling line of a trial's error (Ray wraps the worker's exception in several layers)."""
    if error is None:
        return ""
    lines = [ln.strip() for ln in str(error).strip().splitlines() if ln.strip()]
    named = [ln for ln in lines if re.match(r"^[\w.]*(Error|Exception)\b", ln)]
    return ((named or lines or [type(error).__name__])[-1])[:300]


def best_of(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The best trial of one kind: the lowest finite last ``val/loss`` among trials not ``ERROR`` with a checkpoint.

    Args:
        rows: :func:`trial_rows` of one kind (``val/loss`` compares only within a kind).
    Returns:
        That row, or None when no trial qualifies.
    """
    ok = [r for r in rows if r["status"] != "ERROR" and isinstance(r.get(METRIC), (int, float))
          and math.isfinite(r[METRIC]) and r["checkpoint_path"]]
    return min(ok, key=lambda r: r[METRIC]) if ok else None


def write_results(out: Path, summary: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """Write ``summary.json`` (indented, non-JSON values as ``str``) and ``trials.csv`` into ``out`` atomically.

    Args:
        out: the results folder, ``<results_dir>/<name>`` (created if missing).
        summary: the search summary.
        rows: :func:`trial_rows` of every kind (CSV header: the union of their keys).
    Raises:
        OSError: the folder cannot be created or written.
    """
    atomic_write(out / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    atomic_write_csv(out / "trials.csv", rows)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("tuneae", "torch", "ray", "optuna", "wandb", "datasets", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _fmt(v: Any, digits: int) -> str:
    return f"{v:.{digits}f}" if isinstance(v, (int, float)) else "-"


def format_table(models: dict[str, Any]) -> str:
    """The end-of-search summary table: one line per model kind, best trial's config and validation metrics.

    Args:
        models: kind -> the summary's per-kind dict (``trials``, ``stopped_early``, ``failed``, ``best_metrics``,
            ``best_config``; the last two may be None).
    Returns:
        The table as text with a header line; val/loss, val/mse and val/psnr (dB) of the best trial, "-" when none.
    Raises:
        KeyError: a kind's dict lacks ``trials``, ``stopped_early`` or ``failed``.
    """
    header = (f"{'model':6} {'trials':>6} {'stopped':>7} {'failed':>6} {'val/loss':>10} {'val/mse':>9} "
              f"{'val/psnr':>8}  best config")
    lines = [header]
    for kind, m in models.items():
        b = m.get("best_metrics") or {}
        cfg = " ".join(f"{k.split('.')[-1]}={v}" for k, v in (m.get("best_config") or {}).items())
        lines.append(f"{kind:6} {m['trials']:>6} {m['stopped_early']:>7} {m['failed']:>6} "
                     f"{_fmt(b.get('val/loss'), 4):>10} {_fmt(b.get('val/mse'), 5):>9} {_fmt(b.get('val/psnr'), 2):>8}"
                     f"  {cfg}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m tuneae.search``.

    Args:
        argv: command-line arguments without the program name; None reads ``sys.argv[1:]``.
    Returns:
        The exit status: 0 every kind has a best trial, 1 some kind has none, 2 bad input (config file, invalid
        settings, data source, existing experiment without ``--resume``; one ``error:`` line on stderr, before Ray
        starts), 130 interrupted, or the report's non-zero status with ``--report``.
    Raises:
        SystemExit: bad command-line flags or ``--help`` (argparse; status 2 for bad flags).
    """
    started = time.time()
    try:
        search, data, model, train, args = resolve(argv)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        validate(search, data, model)
        check_source(data)
    except (ValueError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    exp = experiment_dir(search)
    if _local(exp) and Path(exp).exists() and not args.resume:
        print(f"error: experiment folder {exp} exists; pass --resume to continue it or choose another --name",
              file=sys.stderr)
        return 2

    print(f"[tuneae] loading data from {data.source} at {data.image_size}x{data.image_size}", flush=True)
    try:
        splits = load_splits(data)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"[tuneae] train {len(splits.train)} / val {len(splits.val)} / test {len(splits.test)} images "
          f"(classes {', '.join(splits.classes)}; test never used by the search)", flush=True)

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    env = wandb_env(search) if search.wandb else {}
    os.environ.update(env)
    import ray

    if search.address:
        join_ray(search.address, env)
    else:
        start_local_ray(env)
    try:
        max_concurrent = derive_max_concurrent(ray.cluster_resources(), search)
        print(f"[tuneae] cluster {ray.cluster_resources().get('CPU', 0):g} CPU / "
              f"{ray.cluster_resources().get('GPU', 0):g} GPU -> {max_concurrent} concurrent trial(s)", flush=True)
        data_box = {"ref": ray.put({"train": splits.train, "val": splits.val})}
        all_rows: list[dict[str, Any]] = []
        models: dict[str, Any] = {}
        interrupted = ""
        for kind in search.models:
            try:
                grid = run_one(kind, search, data, model, train, data_box, max_concurrent, args.resume)
            except KeyboardInterrupt:  # a second Ctrl-C skips Tune's last save; the periodic one remains
                interrupted = kind
                print(f"[tuneae] interrupted during {kind}; resume with --resume", flush=True)
                break
            saved = saved_statuses(f"{exp}/{kind}")
            if len(saved) < search.num_samples or set(saved.values()) - FINAL_STATUSES:  # Ctrl-C
                interrupted = kind
            rows = trial_rows(kind, grid, search, saved)
            all_rows += rows
            best = best_of(rows)
            models[kind] = {
                "trials": len(rows),
                "completed": sum(r["status"] == "TERMINATED" and not r["stopped_early"] for r in rows),
                "stopped_early": sum(r["stopped_early"] for r in rows),
                "failed": sum(r["status"] == "ERROR" for r in rows),
                "failures": [{"trial_id": r["trial_id"], "error": r["error"]} for r in rows if r["error"]],
                "best_trial": best["trial_id"] if best else None,
                "best_config": {k: best[k] for k in kind_space(search, kind)} if best else None,
                "best_metrics": {k: best[k] for k in SHOWN_METRICS} | {"epoch": best["last_epoch"]} if best else None,
                "best_checkpoint": best["checkpoint_path"] if best else None,
            }
            if interrupted:
                print(f"[tuneae] interrupted during {kind}; resume with: python -m tuneae.search "
                      f"--name {search.name} --resume (and the same flags)", flush=True)
                break
    finally:
        ray.shutdown()

    summary = {
        "command": "python -m tuneae.search " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
        "preset": args.preset,
        "versions": _versions(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "wall_time_s": round(time.time() - started, 1),
        "experiment_dir": exp,
        "wandb": {"mode": env.get("WANDB_MODE"), "dir": env.get("WANDB_DIR")} if env else None,
        "search": {"metric": METRIC, "mode": MODE, "searcher": "OptunaSearch(TPESampler)", "scheduler": "ASHA",
                   **{k: v for k, v in asdict(search).items() if k not in ("space", "space_by_kind")},
                   "space": {kind: {k: list(v) for k, v in kind_space(search, kind).items()}
                             for kind in search.models},
                   "max_concurrent_used": max_concurrent},
        "data": {**splits.counts, "source": data.source, "source_description": splits.counts["source"],
                 "image_size": data.image_size, "val_fraction": data.val_fraction, "classes": list(splits.classes)},
        "models": models,
        "interrupted": interrupted or None,
        "comparison_note": "val/mse and val/psnr are computed the same way for every kind (deterministic "
                           f"reconstruction; denoising kinds see sigma={train.val_noise_sigma:.2f} noise); val/loss is "
                           "each kind's own objective and does not compare across kinds.",
    }
    out = Path(search.results_dir) / search.name
    write_results(out, summary, all_rows)
    print("\n" + format_table(models))
    print(f"\n[tuneae] wrote {out / 'summary.json'} and {out / 'trials.csv'}; checkpoints in {exp}")
    if args.report:
        from tuneae import report

        code = report.main([str(out), *(["--no-wandb"] if not search.wandb else [])])
        if code:
            return code
    if interrupted:
        return 130
    return 0 if all(m["best_trial"] for m in models.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
