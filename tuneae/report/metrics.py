"""Per-image quality metrics of model outputs and their summaries (overall and per class)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from skimage.metrics import structural_similarity

from tuneae.models import Autoencoder
from tuneae.train import psnr_per_image


def predict(model: Autoencoder, x: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Model outputs for ``x`` (N, 1, S, S) in [0, 1], batched, no gradients -> (N, 1, S, S) in [0, 1]."""
    model.eval()
    with torch.no_grad():
        return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def image_metrics(output: np.ndarray, clean: np.ndarray) -> dict[str, np.ndarray]:
    """MSE, PSNR and SSIM of each image.

    PSNR = 10 log10(1 / MSE) in dB for data range 1 (:func:`tuneae.train.psnr_per_image`, as in ``val/psnr``);
    SSIM is scikit-image's ``structural_similarity`` (Wang et al. 2004, "Image quality assessment: from error
    visibility to structural similarity", IEEE TIP 13(4)) with a 7x7 window and ``data_range=1``.

    Args:
        output, clean: (N, H, W) float in [0, 1].
    Returns:
        ``{"mse": (N,), "psnr": (N,) dB, "ssim": (N,) in [-1, 1]}``.
    """
    o, c = torch.as_tensor(output, dtype=torch.float64), torch.as_tensor(clean, dtype=torch.float64)
    return {"mse": (o - c).pow(2).flatten(1).mean(1).numpy(),
            "psnr": psnr_per_image(o[:, None], c[:, None]).numpy(),
            "ssim": np.array([structural_similarity(a, b, data_range=1.0) for a, b in zip(o.numpy(), c.numpy())])}


def summarise(values: dict[str, np.ndarray], labels: np.ndarray, classes: tuple[str, ...]) -> dict[str, Any]:
    """Mean and (population) std of each per-image metric, overall and per class (classes with images only)."""
    def stats(v):
        return {"mean": float(np.mean(v)), "std": float(np.std(v))}

    out: dict[str, Any] = {k: stats(v) for k, v in values.items()}
    out["per_class"] = {c: {"n": int((labels == i).sum()), **{k: stats(v[labels == i]) for k, v in values.items()}}
                        for i, c in enumerate(classes) if (labels == i).any()}
    return out


def spread(n_total: int, n: int | None) -> np.ndarray:
    """``n`` indices spread evenly over ``range(n_total)`` (all when n is None or larger). The splits are ordered by
    class, so this keeps every class in proportion."""
    if n is None or n >= n_total:
        return np.arange(n_total)
    return np.unique(np.linspace(0, n_total - 1, n).round().astype(int))
