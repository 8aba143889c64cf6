"""Reconstruction losses of the searched ``model.recon_loss``: MSE, L1, and L1 + SSIM (Zhao et al. 2017).

SSIM here is the differentiable torch version used for TRAINING. It follows Wang et al. 2004 ("Image Quality
Assessment: From Error Visibility to Structural Similarity", IEEE TIP 13(4)) with the paper's 11 x 11 Gaussian window
(sigma 1.5), K1 = 0.01, K2 = 0.03 and population (not sample) covariances, and averages the SSIM map over the
positions where the whole window fits: exactly what scikit-image's ``structural_similarity(gaussian_weights=True,
sigma=1.5, use_sample_covariance=False, data_range=1)`` computes (it filters with reflection and then crops the
(win - 1) / 2 border). The EVALUATION metric (numpy / scikit-image, with bootstrap intervals) lives in
``tuneae.metrics``; tests/test_losses.py checks that the two agree.

Whatever the training loss, trials are SELECTED on one fixed validation metric (``val/mse``, see the search), so
trials with different losses stay comparable.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

RECON_LOSSES = ("mse", "l1", "l1_ssim")
"""Choices of ``ModelConfig.recon_loss``."""

SSIM_ALPHA = 0.84
"""Weight of (1 - SSIM) in ``l1_ssim``; L1 gets 1 - alpha (Zhao et al. 2017, section 3.3)."""

SSIM_SIGMA = 1.5
"""Standard deviation of the Gaussian SSIM window in pixels (Wang et al. 2004, section III-C)."""

SSIM_WINDOW = 11
"""Side of the SSIM window in pixels: 2 * int(3.5 * sigma + 0.5) + 1, scikit-image's truncation at 3.5 sigma."""

SSIM_K1, SSIM_K2 = 0.01, 0.03
"""Stabilising constants: C1 = (K1 * L)^2, C2 = (K2 * L)^2 with L the data range (Wang et al. 2004, eq. 7, 8)."""


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """The normalised 1D Gaussian window, the same taps as ``scipy.ndimage.gaussian_filter1d``.

    Args:
        size: odd number of taps (pixels).
        sigma: standard deviation in pixels.
    Returns:
        (size,) float32, summing to 1.
    """
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return (g / g.sum()).float()


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Mean structural similarity per image (Wang et al. 2004), differentiable, in float32 whatever the autocast.

    Args:
        x, y: (B, C, H, W) images on the same scale (e.g. [0, 1]), H and W >= ``SSIM_WINDOW`` (11).
        data_range: L, the dynamic range of the pixel values (1 for [0, 1]).
    Returns:
        (B,) SSIM in [-1, 1], the SSIM map averaged over channels and all window positions that fit the image.
    Raises:
        ValueError: shapes differ, or an image side is smaller than the window.
    """
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"ssim needs two (B, C, H, W) tensors of one shape, got {tuple(x.shape)}, {tuple(y.shape)}")
    if min(x.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"ssim needs images of at least {SSIM_WINDOW} px a side, got {tuple(x.shape[-2:])}")
    # Variances are differences of squares: bf16 would cancel them to noise, so this runs in float32.
    with torch.autocast(device_type=x.device.type, enabled=False):
        x, y = x.float(), y.float()
        c = x.shape[1]
        g = gaussian_window().to(x.device)
        gh = g.view(1, 1, 1, -1).repeat(c, 1, 1, 1)  # (C, 1, 1, 11) horizontal pass
        gv = g.view(1, 1, -1, 1).repeat(c, 1, 1, 1)  # (C, 1, 11, 1) vertical pass

        def blur(t: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H - 10, W - 10), 'valid' positions
            return F.conv2d(F.conv2d(t, gh, groups=c), gv, groups=c)

        mx, my = blur(x), blur(y)
        vx = blur(x * x) - mx * mx
        vy = blur(y * y) - my * my
        cxy = blur(x * y) - mx * my
        c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
        s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
        return s.flatten(1).mean(1)


def reconstruction_loss(name: str, recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """One of ``RECON_LOSSES`` between a reconstruction and its target, averaged over the batch.

    - ``mse``: mean squared error per pixel (the seed project's loss).
    - ``l1``: mean absolute error per pixel.
    - ``l1_ssim``: alpha * (1 - SSIM) + (1 - alpha) * L1 with alpha = 0.84 (Zhao et al. 2017, "Loss Functions for
      Image Restoration with Neural Networks", IEEE TCI 3(1), eq. 13). Zhao et al. use multi-scale SSIM and a
      Gaussian-weighted L1; this uses single-scale SSIM (5 scales need >= 176 px images, crops are smaller) and the
      plain mean L1.

    Args:
        name: the loss name.
        recon: (B, C, H, W) reconstruction on the [0, 1] scale (may leave [0, 1], e.g. a residual denoiser's estimate).
        target: (B, C, H, W) clean image in [0, 1].
    Returns:
        Scalar float32 loss, computed in float32 whatever the input dtype (dimensionless; per pixel on the [0, 1]
        scale for ``mse`` and ``l1``).
    Raises:
        ValueError: an unknown name, or images smaller than the SSIM window for ``l1_ssim``.
    """
    recon, target = recon.float(), target.float()  # fp32 loss under bf16 autocast
    if name == "mse":
        return F.mse_loss(recon, target)
    if name == "l1":
        return F.l1_loss(recon, target)
    if name == "l1_ssim":
        return SSIM_ALPHA * (1.0 - ssim(recon, target).mean()) + (1.0 - SSIM_ALPHA) * F.l1_loss(recon, target)
    raise ValueError(f"model.recon_loss={name!r} is unknown; choose one of {list(RECON_LOSSES)}")

