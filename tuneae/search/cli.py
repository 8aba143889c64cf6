"""The command line of ``python -m tuneae.search``: flags, the TOML config file, and their merge into one config.

The per-setting flags are derived from the config's fields: every field declared with :func:`tuneae.config.flag`
is a flag (``--num-samples`` for ``search.num_samples``), its help the field's docstring, its type the field's.
Preset, config file and flags are merged in that order (:func:`resolve`) into one :class:`tuneae.config.Config`
and checked (:func:`tuneae.search.checks.validate`) before Ray starts or any image is decoded; a bad file or value
raises :class:`ConfigError` / ``ValueError`` naming it.
"""
from __future__ import annotations

import argparse
import os
import re
import tomllib
import typing
import warnings
from dataclasses import Field, fields, replace
from pathlib import Path
from typing import Any

from tuneae.config import MODEL_KINDS, SECTIONS, Config, DataConfig, SearchConfig, field_docs
from tuneae.layout import RunLayout, is_local, user_path
from tuneae.presets import PRESETS, preset
from tuneae.search.checks import HINTS, ConfigError, check_choices, check_value, validate
from tuneae.search.space import kind_space

__all__ = ["ConfigError", "build_parser", "flagged_fields", "read_config_file", "resolve", "validate"]
DEFAULT_PRESET = "cpu"
"""The preset of a run without ``--preset``."""
PATH_FIELDS = {"search": ("storage_path", "results_dir"), "data": ("source", "cache_dir", "manifest", "groups")}
"""Fields that hold a user's path, expanded by :func:`tuneae.layout.user_path` wherever they come from."""
EPILOG = (
    "Presets: smoke = synthetic 32 px phantoms, 4 trials per model of 3 epochs, ~2 min per model on 2 CPUs (the "
    "tests use it); cpu = the real data at 128x128 with a reduced budget for 2 CPUs (ae, vae, dae, the denoising "
    "U-Net dunet and DnCNN dncnn, 8 trials each; 9 epochs for the bottleneck models, 8 for dunet with "
    "base channels {8, 16} and depth {3, 4} and for dncnn with width {16, 32}, depth {8, 12, 17} and 64 px crops; "
    "ASHA grace 1 / reduction 3, rungs at epochs 1 and 3; about 35 min per model on 2 CPUs); gpu = the seed "
    "project's full grid (lr {1e-3,5e-4,1e-4}, batch {16,32,64}, latent {512,1024,2048}; 40 epochs, ASHA's rungs at "
    "5, 10, 20) plus "
    "base channels, kernel size, normalization and depth (dncnn: 64 channels, depth {17, 20}), the same five kinds, "
    "27 trials each, 1/4 GPU per trial. "
    "Flags override the preset; a --config TOML file sits between the two. Every setting of the [search], [data], "
    "[model] and [train] tables of a config file is documented in tuneae/config.py.")


def flagged_fields() -> list[tuple[str, Field]]:
    """(section, field) of every config field that has a command-line flag (:func:`tuneae.config.flag`)."""
    return [(section, f) for section, cls in SECTIONS.items() for f in fields(cls) if "flag" in f.metadata]


def flag_name(section: str, f: Field) -> str:
    """The flag of a field: its declared name, else ``--<name>`` (``--no-<name>`` for a bool that defaults to
    True), with ``_`` as ``-``."""
    declared = f.metadata["flag"]["name"]
    if declared:
        return declared
    dashed = f.name.replace("_", "-")
    return f"--no-{dashed}" if HINTS[section][f.name] is bool and f.default is True else f"--{dashed}"


def _shown(value: Any) -> str:
    """A default as ``--help`` shows it."""
    if isinstance(value, tuple):
        return " ".join(map(str, value))
    return repr(value) if value == "" else str(value)


def _help(section: str, f: Field) -> str:
    """The flag's help: the field's docstring as plain text, then its default and the presets' values."""
    doc = field_docs(SECTIONS[section]).get(f.name, "")
    doc = re.sub(r":\w+:`~?([^`]*)`", r"\1", re.sub(r"``([^`]*)``", r"'\1'", doc))
    text = " ".join(doc.split())
    if f.metadata["flag"]["space"]:
        text += " Searched: the values given are the choices of every kind (default: the preset's choices)."
    elif HINTS[section][f.name] is bool:
        text = ("off by this flag; on by default: " if f.default is True else "turn on: ") + text[:1].lower() + text[1:]
    else:
        by_preset = {name: getattr(getattr(preset(name), section), f.name)
                     for name in sorted(PRESETS, key=lambda n: n != DEFAULT_PRESET)}
        if len(set(map(_shown, by_preset.values()))) == 1:
            text += f" (default: {_shown(by_preset[DEFAULT_PRESET])})"
        else:
            text += " (default by --preset: " + ", ".join(f"{n} {_shown(v)}" for n, v in by_preset.items()) + ")"
    return text.replace("%", "%%")


def _add_flag(group: argparse._ArgumentGroup, section: str, f: Field) -> None:
    """One field's flag; its value lands in ``args.<section>.<field>`` (None when the flag is not given)."""
    spec, hint = f.metadata["flag"], HINTS[section][f.name]
    kw: dict[str, Any] = {"dest": f"{section}.{f.name}", "default": None, "help": _help(section, f)}
    if hint is bool:
        kw.update(action="store_const", const=not f.default)
    else:
        many = spec["space"] or typing.get_origin(hint) is tuple
        kw.update(type=typing.get_args(hint)[0] if typing.get_origin(hint) is tuple else hint,
                  metavar=spec["metavar"] or (None if spec["choices"] else f.name.upper()))
        if many:
            kw["nargs"] = "+"
        if spec["choices"]:
            kw["choices"] = spec["choices"]
    group.add_argument(flag_name(section, f), **kw)


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface: the run's own flags, then one flag per flagged config field, each documented in
    ``--help`` by the field's docstring."""
    p = argparse.ArgumentParser(
        prog="python -m tuneae.search",
        description="Find the best autoencoder for brain-tumour MRI reconstruction by distributed hyperparameter "
                    "search: Ray Tune + Optuna TPE + ASHA, each trial trained under Ray Train, logged to W&B.",
        epilog=EPILOG)
    a = p.add_argument
    a("--preset", choices=sorted(PRESETS), default=DEFAULT_PRESET, help=f"budget preset (default: {DEFAULT_PRESET})")
    a("--config", metavar="FILE.toml", help="TOML file with [search], [data], [model], [train] and [space] tables "
                                            "(space: e.g. 'train.lr' = [1e-3, 1e-4], or a [space.dunet] table)")
    a("--resume", action="store_true", help="resume the experiment --name from its storage (finished trials are "
                                            "kept, the searcher keeps its history)")
    a("--overwrite", action="store_true", help="replace the run --name (its experiment and results folders are "
                                               "removed first); without it a name that a finished run holds gets "
                                               "a new one (<name>-2), and an unfinished one must be --resume'd")
    a("--report", action="store_true", help="run the best-trial report (python -m tuneae.report) afterwards")
    groups = {"search": p.add_argument_group("search settings ([search] table)"),
              "data": p.add_argument_group("data settings ([data] table)"),
              "space": p.add_argument_group("search space ([space] table): choices for every kind")}
    for section, f in flagged_fields():
        group = groups["space" if f.metadata["flag"]["space"] else section]
        _add_flag(group, section, f)
    return p


def _merge(section: str, base: Any, updates: dict[str, Any], where: str) -> Any:
    """``base`` (the ``section``'s dataclass) with ``updates`` applied, each value checked against the field's
    type."""
    known = {f.name for f in fields(SECTIONS[section])} - {"space", "space_by_kind"}  # the space: a [space] table
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


def read_config_file(path: Path, cfg: Config) -> tuple[Config, dict]:
    """Apply a TOML config file to ``cfg``.

    Args:
        path: the file; tables ``[search]``, ``[data]``, ``[model]``, ``[train]`` (fields of the dataclasses) and
            ``[space]`` (``"section.field" = [choices]``, or a ``[space.<kind>]`` table for one kind).
        cfg: the config so far (the preset's).
    Returns:
        (the updated config, the parsed document).
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
    cfg = Config(**{sec: _merge(sec, getattr(cfg, sec), dict(doc.get(sec, {})), f"{path} [{sec}]") for sec in SECTIONS})
    common, by_kind = {}, {}
    for key, choices in doc.get("space", {}).items():
        if isinstance(choices, dict):  # a [space.dunet] table: that kind only
            if key not in MODEL_KINDS:
                raise ConfigError(f"{path}: [space.{key}] names no model kind; use one of {list(MODEL_KINDS)}")
            by_kind[key] = {sub: check_choices(sub, c, f"{path} [space.{key}]") for sub, c in choices.items()}
        else:
            common[key] = check_choices(key, choices, f"{path} [space]")
    return replace(cfg, search=_override_space(cfg.search, common, by_kind)), doc


def _warn_shadowed(path: str, doc: dict, search: SearchConfig) -> None:
    """Warn about a fixed ``[model]`` / ``[train]`` value that the search space also searches (the space wins)."""
    for section in ("model", "train"):
        for name in doc.get(section, {}):
            if any(f"{section}.{name}" in kind_space(search, k) for k in search.models):
                warnings.warn(f"{path}: [{section}] {name} is also in the search space, which wins; "
                              f"set it under [space] as a one-element list to fix it", stacklevel=3)


def _apply_flags(args: argparse.Namespace, cfg: Config) -> Config:
    """``cfg`` with every given field flag applied: a search-space flag replaces that key's choices for every
    kind, any other sets its field (and the fields it ``also`` sets); ``RAY_ADDRESS`` when ``--address`` is not
    given."""
    updates: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
    space: dict[str, tuple] = {}
    for section, f in flagged_fields():
        value = getattr(args, f"{section}.{f.name}")
        if value is None:
            continue
        if f.metadata["flag"]["space"]:
            space[f"{section}.{f.name}"] = tuple(value)
            continue
        if isinstance(value, list):
            value = tuple(dict.fromkeys(value))  # --model ae ae: once
        for key in (f"{section}.{f.name}", *f.metadata["flag"]["also"]):
            sec, _, name = key.partition(".")
            updates[sec][name] = value
    if "address" not in updates["search"] and os.environ.get("RAY_ADDRESS"):
        updates["search"]["address"] = os.environ["RAY_ADDRESS"]
    cfg = replace(cfg, **{sec: replace(getattr(cfg, sec), **u) for sec, u in updates.items()})
    return replace(cfg, search=_override_space(cfg.search, space))  # a flag overrides every kind


def _place_data(cfg: Config) -> DataConfig:
    """``cfg.data`` made valid from any folder (checkpoints store it): a local data folder and a manifest made
    absolute (and a groups CSV), and the cache folder of the run layout (unless a config file or flag set one)."""
    data, search, d = cfg.data, cfg.search, {}
    for name in ("manifest", "groups"):
        if getattr(data, name):
            d[name] = str(Path(getattr(data, name)).resolve())
    if is_local(search.storage_path) and data.cache_dir == DataConfig().cache_dir:
        d["cache_dir"] = str(RunLayout.of(search).cache_dir)
    if Path(data.source).is_dir():
        d["source"] = str(Path(data.source).resolve())
    return replace(data, **d)


def _expand_paths(cfg: Config) -> Config:
    """``cfg`` with its user paths (:data:`PATH_FIELDS`) expanded by :func:`tuneae.layout.user_path`."""
    return replace(cfg, **{sec: replace(getattr(cfg, sec), **{n: user_path(getattr(getattr(cfg, sec), n))
                                                               for n in names})
                           for sec, names in PATH_FIELDS.items()})


def resolve(argv: list[str] | None = None) -> tuple[Config, argparse.Namespace]:
    """Merge preset, config file and command line (in that order) into one config. Starts nothing, reads no data.

    Also: ``--seed`` seeds the data split and training too; a local ``storage_path`` sets the default
    ``data.cache_dir`` to ``<storage_path>/cache`` (absolute); a local data folder is made absolute (checkpoints
    store it); ``model.image_size`` follows ``data.image_size``; ``RAY_ADDRESS`` is used when ``--address`` is not
    given; ``~`` and ``$VAR`` are expanded in every user path (``--config``, ``--data``, ``--storage-path``,
    ``--results-dir`` and the same fields of a config file; :func:`tuneae.layout.user_path`). A
    ``[model]``/``[train]`` value that the space also searches gives a ``UserWarning`` (the space wins).

    Args:
        argv: command-line arguments without the program name; None reads ``sys.argv[1:]``.
    Returns:
        (the root config, the parsed arguments); ``search.space`` / ``search.space_by_kind`` map
        ``"section.field"`` to a tuple of choices.
    Raises:
        ConfigError: a config file that cannot be read, or an unknown table, field or badly typed value, or a
            bad ``[space]`` entry, naming the file, table, field and value at fault.
        SystemExit: bad command-line flags (argparse prints the error and exits with status 2), or ``--help``.
    """
    args = build_parser().parse_args(argv)
    cfg, doc = preset(args.preset), {}
    if args.config:
        args.config = user_path(args.config)
        cfg, doc = read_config_file(Path(args.config), cfg)
    cfg = _expand_paths(_apply_flags(args, cfg))
    if args.config:
        _warn_shadowed(args.config, doc, cfg.search)
    return replace(cfg, data=_place_data(cfg)), args
