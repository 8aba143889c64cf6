"""Checks of a search before Ray starts: the type and value of every setting and search-space choice, the relations
between settings, the batch sizes BatchNorm can train on, and W&B's rule for project names. The rules of a training
setting are training's own (:mod:`tuneae.rules`), applied here to every choice of the search space.

Each check raises :class:`ConfigError` (a config file's value: the message names the file, table, key and value) or
``ValueError`` (naming the flag or field, the value and what to change); ``python -m tuneae.search`` prints it as
one ``error:`` line and exits 2 before any image is decoded or Ray starts. Checks of the run's name live in
:mod:`.names`, of the resources per trial in :mod:`.resources`.
"""
from __future__ import annotations

import itertools
import math
import typing
import warnings
from dataclasses import replace
from typing import Any

from tuneae.augment import check_crop_size
from tuneae.config import MODEL_KINDS, SECTIONS, Config, ModelConfig, SearchConfig, TrainConfig, space_flags
from tuneae.layout import CACHE_DIR
from tuneae.models import check_model_config, stride_stages
from tuneae.rules import TRAIN_RULES, batch_norm_problem, noise_range_problem
from tuneae.search.space import kind_space, max_t

HINTS = {section: typing.get_type_hints(cls) for section, cls in SECTIONS.items()}
"""Section -> field -> its type (``int``, ``float``, ``str``, ``bool``, ``tuple[str, ...]``, ``dict``)."""
NOT_SEARCHED = {"model.kind": "the kind is chosen by --model (one experiment per kind)",
                "model.image_size": "it follows [data] image_size (--image-size)"}
"""Fields of the searchable sections that a search space cannot hold, and why."""
FLAGS = space_flags()
"""The command-line flag that sets each key's choices for every kind,
declared on the field (:func:`tuneae.config.flag`)."""
_EXPECTED = {int: "int (a whole number)", float: "float (a number)", str: "str (a quoted string)",
             bool: "bool (true or false)", dict: "a table"}


class ConfigError(ValueError):
    """A bad ``--config`` file: unreadable, or an unknown table or field, or a value of the wrong type; the message
    names the file, table and field."""


def check_value(value: Any, hint: Any, label: str) -> Any:
    """``value`` checked against a config field's type, as the field will hold it.

    An int is accepted for a float field (and returned as a float), a list for a tuple field (returned as a
    tuple); a bool is never taken for a number; a float must be finite.

    Args:
        value: as parsed from TOML (or given by a preset or flag).
        hint: the field's type, from :data:`HINTS`.
        label: what the message names, e.g. ``"c.toml [model] base_channels ="`` or ``"c.toml [space]
            'train.lr' choice"``.
    Returns:
        The value in the field's type.
    Raises:
        ConfigError: ``"<label> <value>: expected <type>"``, or a float that is nan or infinite.
    """
    if typing.get_origin(hint) is tuple:
        elem = typing.get_args(hint)[0]
        if not isinstance(value, list | tuple) or not value:
            raise ConfigError(f"{label} {value!r}: expected a non-empty list of {_EXPECTED[elem]}")
        return tuple(check_value(v, elem, label) for v in value)
    number = isinstance(value, int | float) and not isinstance(value, bool)
    ok = {bool: isinstance(value, bool), int: number and isinstance(value, int), float: number,
          str: isinstance(value, str), dict: isinstance(value, dict)}.get(hint, True)
    if not ok:
        raise ConfigError(f"{label} {value!r}: expected {_EXPECTED[hint]}")
    if hint is float:
        if not math.isfinite(value):
            raise ConfigError(f"{label} {value!r}: expected a finite number")
        return float(value)
    return value


def check_choices(key: str, choices: Any, where: str) -> tuple:
    """One search-space entry checked: a searchable ``model.*`` / ``train.*`` key, a non-empty list of distinct
    choices, each of the field's type (:func:`check_value`).

    Args:
        key: ``"section.field"``.
        choices: the list given (TOML array, preset tuple or flag values).
        where: where it was given, e.g. ``"c.toml [space]"`` or ``"search space of ae"``.
    Returns:
        The choices as a tuple in the field's type.
    Raises:
        ConfigError: naming ``where``, the key and the value: an unknown key, a ``data.*`` key (the images are
            loaded once, before the trials), ``model.kind`` / ``model.image_size``, an empty or non-list value, a
            choice of the wrong type, a choice listed twice.
    """
    label = f"{where} {key!r}"
    section, _, name = key.partition(".")
    if section == "data" and name in HINTS["data"]:
        raise ConfigError(f"{label}: data settings cannot be searched (the images are loaded once, before the "
                          f"trials); set [data] {name} instead")
    if section not in ("model", "train") or name not in HINTS[section] or key in NOT_SEARCHED:
        why = f" ({NOT_SEARCHED[key]})" if key in NOT_SEARCHED else ""
        known = sorted(f"{s}.{f}" for s in ("model", "train") for f in HINTS[s] if f"{s}.{f}" not in NOT_SEARCHED)
        raise ConfigError(f"{label} cannot be searched{why}; searchable keys: {known}")
    if not isinstance(choices, list | tuple) or not choices:
        raise ConfigError(f"{label} = {choices!r}: expected a non-empty list of choices, e.g. "
                          f"[{getattr(SECTIONS[section](), name)!r}]")
    out = tuple(check_value(c, HINTS[section][name], f"{label} choice") for c in choices)
    twice = sorted({c for c in out if out.count(c) > 1}, key=str)
    if twice:
        raise ConfigError(f"{label} lists {twice} more than once; give each choice once")
    return out


def check_project_name(project: str) -> None:
    """W&B's own rule for a project name (``wandb.sdk.wandb_settings.Settings.validate_project``, wandb 0.31: at
    most 128 characters, none of ``/ \\ # ? % :``), plus not empty, applied before any run starts.

    Raises:
        ValueError: naming ``--wandb-project``, the value and W&B's reason.
    """
    from tuneae.tracking import project_name_problem

    problem = "it is empty" if not project.strip() else project_name_problem(project)
    if problem:
        raise ValueError(f"--wandb-project {project!r}: W&B refuses it ({problem}); choose a name of letters, "
                         f"digits, '-', '_' or '.', at most 128 characters (e.g. 'mri-ae'), or pass --no-wandb")


def check_search_settings(search: SearchConfig) -> None:
    """The ``[search]`` settings and their flags on their own: budget, resources per trial, ASHA, W&B, the name.

    Raises:
        ValueError: naming the flag (or field) and value and what to change.
    """
    s = search
    problems = [
        (s.num_samples < 1, f"--num-samples {s.num_samples}: give at least 1 trial per kind"),
        (s.max_concurrent < 0, f"--max-concurrent {s.max_concurrent}: give 0 (derive from the machine) or more"),
        (not s.cpus_per_trial > 0, f"--cpus-per-trial {s.cpus_per_trial:g}: must be > 0 (e.g. 1)"),
        (s.gpus_per_trial < 0, f"--gpus-per-trial {s.gpus_per_trial:g}: must be >= 0 (0 trains on CPUs)"),
        (s.gpus_per_trial > 1 and not float(s.gpus_per_trial).is_integer(),
         f"--gpus-per-trial {s.gpus_per_trial:g}: a worker trains on one device, so more than 1 GPU per worker "
         f"must be a whole number; use a fraction <= 1 (0.25 packs 4 trials on a GPU) or --workers-per-trial"),
        (s.workers_per_trial < 1, f"--workers-per-trial {s.workers_per_trial}: give at least 1"),
        (s.grace_period < 1, f"--grace-period {s.grace_period}: ASHA needs at least 1 epoch before its first rung"),
        (not s.reduction_factor >= 2,
         f"--reduction-factor {s.reduction_factor:g}: give 2 or more (ASHA keeps 1/reduction_factor of the "
         f"trials at each rung; below 2 its rungs of whole epochs nearly coincide)"),
        (not s.models, "[search] models is empty: give at least one kind with --model"),
        (s.wandb_mode not in ("", "offline", "online"),
         f"[search] wandb_mode = {s.wandb_mode!r}: use 'offline', 'online' or '' (decided by WANDB_API_KEY)"),
        (not s.storage_path, "--storage-path is empty: give a folder or a URI (default runs)"),
        (not s.results_dir, "--results-dir is empty: give a folder (default results)"),
    ]
    for bad, message in problems:
        if bad:
            raise ValueError(message)
    unknown = [k for k in s.models if k not in MODEL_KINDS]
    if unknown:
        raise ValueError(f"[search] models has unknown kind(s) {unknown}; choose from {list(MODEL_KINDS)}")
    name = s.name
    if not name.strip() or name in (".", "..", CACHE_DIR) or any(c in name for c in "/\\"):
        raise ValueError(f"--name {name!r}: give a plain folder name (no '/' or '\\', not '.', '..' or "
                         f"{CACHE_DIR!r}, which holds the image cache beside the experiments)")
    if s.wandb:
        check_project_name(s.wandb_project)


def _values(kind_choices: dict[str, tuple], model: ModelConfig, train: TrainConfig) -> dict[str, tuple[tuple, str]]:
    """Every ``model.*`` / ``train.*`` key -> (its choices, how to name one): searched keys as their choices
    (``"train.lr choice"``, with the flag that sets them), fixed values as one choice (``"[train] lr ="``)."""
    out = {}
    for section, cfg in (("model", model), ("train", train)):
        for name in HINTS[section]:
            key = f"{section}.{name}"
            if key in kind_choices:
                flag = f" (set by {FLAGS[key]} or [space] {key!r})" if key in FLAGS else f" ([space] {key!r})"
                out[key] = (kind_choices[key], f"{key} choice{{}}{flag}")
            else:
                out[key] = ((getattr(cfg, name),), f"[{section}] {name} ={{}}")
    return out


def _say(label: str, value: Any) -> str:
    """A label of :func:`_values` with one value in it: ``"train.lr choice 0.0 (set by --lr ...)"``."""
    return label.format(f" {value!r}")


def _check_train_values(values: dict[str, tuple[tuple, str]]) -> None:
    """Every searched or fixed ``train.*`` value against training's own rules (:data:`tuneae.rules.TRAIN_RULES`,
    :func:`tuneae.rules.noise_range_problem`), named as it was given."""
    for name, (ok, need) in TRAIN_RULES.items():
        choices, label = values[f"train.{name}"]
        for v in choices:
            if not ok(v):
                raise ValueError(f"{_say(label, v)}: {need}")
    (lows, low_label), (highs, high_label) = values["train.noise_sigma_min"], values["train.noise_sigma_max"]
    problem = noise_range_problem(max(lows), min(highs))
    if problem:
        raise ValueError(f"{_say(low_label, max(lows))} exceeds {_say(high_label, min(highs))}: {problem}")


def _check_batch_norm(kind: str, values: dict[str, tuple[tuple, str]], image_size: int) -> None:
    """Refuse a batch size that BatchNorm cannot train on (:func:`tuneae.rules.batch_norm_problem`) at any searched
    depth and crop size; the training input's side is ``train.crop_size`` when set, else ``image_size``."""
    if "batch" not in values["model.norm"][0]:
        return
    (batches, batch_label), (depths, _) = values["train.batch_size"], values["model.depth"]
    for b, depth, crop in itertools.product(batches, depths, values["train.crop_size"][0]):
        problem = batch_norm_problem(b, "batch", stride_stages(kind, depth), crop or image_size)
        if problem:
            raise ValueError(f"{_say(batch_label, b)} cannot train {kind} with model.norm 'batch': {problem} "
                             f"([model] norm = \"group\", or [space] \"model.norm\" = [\"group\", \"none\"] in a "
                             f"--config file)")


def _check_relations(kind: str, values: dict[str, tuple[tuple, str]], space: dict[str, tuple], cfg: Config) -> None:
    """ASHA's grace period against ASHA's max_t of ``kind`` (ASHA asserts ``max_t >= grace_period``)."""
    search, last = cfg.search, max_t(space, cfg.train)
    label = _say(values["train.epochs"][1], last)
    if search.grace_period > last:
        raise ValueError(f"--grace-period {search.grace_period} exceeds the largest epochs of {kind} "
                         f"({label}): ASHA's first rung must come before the last epoch; "
                         f"use --grace-period {max(1, last // 3)} or give larger --epochs")
    if search.grace_period == last and search.num_samples > 1:
        warnings.warn(f"--grace-period {search.grace_period} equals the largest epochs of {kind}: ASHA will stop "
                      f"no trial early", stacklevel=3)


def validate(cfg: Config) -> None:
    """Check everything that can be checked before Ray starts or any image is decoded.

    The search settings (:func:`check_search_settings`); for every kind, its search space (:func:`check_choices`),
    the values of every searched or fixed ``train.*`` setting by training's own rules, that every combination of the
    ``model.*`` choices builds (:func:`tuneae.models.check_model_config`, e.g. image size divisible by 2**depth) and
    takes every ``train.crop_size`` (:func:`tuneae.augment.check_crop_size`), that BatchNorm can train on every
    batch size, and ASHA's grace period against the largest epochs; an explicit ``--max-concurrent`` above
    ``--num-samples`` only warns.

    Args:
        cfg: the resolved root config; each kind's ``model.*`` / ``train.*`` choices are applied on top of its
            ``model`` and ``train`` sections.
    Raises:
        ConfigError: a search-space entry of the wrong type (from a preset or a flag; a config file's entries are
            checked as it is read, naming the file).
        ValueError: naming the flag or field, the value and what to change.
    """
    search, model = cfg.search, cfg.model
    check_search_settings(search)
    for kind in search.models:
        space = {k: check_choices(k, v, f"search space of {kind}" + (f" ({FLAGS[k]})" if k in FLAGS else ""))
                 for k, v in kind_space(search, kind).items()}
        values = _values(space, model, cfg.train)
        _check_train_values(values)
        _check_relations(kind, values, space, cfg)
        model_keys = [k for k in values if k.startswith("model.") and k not in NOT_SEARCHED]
        for combo in itertools.product(*(values[k][0] for k in model_keys)):
            built = replace(model, kind=kind, **{k[6:]: v for k, v in zip(model_keys, combo, strict=True)})
            check_model_config(built)
            for crop in values["train.crop_size"][0]:  # random crops fit the model (tuneae.augment)
                check_crop_size(int(crop), built)
        _check_batch_norm(kind, values, model.image_size)
    if 0 < search.num_samples < search.max_concurrent:
        warnings.warn(f"--max-concurrent {search.max_concurrent} exceeds --num-samples {search.num_samples}: at "
                      f"most {search.num_samples} trials of a kind run at once", stacklevel=2)
