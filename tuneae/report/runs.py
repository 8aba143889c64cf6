"""Run discovery: the best trial of every model kind in a results folder or an experiment folder."""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from tuneae.config import MODEL_KINDS
from tuneae.layout import FINALFIT_FILE, SUMMARY_FILE, RunLayout
from tuneae.report.errors import ReportError
from tuneae.results import SHOWN_METRICS, best_of


@dataclass(frozen=True)
class Trial:
    """The best trial of one model kind: its checkpoint and the metrics the search reported for it."""

    kind: str
    trial_id: str
    checkpoint: Path
    reported: dict


@dataclass(frozen=True)
class Run:
    """A finished search: its name, summary (None for a bare experiment folder) and best trial per kind."""

    path: Path
    """The folder given: a results folder or an experiment folder."""
    name: str
    summary: dict | None
    trials: dict[str, Trial]
    is_results: bool
    layout: RunLayout
    """Its experiment and results folders."""
    finalfit: dict | None = None
    """``finalfit.json`` of the results folder (:mod:`tuneae.finalfit`) when there is one; each of its kinds is
    then reported from its best seed (``trials``)."""


def _locate(layout: RunLayout, recorded: str, kind: str) -> Path:
    """The checkpoint folder a summary or result row records, in ``layout`` (see ``RunLayout.checkpoint``)."""
    path = layout.checkpoint(recorded)
    if not path.exists():
        raise ReportError(f"{kind}: checkpoint {path} does not exist (recorded as {recorded!r}); if the experiment "
                          f"folder moved, pass its new place with --experiment PATH")
    return path


def find_run(path: str | os.PathLike, experiment: str | os.PathLike | None = None, final_fit: bool = True) -> Run:
    """Find the best trial of every model kind in a results folder or an experiment folder.

    A results folder's ``summary.json`` names each kind's best checkpoint. In an experiment folder each kind's best
    trial is picked from its trials' last rows in ``result.json`` by the search's own rule
    (:func:`tuneae.results.best_of`: lowest finite ``val/mse`` with a checkpoint, errored trials excluded).

    Args:
        path: ``results/<name>`` (with ``summary.json``) or ``<storage_path>/<name>``.
        experiment: for a results folder, the experiment folder's place when it moved since the search (default:
            the place ``summary.json`` records, relative to the results folder).
        final_fit: take each kind that a final fit (``finalfit.json``) trained again from its best seed; False:
            always the search's own best trial (what the final fit itself starts from).
    Returns:
        The run with its best trial per kind (kinds without one are left out, with a warning for a results folder).
    Raises:
        ReportError: the folder is missing or neither kind of folder, no kind has a finished trial, or a named
            checkpoint does not exist.
    """
    run = Path(path).expanduser()
    if not run.is_dir():
        raise ReportError(f"run folder {run} does not exist; give results/<name> or <storage_path>/<name>")
    if (run / SUMMARY_FILE).is_file():
        return _from_summary(run, experiment, final_fit)
    return _from_experiment(run)


def _from_summary(run: Path, experiment: str | os.PathLike | None, final_fit: bool = True) -> Run:
    """The run of a results folder, from its ``summary.json``."""
    try:
        summary = json.loads((run / SUMMARY_FILE).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ReportError(f"cannot read {run / SUMMARY_FILE}: {exc}") from exc
    name = (summary.get("search") or {}).get("name") or run.name
    layout = RunLayout.from_summary(run, summary, experiment)
    trials: dict[str, Trial] = {}
    for kind, m in (summary.get("models") or {}).items():
        if m.get("best_checkpoint"):
            ckpt = _locate(layout, m["best_checkpoint"], kind)
            trials[kind] = Trial(kind, str(m.get("best_trial")), ckpt, dict(m.get("best_metrics") or {}))
    finalfit = _final_fit(run, layout, trials) if final_fit else None
    missing = sorted(set(summary.get("models") or {}) - set(trials))
    if not trials:
        raise ReportError(f"{run / SUMMARY_FILE}: no finished trial with a checkpoint (best_trial is null for "
                          f"{missing or 'every model'}); see 'failures' there")
    if missing:
        warnings.warn(f"no finished trial for {missing}; reporting {sorted(trials)}", stacklevel=3)
    return Run(run, name, summary, trials, is_results=True, layout=layout, finalfit=finalfit)


def _final_fit(run: Path, layout: RunLayout, trials: dict[str, Trial]) -> dict | None:
    """Read ``finalfit.json`` when the results folder has one and put each fitted kind's best seed (by validation
    MSE, :mod:`tuneae.finalfit`) in ``trials`` in place of the search's best trial. Returns the file's contents.

    Raises:
        ReportError: the file cannot be read, or a best seed's checkpoint does not exist.
    """
    path = run / FINALFIT_FILE
    if not path.is_file():
        return None
    try:
        finalfit = json.loads(path.read_text())
        for kind, k in finalfit["kinds"].items():
            best = next(s for s in k["seeds"] if s["seed"] == k["best_seed"])
            ckpt = _locate(layout, best["checkpoint"], f"{kind} final fit")
            trials[kind] = Trial(kind, f"final fit seed {best['seed']} of trial {k['source_trial']}", ckpt,
                                 dict(best["metrics"]))
    except (OSError, json.JSONDecodeError, KeyError, StopIteration) as exc:
        raise ReportError(f"cannot read the final fit {path}: {exc!r}") from exc
    return finalfit


def _last_row(result_json: Path) -> dict:
    """The last complete line of a trial's ``result.json`` (a line cut by a crash is skipped); {} when none."""
    last: dict = {}
    for line in result_json.read_text().splitlines():
        try:
            last = json.loads(line)
        except json.JSONDecodeError:
            continue
    return last


def _from_experiment(run: Path) -> Run:
    """The run of a bare experiment folder (per-kind Tune experiments of trial folders with ``result.json``)."""
    kinds = [k for k in MODEL_KINDS if (run / k).is_dir()]
    if not kinds:
        raise ReportError(f"{run} is neither a results folder (no {SUMMARY_FILE}) nor an experiment folder "
                          f"(no {', '.join(MODEL_KINDS)} sub-folder)")
    layout = RunLayout.from_experiment(run)
    trials: dict[str, Trial] = {}
    for kind in kinds:
        rows = []
        for trial_dir in sorted((run / kind).iterdir()):
            if (trial_dir / "result.json").is_file():
                last = _last_row(trial_dir / "result.json")
                rows.append({**last, "status": "ERROR" if (trial_dir / "error.txt").exists() else "TERMINATED",
                             "checkpoint_path": last.get("checkpoint_path", "")})
        best = best_of(rows)
        if best is not None:
            ckpt = _locate(layout, best["checkpoint_path"], kind)
            reported = {k: best[k] for k in (*SHOWN_METRICS, "epoch") if k in best}
            trials[kind] = Trial(kind, str(best.get("trial_id")), ckpt, reported)
    if not trials:
        raise ReportError(f"{run}: no finished trial (no result.json with a finite val/mse and a checkpoint) "
                          f"under {', '.join(kinds)}")
    return Run(run, run.name, None, trials, is_results=False, layout=layout)
