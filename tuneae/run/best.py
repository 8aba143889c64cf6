"""The one rule for "the best": the best trial of a kind, the best seed of a final fit, the best study trial.

All three (and the report's choice of the best model or classical method on validation images) are
:func:`best_by`: the candidate with the lowest (or highest) finite score, ties to the first listed.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")

METRIC, MODE = "val/mse", "min"
"""What the searcher, the scheduler and the best-trial rule optimise: MSE per pixel on the validation split, the same
for every trial whatever its training loss (``model.recon_loss``) or kind (the VAE's ELBO included)."""


def _finite(v: Any) -> bool:
    """Whether ``v`` is a finite real number (Python or NumPy; a bool is not)."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def best_by(candidates: Iterable[T], score: Callable[[T], Any], mode: str = MODE) -> T | None:
    """The candidate with the lowest (``mode="min"``) or highest (``"max"``) finite score; ties go to the first.

    Args:
        candidates: the candidates, in order of preference for ties.
        score: a candidate's score (a number; None or a non-finite number leaves the candidate out).
        mode: ``"min"`` or ``"max"``.
    Returns:
        The chosen candidate, or None when none has a finite score.
    Raises:
        ValueError: ``mode`` is neither ``"min"`` nor ``"max"``.
    """
    if mode not in ("min", "max"):
        raise ValueError(f"mode {mode!r}: expected 'min' or 'max'")
    scored = [(c, score(c)) for c in candidates]
    scored = [(c, s) for c, s in scored if _finite(s)]
    if not scored:
        return None
    pick = min if mode == "min" else max
    return pick(scored, key=lambda cs: cs[1])[0]


def best_trial(rows: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """The best trial of one kind: the lowest finite last ``val/mse`` among trials not ``ERROR`` with a checkpoint.

    Used by the search for ``summary.json`` and by the run reader for a bare experiment folder.

    Args:
        rows: one dict per trial of one kind (``trials.csv`` rows, or the last row of a trial's ``result.json``),
            each with ``status``, ``METRIC`` (``val/mse``, the trial's last reported value, or None) and
            ``checkpoint_path``.
    Returns:
        That row, or None when no trial qualifies.
    """
    ok = [r for r in rows if r.get("status") != "ERROR" and r.get("checkpoint_path")]
    return best_by(ok, lambda r: r.get(METRIC), MODE)


def best_seed(seeds: Iterable[T]) -> T | None:
    """The best seed of a final fit: the lowest finite validation MSE of its last epoch (``seed.metrics["val/mse"]``).

    Args:
        seeds: :class:`tuneae.run.fits.Seed` objects (anything with a ``metrics`` dict).
    Returns:
        That seed, or None when no seed has a finite ``val/mse``.
    """
    return best_by(seeds, lambda s: s.metrics.get(METRIC), MODE)


def best_study_trial(study: dict[str, Any]) -> dict[str, Any] | None:
    """The best completed trial of a saved Optuna study (:func:`tuneae.run.study.read_study`): the best finite final
    value in the study's direction among ``COMPLETE`` trials (ASHA-stopped, ``PRUNED``, trials left out).

    Args:
        study: one kind's study as plain data (``trials``, each with ``state`` and ``value``; ``direction``).
    Returns:
        That trial's dict, or None when no trial completed with a finite value.
    """
    done = [t for t in study["trials"] if t["state"] == "COMPLETE"]
    return best_by(done, lambda t: t["value"], "min" if study["direction"] == "minimize" else "max")
