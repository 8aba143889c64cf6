"""The one reader of run folders: a results folder (``summary.json``, ``finalfit.json``) or a bare experiment folder,
turned into a :class:`Run` with the best trial of every model kind."""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneae.config import MODEL_KINDS
from tuneae.layout import FINALFIT_FILE, SUMMARY_FILE, RunLayout
from tuneae.run.best import best_trial
from tuneae.run.errors import RunError, mapping, need
from tuneae.run.fits import FinalFits, read_finalfit
from tuneae.run.summary import SHOWN_METRICS, Summary, read_summary


@dataclass(frozen=True)
class Trial:
    """The best trial of one model kind (or a final fit's best seed): its checkpoint and the metrics reported."""

    kind: str
    trial_id: str
    """The trial's id, or ``"final fit seed <s> of trial <id>"``."""
    checkpoint: Path
    """Its checkpoint folder (resolved in the run's layout)."""
    reported: dict[str, Any]
    """The metrics the search (or the final fit) reported for it: ``val/loss``, ``val/mse``, ``val/psnr`` (dB), ..."""

    def to_json(self) -> dict[str, Any]:
        """``{"kind", "trial_id", "checkpoint", "reported"}`` (the checkpoint as a string)."""
        return {"kind": self.kind, "trial_id": self.trial_id, "checkpoint": str(self.checkpoint),
                "reported": dict(self.reported)}

    @classmethod
    def from_json(cls, data: Any, where: str = "trial") -> Trial:
        """Read :meth:`to_json`'s form back.

        Raises:
            RunError: a field missing or of the wrong type (names ``where`` and the field).
        """
        d = mapping(data, where)
        return cls(need(d, "kind", str, where), need(d, "trial_id", str, where),
                   Path(need(d, "checkpoint", str, where)), dict(need(d, "reported", dict, where, {})))


@dataclass(frozen=True)
class Run:
    """A finished search: its name, summary (None for a bare experiment folder) and best trial per kind."""

    path: Path
    """The folder given: a results folder or an experiment folder."""
    name: str
    summary: Summary | None
    trials: dict[str, Trial]
    is_results: bool
    layout: RunLayout
    """Its experiment and results folders."""
    finalfit: FinalFits | None = None
    """``finalfit.json`` of the results folder when there is one; each of its kinds is then reported from its best
    seed (``trials``)."""


def _locate(layout: RunLayout, recorded: str, kind: str) -> Path:
    """The checkpoint folder a summary or result row records, in ``layout`` (see ``RunLayout.checkpoint``)."""
    path = layout.checkpoint(recorded)
    if not path.exists():
        raise RunError(f"{kind}: checkpoint {path} does not exist (recorded as {recorded!r}); if the experiment "
                       f"folder moved, pass its new place with --experiment PATH")
    return path


def find_run(path: str | os.PathLike, experiment: str | os.PathLike | None = None, final_fit: bool = True,
             complete: bool = False) -> Run:
    """Find the best trial of every model kind in a results folder or an experiment folder.

    A results folder's ``summary.json`` names each kind's best checkpoint. In an experiment folder each kind's best
    trial is picked from its trials' last rows in ``result.json`` by the search's own rule
    (:func:`tuneae.run.best.best_trial`: lowest finite ``val/mse`` with a checkpoint, errored trials excluded).

    Args:
        path: ``results/<name>`` (with ``summary.json``) or ``<storage_path>/<name>``.
        experiment: for a results folder, the experiment folder's place when it moved since the search (default:
            the place ``summary.json`` records, relative to the results folder).
        final_fit: take each kind that a final fit (``finalfit.json``) trained again from its best seed; False:
            always the search's own best trial (what the final fit itself starts from).
        complete: with ``final_fit``, refuse a final fit that lacks a kind the search found or fitted another trial
            than its best (the report: every kind from the same kind of run); False takes what was fitted.
    Returns:
        The run with its best trial per kind (kinds without one are left out, with a warning for a results folder).
    Raises:
        RunError: the folder is missing or neither kind of folder, a results file is unreadable or malformed, no
            kind has a finished trial, or a named checkpoint does not exist.
    """
    run = Path(path).expanduser()
    if not run.is_dir():
        raise RunError(f"run folder {run} does not exist; give results/<name> or <storage_path>/<name>")
    if (run / SUMMARY_FILE).is_file():
        return _from_summary(run, experiment, final_fit, complete)
    return _from_experiment(run)


def _from_summary(run: Path, experiment: str | os.PathLike | None, final_fit: bool = True,
                  complete: bool = False) -> Run:
    """The run of a results folder, from its ``summary.json``."""
    summary, raw = read_summary(run / SUMMARY_FILE)
    layout = RunLayout.from_summary(run, raw, experiment)
    trials: dict[str, Trial] = {}
    for kind, m in summary.models.items():
        if m.best_checkpoint:
            ckpt = _locate(layout, m.best_checkpoint, kind)
            reported = dict(m.best_metrics) if m.best_metrics is not None else {}
            trials[kind] = Trial(kind, str(m.best_trial), ckpt, reported)
    finalfit = _final_fit(run, layout, trials, complete) if final_fit else None
    missing = sorted(set(summary.models) - set(trials))
    if not trials:
        raise RunError(f"{run / SUMMARY_FILE}: no finished trial with a checkpoint (best_trial is null for "
                       f"{missing or 'every model'}); see 'failures' there")
    if missing:
        warnings.warn(f"no finished trial for {missing}; reporting {sorted(trials)}", stacklevel=3)
    return Run(run, summary.name or run.name, summary, trials, is_results=True, layout=layout, finalfit=finalfit)


def _final_fit(run: Path, layout: RunLayout, trials: dict[str, Trial], complete: bool = False) -> FinalFits | None:
    """Read ``finalfit.json`` when the results folder has one and put each fitted kind's best seed (by validation
    MSE, :func:`tuneae.run.best.best_seed`, recorded as ``best_seed``) in ``trials`` in place of the search's best
    trial.

    With ``complete`` every reported kind must come from the same kind of run: a final fit that lacks a kind the
    search found (its fit not finished, or a call with ``--model``), or that fitted another trial than the search's
    best now (the search resumed since), is refused rather than mixed with the search's single runs.

    Returns:
        The record, or None without one.
    Raises:
        RunError: the file cannot be read or is malformed, with ``complete`` lacks a kind of ``trials`` or fitted
            another trial than its best (names the kinds and the command that fits them), or a best seed's
            checkpoint does not exist.
    """
    try:
        finalfit = read_finalfit(run / FINALFIT_FILE)
    except RunError as exc:
        raise RunError(f"cannot read the final fit: {exc}") from exc
    if finalfit is None:
        return None
    stale = sorted(k for k, f in finalfit.kinds.items() if k in trials and f.source_trial
                   and f.source_trial != trials[k].trial_id)
    missing = sorted(set(trials) - set(finalfit.kinds))
    if complete and (stale or missing):
        parts = [f"no final fit of {missing} (fitted: {sorted(finalfit.kinds)})"] if missing else []
        parts += [f"{k} was fitted from trial {finalfit.kinds[k].source_trial}, the search's best is now "
                  f"{trials[k].trial_id}" for k in stale]
        raise RunError(f"{run / FINALFIT_FILE}: {'; '.join(parts)}; the report does not mix final-fit seeds with "
                       f"the search's single runs: run `python -m tuneae.finalfit {run} --model "
                       f"{' '.join(missing + stale)}` "
                       "first (finished seeds are read back), or move finalfit.json aside to report the search alone")
    for kind, k in finalfit.kinds.items():
        best = k.best
        ckpt = _locate(layout, best.checkpoint, f"{kind} final fit")
        trials[kind] = Trial(kind, f"final fit seed {best.seed} of trial {k.source_trial}", ckpt, dict(best.metrics))
    return finalfit


def _last_row(result_json: Path) -> dict[str, Any]:
    """The last complete line of a trial's ``result.json`` (a line cut by a crash is skipped); {} when none."""
    last: dict[str, Any] = {}
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
        raise RunError(f"{run} is neither a results folder (no {SUMMARY_FILE}) nor an experiment folder "
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
        best = best_trial(rows)
        if best is not None:
            ckpt = _locate(layout, best["checkpoint_path"], kind)
            reported = {k: best[k] for k in (*SHOWN_METRICS, "epoch") if k in best}
            trials[kind] = Trial(kind, str(best.get("trial_id")), ckpt, reported)
    if not trials:
        raise RunError(f"{run}: no finished trial (no result.json with a finite val/mse and a checkpoint) "
                       f"under {', '.join(kinds)}")
    return Run(run, run.name, None, trials, is_results=False, layout=layout)
