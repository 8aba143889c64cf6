"""The command line of ``python -m tuneae.search``: flags, the TOML config file, and their merge into typed configs.

Preset, config file and flags are merged in that order (:func:`resolve`) and checked (:func:`validate`) before Ray
starts or any image is decoded; a bad file or value raises :class:`ConfigError` / ``ValueError`` naming it.
"""
from __future__ import annotations

import argparse
import itertools
import os
import tomllib
import warnings
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from tuneae.config import MODEL_KINDS, PRESETS, DataConfig, ModelConfig, SearchConfig, TrainConfig
from tuneae.layout import RunLayout, is_local
from tuneae.models import check_model_config
from tuneae.search.space import kind_space

SECTIONS = {"search": SearchConfig, "data": DataConfig, "model": ModelConfig, "train": TrainConfig}
"""The tables of a config file besides ``[space]``, and the dataclass of each."""
SEARCH_FLAGS = ("num_samples", "max_concurrent", "cpus_per_trial", "gpus_per_trial", "workers_per_trial",
                "storage_path", "results_dir", "name", "seed", "grace_period", "reduction_factor", "address",
                "wandb_mode", "wandb_project")
"""Flags copied as they are onto the ``SearchConfig`` field of the same name."""
SPACE_FLAGS = {"lr": "train.lr", "epochs": "train.epochs", "batch_size": "train.batch_size",
               "latent_dim": "model.latent_dim"}
"""Flags that replace one key of the search space, for every kind."""


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
    """``base`` (a ``cls`` dataclass) with ``updates`` applied, each value checked against the field's type."""
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


def _choices(value: Any, where: str) -> tuple:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where} must be a non-empty list of choices")
    return tuple(value)


def _override_space(search: SearchConfig, common: dict[str, tuple],
                    by_kind: dict[str, dict[str, tuple]] | None = None) -> SearchConfig:
    """``search`` with ``common`` keys set for every kind (dropped from each kind's own space, so they win) and
    ``by_kind`` keys set for one kind each."""
    space, kinds = dict(search.space), {k: dict(v) for k, v in search.space_by_kind.items()}
    for key, choices in common.items():
        space[key] = choices
        for per_kind in kinds.values():
            per_kind.pop(key, None)
    for kind, sub in (by_kind or {}).items():
        kinds.setdefault(kind, {}).update(sub)
    return replace(search, space=space, space_by_kind=kinds)


def _preset(name: str) -> dict[str, Any]:
    """The configs of a preset: ``{"search", "data", "model", "train"}``."""
    preset = PRESETS[name]
    return {"search": replace(SearchConfig(), **preset["search"], space=dict(preset["space"]),
                              space_by_kind={k: dict(v) for k, v in preset.get("space_by_kind", {}).items()}),
            "data": replace(DataConfig(), **preset["data"]), "model": replace(ModelConfig(), **preset.get("model", {})),
            "train": TrainConfig()}


def read_config_file(path: Path, cfgs: dict[str, Any]) -> tuple[dict[str, Any], dict]:
    """Apply a TOML config file to ``cfgs`` (``{"search", "data", "model", "train"}``).

    Args:
        path: the file; tables ``[search]``, ``[data]``, ``[model]``, ``[train]`` (fields of the dataclasses) and
            ``[space]`` (``"section.field" = [choices]``, or a ``[space.<kind>]`` table for one kind).
        cfgs: the configs so far (the preset's).
    Returns:
        (the updated configs, the parsed document).
    Raises:
        ConfigError: the file cannot be read, or an unknown table, field or badly typed value, or a ``[space]``
            entry that is not a non-empty list, naming the file, table and field at fault.
    """
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    unknown = sorted(set(doc) - {*SECTIONS, "space"})
    if unknown:
        raise ConfigError(f"{path}: unknown table(s) {unknown}")
    not_tables = sorted(k for k, v in doc.items() if not isinstance(v, dict))
    if not_tables:
        raise ConfigError(f"{path}: {not_tables} must be tables ([name] headers), not plain values")
    cfgs = {sec: _merge(cls, cfgs[sec], dict(doc.get(sec, {})), f"{path} [{sec}]") for sec, cls in SECTIONS.items()}
    common, by_kind = {}, {}
    for key, choices in doc.get("space", {}).items():
        if key in MODEL_KINDS and isinstance(choices, dict):  # [space.dunet] table: that kind only
            by_kind[key] = {sub: _choices(c, f"{path} [space.{key}] {sub!r}") for sub, c in choices.items()}
        else:
            common[key] = _choices(choices, f"{path} [space] {key!r}")
    cfgs["search"] = _override_space(cfgs["search"], common, by_kind)
    return cfgs, doc


def _warn_shadowed(path: str, doc: dict, search: SearchConfig) -> None:
    """Warn about a fixed ``[model]`` / ``[train]`` value that the search space also searches (the space wins)."""
    for section in ("model", "train"):
        for name in doc.get(section, {}):
            if any(f"{section}.{name}" in kind_space(search, k) for k in search.models):
                warnings.warn(f"{path}: [{section}] {name} is also in the search space, which wins; "
                              f"set it under [space] as a one-element list to fix it", stacklevel=3)


def _apply_search_flags(args: argparse.Namespace, search: SearchConfig) -> SearchConfig:
    """``search`` with the flags that set its fields and the search-space flags applied."""
    s: dict[str, Any] = {f: getattr(args, f) for f in SEARCH_FLAGS if getattr(args, f) is not None}
    if args.model:
        s["models"] = tuple(dict.fromkeys(args.model))
    if args.no_wandb:
        s["wandb"] = False
    if not args.address and os.environ.get("RAY_ADDRESS"):
        s["address"] = os.environ["RAY_ADDRESS"]
    space = {key: tuple(getattr(args, flag)) for flag, key in SPACE_FLAGS.items() if getattr(args, flag)}
    return _override_space(replace(search, **s), space)  # a flag overrides every kind


def _apply_data_flags(args: argparse.Namespace, search: SearchConfig, data: DataConfig,
                      train: TrainConfig) -> tuple[DataConfig, TrainConfig]:
    """``data`` and ``train`` with ``--data``, ``--image-size``, ``--seed`` and ``--skip-unreadable`` applied, the
    cache folder of the run layout (unless a config file set one), and a local data folder made absolute."""
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
    if is_local(search.storage_path) and data.cache_dir == DataConfig().cache_dir:  # a [data] cache_dir wins
        d["cache_dir"] = str(RunLayout.of(search).cache_dir)
    source = d.get("source", data.source)
    if Path(source).expanduser().is_dir():  # checkpoints store the data config: make it valid from any folder
        d["source"] = str(Path(source).expanduser().resolve())
    return replace(data, **d), train


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
    cfgs, doc = _preset(args.preset), {}
    if args.config:
        cfgs, doc = read_config_file(Path(args.config), cfgs)
    search = _apply_search_flags(args, cfgs["search"])
    if args.config:
        _warn_shadowed(args.config, doc, search)
    data, train = _apply_data_flags(args, search, cfgs["data"], cfgs["train"])
    model = replace(cfgs["model"], image_size=data.image_size)
    return search, data, model, train, args


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
    for kind in search.models:
        _validate_space(kind_space(search, kind))
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


def _validate_space(space: dict[str, tuple]) -> None:
    """Known ``section.field`` keys with choices; epochs and batch sizes >= 1, learning rates > 0."""
    valid_keys = {f"{sec}.{f.name}" for sec, cls in SECTIONS.items() if sec != "search" for f in fields(cls)}
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
