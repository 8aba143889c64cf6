"""Model outputs, and summaries of per-image metrics: mean, sd and a 95% bootstrap interval, overall and per class.

The per-image metrics themselves (PSNR, SSIM as Wang et al. 2004) and the intervals come from :mod:`tuneae.metrics`.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from tuneae.metrics import image_metrics, mean_interval
from tuneae.models import Autoencoder

INTERVAL_METRICS = ("psnr", "ssim")
"""Metrics summarised with a bootstrap interval (MSE only with mean and sd)."""


def predict(model: Autoencoder, x: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Model outputs for ``x`` (N, 1, S, S) (noisy input may leave [0, 1]), batched, no gradients -> (N, 1, S, S)
    in [0, 1]."""
    model.eval()
    with torch.no_grad():
        return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def stat(values: np.ndarray, interval: bool = True, groups: np.ndarray | None = None) -> dict[str, float | None]:
    """``{"mean", "std" (population), "low", "high"}`` of per-image values; low / high bound the 95% percentile-
    bootstrap interval of the mean (:func:`tuneae.metrics.mean_interval`; with ``groups``, (N,) cluster ids, the
    cluster bootstrap over them), None when there are fewer than 2 values (or groups) or ``interval`` is False."""
    v = np.asarray(values, dtype=np.float64)
    out: dict[str, float | None] = {"mean": float(v.mean()), "std": float(v.std()), "low": None, "high": None}
    if interval and len(v) >= 2 and (groups is None or len(np.unique(groups)) >= 2):
        iv = mean_interval(v, groups=groups)
        out.update(low=iv.low, high=iv.high)
    return out


def summarise(values: dict[str, np.ndarray], labels: np.ndarray, classes: tuple[str, ...],
              groups: np.ndarray | None = None) -> dict[str, Any]:
    """Summaries (:func:`stat`) of each per-image metric, overall and per class (classes with images only).

    Args:
        values: metric name -> (N,) per-image values (e.g. from :func:`tuneae.metrics.image_metrics`).
        labels: (N,) class index of each image.
        classes: class names.
        groups: (N,) cluster (scan group) of each image: the intervals resample whole groups (a class's interval
            the groups of its images); None resamples images.
    Returns:
        ``{metric: stat, ..., "per_class": {class: {"n": images, metric: stat, ...}}}``; intervals only for
        ``INTERVAL_METRICS``; with ``groups``, ``"groups"`` (distinct groups) beside ``"n"`` and at the top.
    """
    def block(mask):
        g = None if groups is None else np.asarray(groups)[mask]
        return {k: stat(v[mask], k in INTERVAL_METRICS, g) for k, v in values.items()}

    def count(mask):
        return {} if groups is None else {"groups": len(np.unique(np.asarray(groups)[mask]))}

    out: dict[str, Any] = {**block(np.ones(len(labels), bool)), **count(np.ones(len(labels), bool))}
    out["per_class"] = {c: {"n": int((labels == i).sum()), **count(labels == i), **block(labels == i)}
                        for i, c in enumerate(classes) if (labels == i).any()}
    return out


def spread(n_total: int, n: int | None) -> np.ndarray:
    """``n`` indices spread evenly over ``range(n_total)`` (all when n is None or larger). The splits are ordered by
    class, so this keeps every class in proportion."""
    if n is None or n >= n_total:
        return np.arange(n_total)
    return np.unique(np.linspace(0, n_total - 1, n).round().astype(int))


__all__ = ["INTERVAL_METRICS", "image_metrics", "predict", "spread", "stat", "summarise"]
