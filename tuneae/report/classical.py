"""Classical denoisers from scikit-image, each with a parameter tuned on validation images, never on test images."""
from __future__ import annotations

from typing import Any

import numpy as np
from skimage.restoration import denoise_nl_means, denoise_tv_chambolle, denoise_wavelet

from tuneae.report.errors import ReportError
from tuneae.report.metrics import image_metrics

CLASSICAL_GRIDS: dict[str, tuple] = {
    "nl_means": (0.4, 0.6, 0.8, 1.0),  # h = factor * sigma
    "tv_chambolle": (0.25, 0.5, 0.75, 1.0, 1.5),  # weight = factor * sigma
    "wavelet": (("BayesShrink", 1.0), ("VisuShrink", 1.0), ("VisuShrink", 0.5), ("VisuShrink", 0.25)),  # sigma x
}
"""Parameter grid of each classical denoiser, searched per sigma on the validation subset (see classical_denoise)."""


def classical_denoise(method: str, image: np.ndarray, sigma: float, param: Any) -> np.ndarray:
    """Denoise one image with a classical method from scikit-image.

    Args:
        method: ``nl_means``: non-local means (Buades et al. 2005, "A non-local algorithm for image denoising",
            CVPR), h = param * sigma, patch_size 5, patch_distance 6, fast_mode; ``tv_chambolle``: total-variation
            denoising (Chambolle 2004, "An algorithm for total variation minimization and applications", JMIV 20),
            weight = param * sigma; ``wavelet``: soft wavelet shrinkage, param = (rule, scale) with rule BayesShrink
            (Chang et al. 2000, "Adaptive wavelet thresholding for image denoising and compression", IEEE TIP 9(9))
            or VisuShrink (Donoho & Johnstone 1994), noise sigma given as scale * sigma.
        image: (H, W) float in [0, 1], noisy.
        sigma: noise standard deviation on the [0, 1] scale.
        param: one entry of ``CLASSICAL_GRIDS[method]``.
    Returns:
        (H, W) float64 in [0, 1].
    Raises:
        ReportError: an unknown method.
    """
    if method == "nl_means":
        out = denoise_nl_means(image, h=param * sigma, sigma=sigma, patch_size=5, patch_distance=6, fast_mode=True)
    elif method == "tv_chambolle":
        out = denoise_tv_chambolle(image, weight=param * sigma)
    elif method == "wavelet":
        rule, scale = param
        out = denoise_wavelet(image, sigma=scale * sigma, method=rule, mode="soft", rescale_sigma=True)
    else:
        raise ReportError(f"unknown classical denoiser {method!r}; choose one of {sorted(CLASSICAL_GRIDS)}")
    return np.clip(out, 0.0, 1.0)


def tune_classical(method: str, clean: np.ndarray, noisy: np.ndarray, sigma: float) -> tuple[Any, dict[str, float]]:
    """Pick the parameter of ``CLASSICAL_GRIDS[method]`` with the highest mean PSNR on (validation) images.

    Args:
        clean, noisy: (N, H, W) float in [0, 1]; never test images.
    Returns:
        (best parameter, {str(parameter): mean PSNR in dB}).
    """
    scores = {}
    for param in CLASSICAL_GRIDS[method]:
        out = np.stack([classical_denoise(method, im, sigma, param) for im in noisy])
        scores[param] = float(image_metrics(out, clean)["psnr"].mean())
    best = max(scores, key=scores.get)
    return best, {str(k): round(v, 3) for k, v in scores.items()}
