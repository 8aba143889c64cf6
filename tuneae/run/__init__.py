"""The run layer: what a finished search and its final fit left on disk, typed, read and reloaded.

Below the search (``python -m tuneae.search``, which writes ``summary.json`` and ``trials.csv`` through it), the
final fit (``python -m tuneae.finalfit``, which writes ``finalfit.json`` through it) and the report
(``python -m tuneae.report``, which reads all of them); it imports none of those three, and they import none of
each other. Nothing here imports Ray or W&B; Optuna only to read a saved study.

Modules: :mod:`.errors` (:class:`RunError` and the field checks), :mod:`.best` (the one rule for "the best": trial,
seed, study trial), :mod:`.summary` (trial rows, :class:`Summary` / :class:`KindResult`, ``summary.json`` and
``trials.csv``), :mod:`.fits` (:class:`FinalFits` / :class:`FinalFit` / :class:`Seed`, ``finalfit.json``),
:mod:`.find` (:func:`find_run`: the one reader of results and experiment folders), :mod:`.reload` (models and data
back from checkpoints, the reload check), :mod:`.study` (the saved Optuna study as plain data).
"""
from tuneae.run.best import METRIC, MODE, best_by, best_seed, best_study_trial, best_trial
from tuneae.run.errors import RunError
from tuneae.run.find import Run, Trial, find_run
from tuneae.run.fits import FinalFit, FinalFits, Seed, over_seeds, read_finalfit
from tuneae.run.summary import (
    FINAL_STATUSES,
    SHOWN_METRICS,
    KindResult,
    Summary,
    format_table,
    kind_summary,
    read_summary,
    trial_rows,
    versions,
    write_results,
)

__all__ = ["FINAL_STATUSES", "METRIC", "MODE", "SHOWN_METRICS", "FinalFit", "FinalFits", "KindResult", "Run",
           "RunError", "Seed", "Summary", "Trial", "best_by", "best_seed", "best_study_trial", "best_trial",
           "find_run", "format_table", "kind_summary", "over_seeds", "read_finalfit", "read_summary", "trial_rows",
           "versions", "write_results"]
