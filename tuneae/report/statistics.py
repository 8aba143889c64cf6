"""The report's rules for claims: selection on validation, paired differences with intervals, threshold status.

- Which model or method is "best" is decided on VALIDATION images (:func:`select_best`), never on test images, so
  the test numbers of the chosen one are an unbiased estimate.
- "A beats B" is claimed only where the 95% bootstrap interval of the paired per-image difference A - B on the
  test images lies wholly above 0 (:func:`difference`, :func:`tuneae.metrics.beats`).
- A target is "met" when the test mean reaches it; :func:`threshold_status` adds whether the interval says so
  clearly.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from scipy import stats

from tuneae.metrics import beats, paired_difference, unpaired_difference, verdict
from tuneae.run.best import best_by
from tuneae.run.fits import over_seeds


def select_best(val_scores: dict[str, float], candidates: Iterable[str]) -> str | None:
    """The candidate with the highest validation score (mean validation PSNR in dB); ties go to the first listed.

    Args:
        val_scores: name -> validation score (higher is better); names without a finite score are skipped.
        candidates: the names to choose from, in order of preference for ties.
    Returns:
        The chosen name, or None when no candidate has a finite score.
    """
    return best_by(candidates, lambda c: val_scores.get(c), "max")


def difference(a: np.ndarray, b: np.ndarray, a_name: str = "A", b_name: str = "B",
               paired: bool = True) -> dict:
    """mean(a - b) over images with its 95% percentile-bootstrap interval and the verdict of the "beats" rule.

    Args:
        a, b: per-image values of a higher-is-better metric (PSNR dB, SSIM): paired, the same images in the same
            order, (N,) each; unpaired, two groups of images (:func:`tuneae.metrics.unpaired_difference`).
        a_name, b_name: names for the verdict.
        paired: resample pairs together (one set of images) or each group on its own (two sets).
    Returns:
        ``{"mean", "low", "high", "n", "confidence", "n_resamples", "beats", "verdict"}``; with fewer than 2 values
        on either side low / high are None, ``beats`` False and the verdict ``"too few images"``.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if min(len(a), len(b)) < 2:
        mean = float(a.mean() - b.mean()) if len(a) and len(b) else None
        return {"mean": mean, "low": None, "high": None, "n": len(a) if paired else len(a) + len(b),
                "beats": False, "verdict": "too few images"}
    iv = paired_difference(a, b) if paired else unpaired_difference(a, b)
    return {**iv.as_dict(), "beats": beats(iv), "verdict": verdict(iv, a_name, b_name)}


def threshold_status(s: dict, threshold: float) -> str:
    """Whether a summarised test mean (``{"mean", "low", "high"}``) reaches ``threshold``: ``"met"`` /
    ``"not met"`` by the mean, with ``" (clearly)"`` when the whole interval is on that side of the threshold."""
    met = s["mean"] >= threshold
    low, high = s.get("low"), s.get("high")
    clear = low is not None and high is not None and (low >= threshold if met else high < threshold)
    return ("met" if met else "not met") + (" (clearly)" if clear else "")


def fmt_interval(s: dict | None, digits: int = 2, signed: bool = False) -> str:
    """``"mean [low, high]"`` of a summary or difference dict (just the mean without an interval; "-" for None)."""
    if s is None or s.get("mean") is None:
        return "-"
    f = f"{{:{'+' if signed else ''}.{digits}f}}"
    text = f.format(s["mean"])
    if s.get("low") is not None:
        text += f" [{f.format(s['low'])}, {f.format(s['high'])}]"
    return text


def seed_interval(values: list[float], level: float = 0.95) -> dict[str, Any]:
    """Mean and Student-t interval over per-seed values (e.g. per-seed differences in dB between two configurations
    trained with the same seeds): the training-run variability that a bootstrap over test images leaves out.

    Args:
        values: one value per training seed (dB).
        level: coverage of the two-sided interval.
    Returns:
        ``{"mean", "low", "high", "n", "per_seed"}``; ``low`` / ``high`` are None for fewer than 2 values
        (mean +- t_{n-1} * sd / sqrt(n), ``scipy.stats.t``).
    Raises:
        ValueError: no values.
    """
    if not values:
        raise ValueError("seed_interval: no values")
    v = np.asarray(values, dtype=np.float64)
    out: dict[str, Any] = {"mean": float(v.mean()), "low": None, "high": None, "n": len(v),
                           "per_seed": [float(x) for x in v]}
    if len(v) > 1:
        half = float(stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
        out.update(low=out["mean"] - half, high=out["mean"] + half)
    return out


__all__ = ["difference", "fmt_interval", "over_seeds", "seed_interval", "select_best", "threshold_status"]
