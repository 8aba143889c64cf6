"""The command line of ``python -m tuneae.search``: flags, the TOML config file, and their merge into typed configs.

Preset, config file and flags are merged in that order (:func:`resolve`) and checked
(:func:`tuneae.search.checks.validate`) before Ray starts or any image is decoded; a bad file or value raises
:class:`ConfigError` / ``ValueError`` naming it.
"""
from __future__ import annotations

import argparse
import os
import tomllib
import warnings
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from tuneae.config import MODEL_KINDS, PRESETS, DataConfig, ModelConfig, SearchConfig, TrainConfig
from tuneae.layout import RunLayout, is_local, user_path
from tuneae.search.checks import HINTS, SECTIONS, ConfigError, check_choices, check_value, validate
from tuneae.search.space import kind_space

__all__ = ["ConfigError", "build_parser", "read_config_file", "resolve", "validate"]
SEARCH_FLAGS = ("num_samples", "max_concurrent", "cpus_per_trial", "gpus_per_trial", "workers_per_trial",
                "storage_path", "results_dir", "name", "seed", "grace_period", "reduction_factor", "address",
                "wandb_mode", "wandb_project")
"""Flags copied as they are onto the ``SearchConfig`` field of the same name."""
SPACE_FLAGS = {"lr": "train.lr", "epochs": "train.epochs", "batch_size": "train.batch_size",
               "latent_dim": "model.latent_dim"}
"""Flags that replace one key of the search space, for every kind."""
PATH_FIELDS = {"search": ("storage_path", "results_dir"), "data": ("source", "cache_dir", "manifest")}
"""Fields that hold a user's path, expanded by :func:`tuneae.layout.user_path` wherever they come from (a field
missing from a dataclass is skipped)."""


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface (every flag documented in ``--help``)."""
    p = argparse.ArgumentParser(
        prog="python -m tuneae.search",
        description="Find the best autoencoder for brain-tumour MRI reconstruction by distributed hyperparameter "
                    "search: Ray Tune + Optuna TPE + ASHA, each trial trained under Ray Train, logged to W&B.",
        epilog="Presets: smoke = synthetic 32 px phantoms, 4 trials per model of 3 epochs, ~2 min per model on 2 CPUs "
               "(the tests use it); cpu = the real data at 128x128 with a reduced budget for 2 CPUs "
               "(ae, vae, dae and the denoising U-Net dunet, 8 trials each; epochs {3, 6, 9} for the bottleneck "
               "models, {4, 8} for dunet with base channels {8, 16} and depth {3, 4}; ASHA grace 1 / reduction 3; "
               "about 35 min per model on 2 CPUs); "
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
                                       "its parquet export), a local folder, or 'phantom' (synthetic). A folder "
                                       "may be split folders (train/<class>/<image>, test/<class>/<image>, val/ "
                                       "optional), class folders without a split (<class>/<image>), or one flat "
                                       "folder of unlabeled images; files: PNG, JPEG, TIFF and other rasters, "
                                       "DICOM, NIfTI (.nii / .nii.gz, every non-empty axial slice)")
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
    a("--overwrite", action="store_true", help="replace the run --name (its experiment and results folders are "
                                               "removed first); without it a name that a finished run holds gets "
                                               "a new one (<name>-2), and an unfinished one must be --resume'd")
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
    a("--split", choices=["group", "original"], help="group: leakage-free split of the duplicate groups (default); "
                                                     "original: the folders' own split, cross-split copies removed")
    a("--report", action="store_true", help="run the best-trial report (python -m tuneae.report) afterwards")
    return p


def _merge(cls, base, updates: dict[str, Any], where: str):
    """``base`` (a ``cls`` dataclass) with ``updates`` applied, each value checked against the field's type."""
    section = next(sec for sec, c in SECTIONS.items() if c is cls)
    known = {f.name for f in fields(cls)} - {"space", "space_by_kind"}  # the search space has its own [space] table
    bad = sorted(set(updates) - known)
    if bad:
        raise ConfigError(f"unknown field(s) {bad} in {where}; known: {sorted(known)}"
                          + ("; give the search space as a [space] table" if {"space", "space_by_kind"} & set(bad)
                             else ""))
    return replace(base, **{k: check_value(v, HINTS[section][k], f"{where} {k} =") for k, v in updates.items()})


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
            entry that is not a non-empty list of distinct choices of its field's type, naming the file, table,
            field and value at fault (:func:`tuneae.search.checks.check_choices`).
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
        if isinstance(choices, dict):  # a [space.dunet] table: that kind only
            if key not in MODEL_KINDS:
                raise ConfigError(f"{path}: [space.{key}] names no model kind; use one of {list(MODEL_KINDS)}")
            by_kind[key] = {sub: check_choices(sub, c, f"{path} [space.{key}]") for sub, c in choices.items()}
        else:
            common[key] = check_choices(key, choices, f"{path} [space]")
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
    """``data`` and ``train`` with ``--data``, ``--image-size``, ``--seed``, ``--skip-unreadable`` and ``--split``
    applied, the cache folder of the run layout (unless a config file set one), and a local data folder and a
    ``[data] manifest`` made absolute."""
    d: dict[str, Any] = {}
    if args.data:
        d["source"] = user_path(args.data)
    if args.image_size is not None:
        d["image_size"] = args.image_size
    if args.seed is not None:
        d["seed"] = args.seed
        train = replace(train, seed=args.seed)
    if args.skip_unreadable:
        d["skip_unreadable"] = True
    if args.split:
        d["split"] = args.split
    if data.manifest:  # like the source: valid from any folder
        d["manifest"] = str(Path(data.manifest).resolve())  # already expanded (PATH_FIELDS)
    if is_local(search.storage_path) and data.cache_dir == DataConfig().cache_dir:  # a [data] cache_dir wins
        d["cache_dir"] = str(RunLayout.of(search).cache_dir)
    source = d.get("source", data.source)
    if Path(source).is_dir():  # checkpoints store the data config: make it valid from any folder
        d["source"] = str(Path(source).resolve())
    return replace(data, **d), train


def _expand_paths(cfg, section: str):
    """``cfg`` with its user paths (:data:`PATH_FIELDS`) expanded by :func:`tuneae.layout.user_path`."""
    present = {f.name for f in fields(cfg)}
    return replace(cfg, **{n: user_path(getattr(cfg, n)) for n in PATH_FIELDS[section] if n in present})


def resolve(argv: list[str] | None = None) -> tuple[SearchConfig, DataConfig, ModelConfig, TrainConfig,
                                                     argparse.Namespace]:
    """Merge preset, config file and command line (in that order) into typed configs. Starts nothing, reads no data.

    Also: ``--seed`` seeds the data split and training too; a local ``storage_path`` sets the default
    ``data.cache_dir`` to ``<storage_path>/cache`` (absolute); a local data folder is made absolute (checkpoints
    store it); ``model.image_size`` follows ``data.image_size``; ``RAY_ADDRESS`` is used when ``--address`` is not
    given; ``~`` and ``$VAR`` are expanded in every user path (``--config``, ``--data``, ``--storage-path``,
    ``--results-dir`` and the same fields of a config file; :func:`tuneae.layout.user_path`). A
    ``[model]``/``[train]`` value that the space also searches gives a ``UserWarning`` (the space wins).

    Args:
        argv: command-line arguments without the program name; None reads ``sys.argv[1:]``.
    Returns:
        (search, data, model, train, parsed arguments); ``search.space`` / ``search.space_by_kind`` map
        ``"section.field"`` to a tuple of choices.
    Raises:
        ConfigError: a config file that cannot be read, or an unknown table, field or badly typed value, or a
            bad ``[space]`` entry, naming the file, table, field and value at fault.
        SystemExit: bad command-line flags (argparse prints the error and exits with status 2), or ``--help``.
    """
    args = build_parser().parse_args(argv)
    cfgs, doc = _preset(args.preset), {}
    if args.config:
        args.config = user_path(args.config)
        cfgs, doc = read_config_file(Path(args.config), cfgs)
    search = _expand_paths(_apply_search_flags(args, cfgs["search"]), "search")
    cfgs["data"] = _expand_paths(cfgs["data"], "data")
    if args.config:
        _warn_shadowed(args.config, doc, search)
    data, train = _apply_data_flags(args, search, cfgs["data"], cfgs["train"])
    model = replace(cfgs["model"], image_size=data.image_size)
    return search, data, model, train, args
