"""A finished search's results: one row per trial (``trials.csv``) and the summary (``summary.json``), typed.

Nothing here imports Ray, Optuna or W&B. The metric names are the project's one set (``train/loss``, ``val/loss``,
``val/mse``, ``val/psnr``), the same in Tune, W&B, ``trials.csv``, ``summary.json`` and the report.
"""
from __future__ import annotations

import json
import platform
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneae.files import atomic_write, atomic_write_csv
from tuneae.layout import SUMMARY_FILE, TRIALS_FILE, RunLayout
from tuneae.run.best import best_trial
from tuneae.run.errors import NUMBER, RunError, mapping, need

SHOWN_METRICS = ("val/loss", "val/mse", "val/psnr", "train/loss")
"""Metrics in the summary table, trials.csv and summary.json."""
FINAL_STATUSES = {"TERMINATED", "ERROR"}
"""Tune trial statuses of a finished trial; any other status in the saved state means the search was interrupted."""


def trial_rows(kind: str, grid: Iterable, params: Iterable[str], saved: dict[str, str] | None = None,
               layout: RunLayout | None = None) -> list[dict[str, Any]]:
    """One row per trial (a ``trials.csv`` row): searched params, last epoch, metrics, status, stopped early, error.

    Args:
        kind: the model kind (the ``model`` column).
        grid: the kind's ``ray.tune.ResultGrid`` (or any iterable of objects with ``config``, ``metrics``,
            ``error`` and ``path``, as ``ray.tune.Result``).
        params: the searched ``section.field`` keys of this kind (the parameter columns).
        saved: trial id -> Tune status saved last; a trial saved as unfinished gets the status ``INTERRUPTED``.
        layout: the run's layout; checkpoint paths are then recorded relative to its experiment folder
            (:meth:`tuneae.layout.RunLayout.relative_checkpoint`), else as Tune reported them.
    Returns:
        One dict per trial with keys ``model``, ``trial_id``, ``status`` (``TERMINATED``, ``ERROR`` or
        ``INTERRUPTED``), ``stopped_early`` (terminated before its planned epochs: ASHA), ``error`` (one line, at
        most 300 characters, "" if none), the searched ``section.field`` keys, ``last_epoch``, the
        ``SHOWN_METRICS`` (``val/psnr`` in dB; None when the trial reported nothing), ``time_total_s``,
        ``checkpoint_path`` and ``node_id`` ("" when absent).
    """
    saved = saved if saved is not None else {}
    rows = []
    for r in grid:
        cfg = r.config if r.config is not None else {}
        m = r.metrics if r.metrics is not None else {}
        last = int(m.get("epoch", 0) or 0)
        planned = int(cfg.get("train.epochs", 0))
        trial_id = m.get("trial_id") or Path(str(r.path)).name.removeprefix("trial_")  # no result: diverged at once
        status = "ERROR" if r.error else saved.get(trial_id, "TERMINATED")
        status = status if status in FINAL_STATUSES else "INTERRUPTED"
        row = {"model": kind, "trial_id": trial_id, "status": status,
               "stopped_early": bool(status == "TERMINATED" and 0 < last < planned),
               "error": _reason(r.error)}
        for key in params:
            row[key] = cfg.get(key)
        row["last_epoch"] = last
        for key in SHOWN_METRICS:
            row[key] = m.get(key)
        row["time_total_s"] = m.get("time_total_s")
        checkpoint = m.get("checkpoint_path", "")
        row["checkpoint_path"] = layout.relative_checkpoint(checkpoint) if layout else checkpoint
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


@dataclass(frozen=True)
class KindResult:
    """One model kind's entry of ``summary.json`` (``models.<kind>``): trial counts and its best trial."""

    trials: int = 0
    completed: int = 0
    """Trials that ran their planned epochs."""
    stopped_early: int = 0
    """Trials ASHA stopped before their planned epochs."""
    failed: int = 0
    failures: tuple[dict[str, str], ...] = ()
    """``{"trial_id", "error"}`` of every trial with an error."""
    best_trial: str | None = None
    """The best trial's id (:func:`tuneae.run.best.best_trial`), None when no trial qualifies."""
    best_config: dict[str, Any] | None = None
    """Its searched ``section.field`` values."""
    best_metrics: dict[str, Any] | None = None
    """Its last reported ``SHOWN_METRICS`` (``val/psnr`` in dB) and ``epoch``."""
    best_checkpoint: str | None = None
    """Its checkpoint folder, relative to the experiment folder."""
    study: dict[str, Any] | None = None
    """What the summary keeps of the kind's Optuna study (:func:`tuneae.run.study.study_record`), when saved."""

    def to_json(self) -> dict[str, Any]:
        """The entry as written to ``summary.json`` (``study`` only when there is one)."""
        out = {"trials": self.trials, "completed": self.completed, "stopped_early": self.stopped_early,
               "failed": self.failed, "failures": [dict(f) for f in self.failures], "best_trial": self.best_trial,
               "best_config": self.best_config, "best_metrics": self.best_metrics,
               "best_checkpoint": self.best_checkpoint}
        return out if self.study is None else {**out, "study": self.study}

    @classmethod
    def from_json(cls, data: Any, where: str) -> KindResult:
        """Read one ``models.<kind>`` entry; absent counts read as 0.

        Args:
            data: the parsed entry.
            where: the file and field, for error messages (``"<path>: models.ae"``).
        Raises:
            RunError: not an object, or a field of the wrong type (names ``where`` and the field).
        """
        d = mapping(data, where)
        failures = need(d, "failures", list, where, [])
        return cls(trials=need(d, "trials", int, where, 0), completed=need(d, "completed", int, where, 0),
                   stopped_early=need(d, "stopped_early", int, where, 0), failed=need(d, "failed", int, where, 0),
                   failures=tuple(mapping(f, f"{where}.failures") for f in failures),
                   best_trial=None if d.get("best_trial") is None else str(d["best_trial"]),
                   best_config=need(d, "best_config", dict, where, None),
                   best_metrics=need(d, "best_metrics", dict, where, None),
                   best_checkpoint=need(d, "best_checkpoint", str, where, None) or None,
                   study=need(d, "study", dict, where, None))


def kind_summary(rows: list[dict[str, Any]], params: Iterable[str]) -> KindResult:
    """The ``summary.json`` entry of one model kind from its :func:`trial_rows`.

    Args:
        rows: the kind's trial rows.
        params: the searched ``section.field`` keys (the best config's keys).
    Returns:
        The entry; its ``best_*`` fields are None when :func:`tuneae.run.best.best_trial` finds no trial.
    """
    best = best_trial(rows)
    return KindResult(
        trials=len(rows),
        completed=sum(r["status"] == "TERMINATED" and not r["stopped_early"] for r in rows),
        stopped_early=sum(r["stopped_early"] for r in rows),
        failed=sum(r["status"] == "ERROR" for r in rows),
        failures=tuple({"trial_id": r["trial_id"], "error": r["error"]} for r in rows if r["error"]),
        best_trial=best["trial_id"] if best else None,
        best_config={k: best[k] for k in params} if best else None,
        best_metrics={k: best[k] for k in SHOWN_METRICS} | {"epoch": best["last_epoch"]} if best else None,
        best_checkpoint=best["checkpoint_path"] if best else None)


_FIELDS = ("command", "preset", "versions", "started", "wall_time_s", "paths", "experiment_dir", "wandb", "search",
           "data", "models", "interrupted", "comparison_note")
"""summary.json's top-level keys, in the order written."""


@dataclass(frozen=True)
class Summary:
    """A finished search's ``summary.json``: how it ran, on what data, and each kind's result."""

    models: dict[str, KindResult]
    """Kind -> its result, in search order."""
    search: dict[str, Any] = field(default_factory=dict)
    """The search settings (``name``, ``metric``, ``mode``, ``space`` per kind, ``wandb_project``, ...)."""
    data: dict[str, Any] = field(default_factory=dict)
    """Image counts (``per_class`` per split), ``source`` (relative to the results folder when local), ..."""
    command: str | None = None
    preset: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    started: str | None = None
    wall_time_s: float | None = None
    paths: str | None = None
    """How the paths in the file are recorded (relative to what)."""
    experiment_dir: str | None = None
    """The experiment folder, relative to the results folder."""
    wandb: dict[str, Any] | None = None
    interrupted: str | None = None
    """The kind an interruption stopped, or None."""
    comparison_note: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    """Any other top-level keys, kept as read."""

    @property
    def name(self) -> str | None:
        """The search's name (``search.name``), or None when not recorded."""
        return self.search.get("name") or None

    def space(self, kind: str) -> dict[str, list]:
        """The kind's searched space, ``{"train.epochs": [5, 9], ...}`` ({} when not recorded)."""
        spaces = self.search.get("space")
        return dict(spaces.get(kind) or {}) if isinstance(spaces, dict) else {}

    @property
    def data_source(self) -> str:
        """The data source recorded (relative to the results folder when local; "" when not recorded)."""
        return str(self.data.get("source") or "")

    @property
    def per_class(self) -> dict[str, Any] | None:
        """Images per class per split as the search split them, or None when not recorded."""
        return self.data.get("per_class")

    def to_json(self) -> dict[str, Any]:
        """The file's contents (top-level keys in the order written, then ``extra``)."""
        out = {k: getattr(self, k) for k in _FIELDS}
        out["models"] = {kind: m.to_json() for kind, m in self.models.items()}
        return {**out, **self.extra}

    @classmethod
    def from_json(cls, data: Any, where: str = SUMMARY_FILE) -> Summary:
        """Read ``summary.json``'s contents; every top-level field but ``models`` may be absent.

        Args:
            data: the parsed file.
            where: the file, for error messages.
        Raises:
            RunError: not an object, no ``models`` object, or a field of the wrong type (names the file and
                field).
        """
        d = mapping(data, where)
        models = mapping(need(d, "models", dict, where), f"{where}: models")
        wall = need(d, "wall_time_s", NUMBER, where, None)
        return cls(models={str(k): KindResult.from_json(v, f"{where}: models.{k}") for k, v in models.items()},
                   search=need(d, "search", dict, where, {}), data=need(d, "data", dict, where, {}),
                   command=need(d, "command", str, where, None), preset=need(d, "preset", str, where, None),
                   versions=need(d, "versions", dict, where, {}), started=need(d, "started", str, where, None),
                   wall_time_s=None if wall is None else float(wall), paths=need(d, "paths", str, where, None),
                   experiment_dir=need(d, "experiment_dir", str, where, None),
                   wandb=need(d, "wandb", dict, where, None), interrupted=need(d, "interrupted", str, where, None),
                   comparison_note=need(d, "comparison_note", str, where, None),
                   extra={k: v for k, v in d.items() if k not in _FIELDS})


def read_summary(path: Path) -> tuple[Summary, dict[str, Any]]:
    """Read and check a results folder's ``summary.json``.

    Args:
        path: the file.
    Returns:
        (the summary, the file's raw JSON object).
    Raises:
        RunError: the file cannot be read, is not JSON, or is not a search summary (names the file and field).
    """
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunError(f"cannot read {path}: {exc}") from exc
    return Summary.from_json(raw, str(path)), raw


def write_results(out: Path, summary: Summary, rows: list[dict[str, Any]]) -> None:
    """Write ``summary.json`` (indented, non-JSON values as ``str``) and ``trials.csv`` into ``out`` atomically.

    Args:
        out: the results folder, ``<results_dir>/<name>`` (created if missing).
        summary: the search summary.
        rows: :func:`trial_rows` of every kind (CSV header: the union of their keys).
    Raises:
        OSError: the folder cannot be created or written.
    """
    atomic_write(out / SUMMARY_FILE, json.dumps(summary.to_json(), indent=2, default=str) + "\n")
    atomic_write_csv(out / TRIALS_FILE, rows)


def versions() -> dict[str, str]:
    """Python's and the installed packages' versions (``"not installed"`` for a missing one), for summary.json."""
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


def format_table(models: dict[str, KindResult]) -> str:
    """The end-of-search summary table: one line per model kind, best trial's config and validation metrics.

    Args:
        models: kind -> its result.
    Returns:
        The table as text with a header line; val/loss, val/mse and val/psnr (dB) of the best trial, "-" when none.
    """
    header = (f"{'model':6} {'trials':>6} {'stopped':>7} {'failed':>6} {'val/loss':>10} {'val/mse':>9} "
              f"{'val/psnr':>8}  best config")
    lines = [header]
    for kind, m in models.items():
        b = m.best_metrics if m.best_metrics is not None else {}
        best_config = m.best_config if m.best_config is not None else {}
        cfg = " ".join(f"{k.split('.')[-1]}={v}" for k, v in best_config.items())
        lines.append(f"{kind:6} {m.trials:>6} {m.stopped_early:>7} {m.failed:>6} "
                     f"{_fmt(b.get('val/loss'), 4):>10} {_fmt(b.get('val/mse'), 5):>9} {_fmt(b.get('val/psnr'), 2):>8}"
                     f"  {cfg}")
    return "\n".join(lines)
