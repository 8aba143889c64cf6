"""Where a search keeps its files: one run layout, shared by the search, the trainable and the report.

A search named ``<name>`` writes two folders::

    <storage_path>/<name>/          the experiment folder: local (git-ignored, absolute paths allowed) or a URI
        <kind>/trial_<id>/          one Tune experiment per model kind (result.json, Tune and searcher state)
        train/trial-<id>/checkpoint_<time>/model.pt   one Ray Train run per trial, its latest checkpoint
        wandb/                      every W&B file of the search and of its report
        optuna.db                   the Optuna studies, one per model kind (SQLite; optuna-dashboard opens it)
        finalfit/<kind>/seed-<s>/   the final fit's checkpoints (:mod:`tuneae.finalfit`), one folder per seed
    <storage_path>/cache/           decoded images (shared by every search on that storage)
    <results_dir>/<name>/           the results folder (committed): summary.json, trials.csv, finalfit.json, report/

Committed files never hold an absolute path of the machine: ``summary.json`` records the experiment folder relative
to the results folder, and every checkpoint relative to the experiment folder, so a reader elsewhere, or the report
after both folders moved together, resolves them again (:meth:`RunLayout.from_summary`; after the experiment folder
alone moved, give its new place explicitly).
"""
from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path, PurePath

from tuneae.config import SearchConfig

TRAIN_DIR = "train"
"""Sub-folder of the experiment holding one Ray Train run per trial."""
WANDB_DIR = "wandb"
"""Sub-folder of the experiment holding every W&B file (runs, config, cache, artifacts)."""
CACHE_DIR = "cache"
"""Sub-folder of the storage path holding the decoded-image cache."""
REPORT_DIR = "report"
"""Sub-folder of the results folder holding the report."""
SUMMARY_FILE, TRIALS_FILE = "summary.json", "trials.csv"
"""The two files of a results folder."""
MANIFEST_FILE = "manifest.csv"
"""The data manifest of a results folder (every file's class, duplicate group, split; :mod:`tuneae.data.manifest`)."""
FINALFIT_DIR = "finalfit"
"""Sub-folder of the experiment holding the final fit's checkpoints, ``<kind>/seed-<s>``."""
FINALFIT_FILE, FINALFIT_TABLE = "finalfit.json", "finalfit.md"
"""The final fit's files in the results folder (its results and their table)."""
STUDY_FILE = "optuna.db"
"""The SQLite file of the search's Optuna studies (one per model kind, named after it) in the experiment folder."""
LOCAL_RUNS = "runs"
"""Default storage path; also where W&B files go when the storage is remote."""


def is_local(path: str | os.PathLike) -> bool:
    """True for a local path, False for a URI such as ``s3://bucket/tuneae``."""
    return "://" not in str(path)


def user_path(value: str | os.PathLike) -> str:
    """A path as the user typed it, expanded the one way every user path is (flags, TOML values, the report's
    arguments): ``~`` / ``~user`` to the home folder and ``$VAR`` / ``${VAR}`` to the environment, as a shell would
    (``--storage-path=~/x`` reaches the program unexpanded, and TOML never expands). A URI (``s3://...``) and ``""``
    are returned unchanged; an unset variable stays as written (``os.path.expandvars``).

    Args:
        value: a local path, a URI, or a non-path value such as a hub id or ``phantom`` (unchanged by both rules
            unless it starts with ``~`` or holds a ``$``).
    Returns:
        The expanded string; relative paths stay relative (to the working folder).
    """
    value = os.fspath(value)
    if not value or not is_local(value):
        return value
    return os.path.expanduser(os.path.expandvars(value))


def portable(value: str, base: str | os.PathLike) -> str:
    """``value`` relative to the folder ``base`` when it is an absolute local path, else unchanged (a hub id, a URI,
    ``phantom``, a description); what a committed file records instead of a path of this machine."""
    if is_local(value) and os.path.isabs(value):
        return os.path.relpath(value, Path(base).resolve())
    return value


def portable_command(program: str, argv: list[str]) -> str:
    """The shell command ``program argv...`` as a committed file records it: every absolute local path argument
    (``/a/b`` or ``--flag=/a/b``) rewritten relative to the working directory, so the command re-runs from the folder
    it was started in and holds no path of this machine; everything else quoted unchanged (:func:`shlex.quote`)."""
    cwd = os.getcwd()

    def one(arg: str) -> str:
        flag, eq, value = arg.partition("=") if arg.startswith("--") else ("", "", arg)
        return shlex.quote(flag + eq + (portable(value, cwd) if value else value))

    return " ".join([program, *(one(a) for a in argv)])


def resolve_recorded(value: str, base: str | os.PathLike) -> str:
    """The inverse of :func:`portable`: a recorded relative path made absolute against ``base``; an absolute path
    or a URI unchanged. A hub id or ``phantom`` also becomes a path here: check that the result exists."""
    if is_local(value) and value and not os.path.isabs(value):
        return str((Path(base) / value).resolve())
    return value


@dataclass(frozen=True)
class RunLayout:
    """The two folders of one search and every path inside them.

    Build it with :meth:`for_search` (the search), :meth:`from_summary` (a results folder) or
    :meth:`from_experiment` (a bare experiment folder); never guess a path from another one elsewhere.
    """

    experiment: str
    """``<storage_path>/<name>``: an absolute local path or a URI."""
    results: Path
    """``<results_dir>/<name>``: the committed outputs."""

    @classmethod
    def for_search(cls, storage_path: str, name: str, results_dir: str | os.PathLike) -> RunLayout:
        """The layout of a search (local storage paths expanded (:func:`user_path`) and made absolute; a URI kept
        as given)."""
        storage_path, results_dir = user_path(storage_path), user_path(results_dir)
        if is_local(storage_path):
            experiment = str((Path(storage_path) / name).resolve())
        else:
            experiment = f"{storage_path.rstrip('/')}/{name}"
        return cls(experiment, Path(results_dir) / name)

    @classmethod
    def of(cls, search: SearchConfig) -> RunLayout:
        """The layout of a search config (``storage_path``, ``name``, ``results_dir``)."""
        return cls.for_search(search.storage_path, search.name, search.results_dir)

    @classmethod
    def from_summary(cls, results: Path, summary: dict, experiment: str | os.PathLike | None = None) -> RunLayout:
        """The layout of a results folder, from its ``summary.json``.

        Args:
            results: the results folder.
            summary: its ``summary.json``; ``experiment_dir`` is relative to ``results`` (older files: absolute).
            experiment: the experiment folder's place when it moved; overrides the recorded one.
        Returns:
            The layout; its experiment is ``experiment`` when given, else the first of the recorded place and
            ``<results>/../../runs/<name>`` (the default layout) that exists, else the recorded place.
        """
        if experiment is not None:
            return cls(str(Path(user_path(experiment)).resolve()) if is_local(experiment) else str(experiment),
                       results)
        name = (summary.get("search") or {}).get("name") or results.name
        recorded = resolve_recorded(str(summary.get("experiment_dir") or results), results)
        default = str((results.parent.parent / LOCAL_RUNS / name).resolve())
        found = next((p for p in (recorded, default) if not is_local(p) or Path(p).is_dir()), recorded)
        return cls(found, results)

    @classmethod
    def from_experiment(cls, experiment: Path, results_dir: str | os.PathLike = "results") -> RunLayout:
        """The layout of a bare experiment folder; its results folder is ``<results_dir>/<folder name>``."""
        experiment = Path(user_path(experiment)).resolve()
        return cls(str(experiment), Path(results_dir) / experiment.name)

    @property
    def name(self) -> str:
        """The search's name (the experiment folder's name)."""
        return PurePath(self.experiment.rstrip("/")).name

    @property
    def local(self) -> bool:
        """Whether the experiment folder is on this machine (not a URI)."""
        return is_local(self.experiment)

    def kind_dir(self, kind: str) -> str:
        """The Tune experiment of one model kind."""
        return f"{self.experiment}/{kind}"

    @property
    def train_dir(self) -> str:
        """Where each trial's Ray Train run keeps its checkpoints (``storage_path`` of the Train run)."""
        return f"{self.experiment}/{TRAIN_DIR}"

    @staticmethod
    def trial_run(trial_id: str) -> str:
        """The name of a trial's Ray Train run: unique and stable, so a resumed trial finds its checkpoints."""
        return f"trial-{trial_id}"

    @property
    def wandb_dir(self) -> Path:
        """``<experiment>/wandb``; ``runs/<name>/wandb`` when the experiment is remote (W&B writes local files)."""
        return (Path(self.experiment) if self.local else Path(LOCAL_RUNS) / self.name) / WANDB_DIR

    @property
    def study_file(self) -> Path:
        """``<experiment>/optuna.db``, the Optuna studies; ``runs/<name>/optuna.db`` when the experiment is remote
        (SQLite needs a local file)."""
        return (Path(self.experiment) if self.local else Path(LOCAL_RUNS) / self.name) / STUDY_FILE

    @property
    def cache_dir(self) -> Path:
        """``<storage_path>/cache`` (``runs/cache`` when the storage is remote)."""
        return (Path(self.experiment).parent if self.local else Path(LOCAL_RUNS)) / CACHE_DIR

    @property
    def summary_file(self) -> Path:
        """``<results>/summary.json``."""
        return self.results / SUMMARY_FILE

    @property
    def trials_file(self) -> Path:
        """``<results>/trials.csv``."""
        return self.results / TRIALS_FILE

    @property
    def manifest_file(self) -> Path:
        """``<results>/manifest.csv``."""
        return self.results / MANIFEST_FILE

    @property
    def finalfit_file(self) -> Path:
        """``<results>/finalfit.json`` (:mod:`tuneae.finalfit`)."""
        return self.results / FINALFIT_FILE

    def finalfit_seed(self, kind: str, seed: int) -> Path:
        """``<experiment>/finalfit/<kind>/seed-<seed>``: one seed's checkpoint folder of the final fit."""
        return Path(self.experiment) / FINALFIT_DIR / kind / f"seed-{seed}"

    @property
    def report_dir(self) -> Path:
        """``<results>/report``."""
        return self.results / REPORT_DIR

    def recorded_experiment(self) -> str:
        """The experiment folder as ``summary.json`` records it: relative to the results folder (a URI as is)."""
        return portable(self.experiment, self.results) if self.local else self.experiment

    def relative_checkpoint(self, path: str) -> str:
        """A checkpoint folder as committed files record it: ``train/trial-<id>/checkpoint_<time>``, relative to
        the experiment folder ("" stays ""). A path from another place (the experiment moved since Tune reported
        it) is cut to its last three parts when they have that form; anything else is returned unchanged."""
        if not path or not os.path.isabs(path):
            return path
        if self.local and Path(path).resolve().is_relative_to(Path(self.experiment).resolve()):
            return os.path.relpath(Path(path).resolve(), Path(self.experiment).resolve())
        parts = PurePath(path).parts
        return str(PurePath(*parts[-3:])) if len(parts) >= 3 and parts[-3] == TRAIN_DIR else path

    def checkpoint(self, recorded: str) -> Path:
        """The checkpoint folder a committed file records, in this layout: an absolute path that exists as it is
        (older summaries), else the recorded path relative to this experiment folder (see
        :meth:`relative_checkpoint`)."""
        if os.path.isabs(recorded) and Path(recorded).exists():
            return Path(recorded)
        rel = self.relative_checkpoint(recorded)
        return Path(rel) if os.path.isabs(rel) else Path(self.experiment) / rel
