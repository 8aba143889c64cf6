"""The report's rules for claims: selection on validation, paired differences with intervals, threshold status.

- Which model or method is "best" is decided on VALIDATION images (:func:`select_best`), never on test images, so
  the test numbers of the chosen one are an unbiased estimate.
- "A beats B" is claimed only where the 95% bootstrap interval of the paired per-image difference A - B on the
  test images lies wholly above 0 (:func:`difference`, :func:`tuneae.metrics.beats`). The report resamples whole
  scan groups of test images (the cluster bootstrap), since slices of one scan are alike.
- A target is "met" when the test mean reaches it; :func:`threshold_status` adds whether the interval says so
  clearly; a target "above a reference by a margin" also needs the interval to exclude 0 (:func:`margin_status`).
- A headline is the mean over a final fit's seeds (a t-interval over seeds, :func:`seed_interval`) where the model
  has at least :data:`MIN_SEEDS` of them (:func:`final_seeds`), else the one reported run; two configurations
  trained with their own seeds are compared by their seed means (:func:`welch_interval`).
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from scipy import stats

from tuneae.metrics import beats, paired_difference, unpaired_difference, verdict
from tuneae.run.best import best_by
from tuneae.run.fits import over_seeds

MIN_SEEDS = 2
"""Final-fit seeds from which a target's headline is the mean over seeds (with a t-interval over them) rather than
the one reported run (with a bootstrap interval over test images)."""


def select_best(val_scores: dict[str, float], candidates: Iterable[str]) -> str | None:
    """The candidate with the highest validation score (mean validation PSNR in dB); ties go to the first listed.

    Args:
        val_scores: name -> validation score (higher is better); names without a finite score are skipped.
        candidates: the names to choose from, in order of preference for ties.
    Returns:
        The chosen name, or None when no candidate has a finite score.
    """
    return best_by(candidates, lambda c: val_scores.get(c), "max")


def n_groups(groups: np.ndarray | None) -> int | None:
    """Distinct ids in ``groups`` ((N,) cluster ids, e.g. :meth:`tuneae.data.Splits.groups`), None for None."""
    return None if groups is None else len(np.unique(np.asarray(groups)))


def difference(a: np.ndarray, b: np.ndarray, a_name: str = "A", b_name: str = "B",
               paired: bool = True, groups=None) -> dict:
    """mean(a - b) over images with its 95% percentile-bootstrap interval and the verdict of the "beats" rule.

    Args:
        a, b: per-image values of a higher-is-better metric (PSNR dB, SSIM): paired, the same images in the same
            order, (N,) each; unpaired, two groups of images (:func:`tuneae.metrics.unpaired_difference`).
        a_name, b_name: names for the verdict.
        paired: resample pairs together (one set of images) or each group on its own (two sets).
        groups: the cluster of each image, for a cluster bootstrap (whole scan groups resampled,
            :func:`tuneae.metrics.paired_difference`): paired, one (N,) array; unpaired, a pair ``(groups of a,
            groups of b)``. None resamples images.
    Returns:
        ``{"mean", "low", "high", "n", "confidence", "n_resamples", "beats", "verdict"}``, with ``"groups"`` (the
        clusters resampled) when ``groups`` is given; with fewer than 2 values (or groups) on either side low /
        high are None, ``beats`` False and the verdict ``"too few images"`` (``"too few groups"``).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    sides = (None, None) if groups is None else (groups, groups) if paired else groups
    counts = [n_groups(g) for g in sides]
    few_groups = groups is not None and min(counts) < 2
    if min(len(a), len(b)) < 2 or few_groups:
        mean = float(a.mean() - b.mean()) if len(a) and len(b) else None
        out = {"mean": mean, "low": None, "high": None, "n": len(a) if paired else len(a) + len(b),
               "beats": False, "verdict": "too few images" if min(len(a), len(b)) < 2 else "too few groups"}
        return out if groups is None else {**out, "groups": counts[0] if paired else sum(counts)}
    iv = paired_difference(a, b, groups=groups) if paired else unpaired_difference(a, b, groups=groups)
    return {**iv.as_dict(), "beats": beats(iv), "verdict": verdict(iv, a_name, b_name)}


def threshold_status(s: dict, threshold: float) -> str:
    """Whether a summarised test mean (``{"mean", "low", "high"}``) reaches ``threshold``: ``"met"`` /
    ``"not met"`` by the mean, with ``" (clearly)"`` when the whole interval is on that side of the threshold."""
    met = s["mean"] >= threshold
    low, high = s.get("low"), s.get("high")
    clear = low is not None and high is not None and (low >= threshold if met else high < threshold)
    return ("met" if met else "not met") + (" (clearly)" if clear else "")


def excludes_0_status(d: dict) -> str:
    """The status of a "> 0" claim on a difference ``{"mean", "low", "high"}``: met only where the whole interval
    is above 0."""
    if d.get("low") is None:
        return "not met (no interval)" if d["mean"] > 0 else "not met"
    return "met (clearly)" if d["low"] > 0 else "not met (clearly)" if d["high"] < 0 else \
        "not met (interval includes 0)"


def margin_status(d: dict, margin: float) -> tuple[bool, str]:
    """Whether a difference A - reference (``{"mean", "low", "high"}``, dB) reaches ``margin`` by its mean with an
    interval that excludes 0: (met, status text; :func:`threshold_status` against the margin, or why not met)."""
    status = threshold_status(d, margin)
    if not status.startswith("met"):
        return False, status
    if d.get("low") is None:
        return False, "not met (no interval)"
    if d["low"] <= 0:
        return False, "not met (interval includes 0)"
    return True, status


def final_seeds(m: dict, label: str | None, key: str | None = None) -> list[dict] | None:
    """The final-fit seeds of ``label`` (:func:`tuneae.report.seeds.seed_metrics` rows of ``m["finalfit"]``) when
    there are at least :data:`MIN_SEEDS` of them (and, given a sigma ``key``, every one measured denoising there),
    else None."""
    rows = ((m.get("finalfit") or {}).get(label) or {}).get("seeds") or []
    if key is not None and not all(key in r.get("denoising", {}) for r in rows):
        return None
    return rows if len(rows) >= MIN_SEEDS else None


def welch_interval(a: list[float], b: list[float], level: float = 0.95) -> dict[str, Any]:
    """mean(a) - mean(b) over two sets of training seeds with Welch's t-interval (unequal variances,
    Welch-Satterthwaite degrees of freedom): two configurations each trained with its own seeds, so nothing pairs
    seed i of one with seed i of the other.

    Args:
        a, b: one value per training seed of each configuration (e.g. mean test PSNR in dB).
        level: coverage of the two-sided interval.
    Returns:
        ``{"mean", "low", "high", "n": [len(a), len(b)], "df", "per_seed": [a, b]}``; ``low`` / ``high`` / ``df``
        None when either side has fewer than 2 values; a zero-width interval when both sides are constant.
    Raises:
        ValueError: no values on a side.
    """
    if not len(a) or not len(b):
        raise ValueError("welch_interval: no values on a side")
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    out: dict[str, Any] = {"mean": float(x.mean() - y.mean()), "low": None, "high": None, "n": [len(x), len(y)],
                           "df": None, "per_seed": [[float(v) for v in x], [float(v) for v in y]]}
    if min(len(x), len(y)) < 2:
        return out
    va, vb = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    if va + vb == 0:
        return {**out, "low": out["mean"], "high": out["mean"]}
    df = (va + vb) ** 2 / (va ** 2 / (len(x) - 1) + vb ** 2 / (len(y) - 1))
    half = float(stats.t.ppf(0.5 + level / 2, df) * np.sqrt(va + vb))
    return {**out, "low": out["mean"] - half, "high": out["mean"] + half, "df": float(df)}


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


__all__ = ["MIN_SEEDS", "difference", "excludes_0_status", "final_seeds", "fmt_interval", "margin_status",
           "n_groups", "over_seeds", "seed_interval", "select_best", "threshold_status", "welch_interval"]
