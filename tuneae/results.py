"""The results of a search: one row per trial, the best-trial rule, the summary and its files.

Below both :mod:`tuneae.search` (which writes these) and :mod:`tuneae.report` (which reads them): nothing here
imports Ray, Optuna or W&B. The metric names are the project's one set (``train/loss``, ``val/loss``, ``val/mse``,
``val/psnr``), the same in Tune, W&B, ``trials.csv``, ``summary.json`` and the report.
"""
from __future__ import annotations

import json
import math
import platform
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tuneae.files import atomic_write, atomic_write_csv
from tuneae.layout import SUMMARY_FILE, TRIALS_FILE, RunLayout

METRIC, MODE = "val/mse", "min"
"""What the searcher, the scheduler and the best-trial rule optimise: MSE per pixel on the validation split, the same
for every trial whatever its training loss (``model.recon_loss``) or kind (the VAE's ELBO included)."""
SHOWN_METRICS = ("val/loss", "val/mse", "val/psnr", "train/loss")
"""Metrics in the summary table, trials.csv and summary.json."""
FINAL_STATUSES = {"TERMINATED", "ERROR"}
"""Tune trial statuses of a finished trial; any other status in the saved state means the search was interrupted."""


def trial_rows(kind: str, grid: Iterable, params: Iterable[str], saved: dict[str, str] | None = None,
               layout: RunLayout | None = None) -> list[dict[str, Any]]:
    """One row per trial: searched params, last epoch, metrics, status, stopped early or not, error.

    Args:
        kind: the model kind (the ``model`` column).
        grid: the kind's ``ray.tune.ResultGrid`` (or any iterable of objects with ``config``, ``metrics``,
            ``error`` and ``path``, as ``ray.tune.Result``).
        params: the searched ``section.field`` keys of this kind (the parameter columns).
        saved: trial id -> Tune status saved last (``tuneae.search.tune.saved_statuses``); a trial saved as
            unfinished gets the status ``INTERRUPTED``.
        layout: the run's layout; checkpoint paths are then recorded relative to its experiment folder
            (:meth:`tuneae.layout.RunLayout.relative_checkpoint`), else as Tune reported them.
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
        for key in params:
            row[key] = cfg.get(key)
        row["last_epoch"] = last
        for key in SHOWN_METRICS:
            row[key] = m.get(key)
        row["time_total_s"] = m.get("time_total_s")
        row["checkpoint_path"] = layout.relative_checkpoint(m.get("checkpoint_path", "")) if layout else \
            m.get("checkpoint_path", "")
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
    """The best trial of one kind: the lowest finite last ``val/mse`` among trials not ``ERROR`` with a checkpoint.

    The one rule, used by the search for ``summary.json`` and by the report for a bare experiment folder.

    Args:
        rows: one dict per trial of one kind, each with ``status``, ``METRIC`` (``val/mse``, the trial's last
            reported value, or None) and ``checkpoint_path``.
    Returns:
        That row, or None when no trial qualifies.
    """
    ok = [r for r in rows if r["status"] != "ERROR" and isinstance(r.get(METRIC), (int, float))
          and math.isfinite(r[METRIC]) and r["checkpoint_path"]]
    return min(ok, key=lambda r: r[METRIC]) if ok else None


def kind_summary(rows: list[dict[str, Any]], params: Iterable[str]) -> dict[str, Any]:
    """The ``summary.json`` entry of one model kind from its :func:`trial_rows`.

    Args:
        rows: the kind's trial rows.
        params: the searched ``section.field`` keys (the best config's keys).
    Returns:
        ``{"trials", "completed", "stopped_early", "failed", "failures": [{"trial_id", "error"}], "best_trial",
        "best_config", "best_metrics" (SHOWN_METRICS and "epoch"), "best_checkpoint"}``; the ``best_*`` entries are
        None when :func:`best_of` finds no trial.
    """
    best = best_of(rows)
    return {
        "trials": len(rows),
        "completed": sum(r["status"] == "TERMINATED" and not r["stopped_early"] for r in rows),
        "stopped_early": sum(r["stopped_early"] for r in rows),
        "failed": sum(r["status"] == "ERROR" for r in rows),
        "failures": [{"trial_id": r["trial_id"], "error": r["error"]} for r in rows if r["error"]],
        "best_trial": best["trial_id"] if best else None,
        "best_config": {k: best[k] for k in params} if best else None,
        "best_metrics": {k: best[k] for k in SHOWN_METRICS} | {"epoch": best["last_epoch"]} if best else None,
        "best_checkpoint": best["checkpoint_path"] if best else None,
    }


def write_results(out: Path, summary: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """Write ``summary.json`` (indented, non-JSON values as ``str``) and ``trials.csv`` into ``out`` atomically.

    Args:
        out: the results folder, ``<results_dir>/<name>`` (created if missing).
        summary: the search summary.
        rows: :func:`trial_rows` of every kind (CSV header: the union of their keys).
    Raises:
        OSError: the folder cannot be created or written.
    """
    atomic_write(out / SUMMARY_FILE, json.dumps(summary, indent=2, default=str) + "\n")
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
