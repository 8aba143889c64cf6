"""tuneae.metrics: PSNR, SSIM as Wang et al. 2004, percentile-bootstrap intervals and the "beats" rule."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from scipy.signal import convolve2d
from skimage.metrics import structural_similarity

from tuneae.metrics import (
    SSIM_SETTINGS,
    Interval,
    beats,
    image_metrics,
    mean_interval,
    paired_difference,
    psnr,
    ssim,
    unpaired_difference,
    verdict,
)


def _pair(size: int = 48, sigma: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random image in [0, 1] and a noisy copy, each (size, size)."""
    rng = np.random.default_rng(seed)
    clean = gaussian_filter(rng.random((size, size)), 2.0)
    clean = (clean - clean.min()) / np.ptp(clean)
    return clean, clean + sigma * rng.standard_normal(clean.shape)


def _wang_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """SSIM written out from Wang et al. 2004 (and their reference MATLAB code ssim_index.m): an 11x11 Gaussian
    window of sd 1.5 normalised to sum 1, 'valid' filtering, K1 = 0.01, K2 = 0.03, L = 1, mean of the map."""
    r = np.arange(-5, 6)
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * 1.5**2))
    w = g / g.sum()  # (11, 11)

    def filt(a):
        return convolve2d(a, w, mode="valid")

    c1, c2 = (0.01 * 1.0) ** 2, (0.03 * 1.0) ** 2
    mx, my = filt(x), filt(y)
    vx, vy, cxy = filt(x * x) - mx**2, filt(y * y) - my**2, filt(x * y) - mx * my
    smap = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(smap.mean())


def test_ssim_is_wangs_and_not_skimages_default():
    clean, noisy = _pair()
    ours = ssim(noisy[None], clean[None])[0]
    assert ours == pytest.approx(_wang_ssim(noisy, clean), abs=1e-9)
    default = structural_similarity(noisy, clean, data_range=1.0)  # 7x7 uniform window, sample covariance
    assert abs(default - ours) > 0.01
    assert SSIM_SETTINGS["gaussian_weights"] and SSIM_SETTINGS["sigma"] == 1.5
    assert ssim(clean[None], clean[None])[0] == pytest.approx(1.0)


def test_ssim_rejects_images_smaller_than_the_window():
    with pytest.raises(ValueError, match="11x11"):
        ssim(np.zeros((1, 8, 8)), np.zeros((1, 8, 8)))


def test_psnr_and_image_metrics():
    clean = np.full((3, 16, 16), 0.5)
    out = clean + np.array([0.1, 0.01, 0.0])[:, None, None]  # MSE 1e-2, 1e-4, 0
    np.testing.assert_allclose(psnr(out, clean), [20.0, 40.0, 100.0], atol=1e-9)
    m = image_metrics(out, clean)
    assert set(m) == {"mse", "psnr", "ssim"} and all(v.shape == (3,) for v in m.values())
    np.testing.assert_allclose(m["mse"], [1e-2, 1e-4, 0.0], atol=1e-12)
    with pytest.raises(ValueError, match="same shape"):
        psnr(out, clean[:2])


def test_bootstrap_interval_of_a_normal_sample_matches_theory():
    rng = np.random.default_rng(1)
    x = rng.normal(3.0, 2.0, 400)
    iv = mean_interval(x)
    half = 1.96 * x.std(ddof=1) / np.sqrt(len(x))
    assert iv.mean == pytest.approx(x.mean())
    assert iv.low < iv.mean < iv.high
    assert iv.low == pytest.approx(x.mean() - half, abs=0.1 * half)
    assert iv.high == pytest.approx(x.mean() + half, abs=0.1 * half)
    assert mean_interval(x) == iv  # seeded: reproducible
    assert mean_interval(x, seed=7) != iv


def test_bootstrap_interval_covers_the_true_mean_about_95_percent():
    rng = np.random.default_rng(2)
    hits = [mean_interval(rng.normal(0.0, 1.0, 60), n_resamples=2000, seed=i) for i in range(200)]
    coverage = np.mean([iv.low <= 0.0 <= iv.high for iv in hits])
    assert 0.88 <= coverage <= 0.995  # percentile intervals under-cover slightly at small n


def test_paired_difference_sign_and_the_beats_rule():
    rng = np.random.default_rng(3)
    hard = rng.normal(25.0, 3.0, 100)  # per-image difficulty shared by both methods
    a = hard + 0.3 + rng.normal(0.0, 0.2, 100)
    b = hard + rng.normal(0.0, 0.2, 100)
    d = paired_difference(a, b)
    assert d.low > 0 and d.mean == pytest.approx(np.mean(a - b)) and beats(d)
    assert verdict(d, "unet", "bm3d") == "unet better"
    rev = paired_difference(b, a)
    assert rev.high < 0 and not beats(rev) and verdict(rev, "bm3d", "unet") == "unet better"
    # unpaired, the two means' intervals overlap: only the paired interval sees the difference
    ia, ib = mean_interval(a), mean_interval(b)
    assert ia.low < ib.high
    same = paired_difference(a, a)
    assert (same.low, same.high) == (0.0, 0.0) and not beats(same) and verdict(same) == "no clear difference"
    e = rng.normal(0.0, 1.0, 100)
    zero_mean = paired_difference(b + e - e.mean(), b)  # no systematic difference, much per-image scatter
    assert zero_mean.low < 0 < zero_mean.high and not beats(zero_mean)
    assert verdict(zero_mean) == "no clear difference"


def test_interval_errors_and_dict():
    with pytest.raises(ValueError, match="at least 2"):
        mean_interval(np.array([1.0]))
    with pytest.raises(ValueError, match="not finite"):
        mean_interval(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="same images"):
        paired_difference(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="confidence"):
        mean_interval(np.arange(5.0), confidence=95)
    d = Interval(1.0, 0.5, 1.5, 10).as_dict()
    assert d == {"mean": 1.0, "low": 0.5, "high": 1.5, "n": 10, "confidence": 0.95, "n_resamples": 10_000}


def test_unpaired_difference_of_two_normal_groups_matches_theory():
    rng = np.random.default_rng(4)
    a, b = rng.normal(1.0, 1.0, 300), rng.normal(0.5, 2.0, 200)
    d = unpaired_difference(a, b)
    half = 1.96 * np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    assert d.mean == pytest.approx(a.mean() - b.mean()) and d.n == 500
    assert d.low == pytest.approx(d.mean - half, abs=0.1 * half)
    assert d.high == pytest.approx(d.mean + half, abs=0.1 * half)
    assert beats(d)
    flat = unpaired_difference(np.ones(3), np.zeros(4))
    assert (flat.low, flat.high) == (1.0, 1.0)
