"""Denoising on the test images: seeded noise, every learned and classical denoiser's output, per-class gains."""
from __future__ import annotations

import numpy as np
import torch

from tuneae.data import add_gaussian_noise
from tuneae.report.classical import CLASSICAL_GRIDS, classical_denoise, tune_classical
from tuneae.report.metrics import predict


def noise_seed(seed: int, sigma: float, split: str = "test") -> int:
    """Seed of the noise added to the ``test`` (or ``val``, for tuning) images at ``sigma``."""
    return seed * 100_000 + round(sigma * 1000) * 10 + {"test": 0, "val": 1}[split]


def noisy_copy(clean: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    """``clean`` (N, 1, S, S) in [0, 1] plus N(0, sigma^2) noise clipped to [0, 1], from a seeded CPU generator."""
    return add_gaussian_noise(clean, sigma, generator=torch.Generator().manual_seed(seed))


def denoise_all(models: dict, clean: torch.Tensor, val_clean: torch.Tensor, sigma: float, seed: int,
                bar=None) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """Every denoiser's output on the test images at one noise level.

    Args:
        models: kind -> (model, payload).
        clean: test images (N, 1, S, S) in [0, 1]; val_clean: validation images (K, 1, S, S) for tuning only.
        sigma, seed: noise sd on the [0, 1] scale and the base seed (see :func:`noise_seed`).
    Returns:
        ({"noisy" | kind | classical method: (N, S, S) in [0, 1]}, {method: {"param", "tuning_val_psnr"}}).
    """
    noisy = noisy_copy(clean, sigma, noise_seed(seed, sigma))  # (N, 1, S, S)
    val_noisy = noisy_copy(val_clean, sigma, noise_seed(seed, sigma, "val"))[:, 0].numpy()  # (K, S, S)
    outputs = {"noisy": noisy[:, 0].numpy()}
    tuned = {}
    for kind, (model, _) in models.items():
        outputs[kind] = predict(model, noisy)[:, 0].numpy()
        if bar is not None:
            bar.update()
    for m in CLASSICAL_GRIDS:
        param, scores = tune_classical(m, val_clean[:, 0].numpy(), val_noisy, sigma)
        outputs[m] = np.stack([classical_denoise(m, im, sigma, param) for im in outputs["noisy"]])
        tuned[m] = {"param": param, "tuning_val_psnr": scores}
        if bar is not None:
            bar.update()
    return outputs, tuned


def class_gaps(res: dict, learned: list[str], classical: list[str]) -> dict[str, dict]:
    """Per class: PSNR gain over the noisy input of each method, the best learned and best classical method, and
    the difference of their gains (dB). ``res`` is one sigma's ``{method: summarise(...)}``."""
    by_class = {}
    for c, cm in res["noisy"]["per_class"].items():
        base = cm["psnr"]["mean"]
        gain = {m: res[m]["per_class"][c]["psnr"]["mean"] - base for m in [*learned, *classical]}
        best_l, best_c = max(learned, key=gain.get), max(classical, key=gain.get)
        by_class[c] = {"n": cm["n"], "noisy_psnr": base, "gain": gain, "best_learned": best_l,
                       "best_classical": best_c, "learned_minus_classical": gain[best_l] - gain[best_c]}
    return by_class


def class_mean(by: dict[str, dict], classes: list[str], key: str = "learned_minus_classical") -> float | None:
    """Image-weighted mean of ``by[c][key]`` (dB) over ``classes`` of one sigma's :func:`class_gaps`; None if none."""
    if not classes:
        return None
    return float(np.average([by[c][key] for c in classes], weights=[by[c]["n"] for c in classes]))
