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


def stat(values: np.ndarray, interval: bool = True) -> dict[str, float | None]:
    """``{"mean", "std" (population), "low", "high"}`` of per-image values; low / high bound the 95% percentile-
    bootstrap interval of the mean (:func:`tuneae.metrics.mean_interval`), None when there are fewer than 2 values
    or ``interval`` is False."""
    v = np.asarray(values, dtype=np.float64)
    out: dict[str, float | None] = {"mean": float(v.mean()), "std": float(v.std()), "low": None, "high": None}
    if interval and len(v) >= 2:
        iv = mean_interval(v)
        out.update(low=iv.low, high=iv.high)
    return out


def summarise(values: dict[str, np.ndarray], labels: np.ndarray, classes: tuple[str, ...]) -> dict[str, Any]:
    """Summaries (:func:`stat`) of each per-image metric, overall and per class (classes with images only).

    Args:
        values: metric name -> (N,) per-image values (e.g. from :func:`tuneae.metrics.image_metrics`).
        labels: (N,) class index of each image.
        classes: class names.
    Returns:
        ``{metric: stat, ..., "per_class": {class: {"n": images, metric: stat, ...}}}``; intervals only for
        ``INTERVAL_METRICS``.
    """
    def block(mask):
        return {k: stat(v[mask], k in INTERVAL_METRICS) for k, v in values.items()}

    out: dict[str, Any] = block(np.ones(len(labels), bool))
    out["per_class"] = {c: {"n": int((labels == i).sum()), **block(labels == i)}
                        for i, c in enumerate(classes) if (labels == i).any()}
    return out


def spread(n_total: int, n: int | None) -> np.ndarray:
    """``n`` indices spread evenly over ``range(n_total)`` (all when n is None or larger). The splits are ordered by
    class, so this keeps every class in proportion."""
    if n is None or n >= n_total:
        return np.arange(n_total)
    return np.unique(np.linspace(0, n_total - 1, n).round().astype(int))


__all__ = ["INTERVAL_METRICS", "image_metrics", "predict", "spread", "stat", "summarise"]
