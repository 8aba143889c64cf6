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


# ------------------------------------------------------------------------------ cluster bootstrap (``groups``)
def test_groups_none_gives_exactly_the_numbers_of_before():
    """Recorded from the image bootstrap before ``groups`` existed (scipy.stats.bootstrap, seed 0, B = 2000)."""
    rng = np.random.default_rng(7)
    a = rng.normal(30, 2, 50)
    b = a - rng.normal(0.5, 1, 50)
    c = rng.normal(29, 2, 40)
    want = {"mean": (29.414691420707673, 28.922735694671676, 29.88595414303158),
            "paired": (0.4467943017121079, 0.20488487577701428, 0.6791479916937052),
            "unpaired": (0.7243117441523594, -0.03805153985655685, 1.4365656294759348)}
    got = {"mean": mean_interval(a, n_resamples=2000), "paired": paired_difference(a, b, n_resamples=2000),
           "unpaired": unpaired_difference(a, c, n_resamples=2000, groups=None)}
    for k, iv in got.items():
        assert (iv.mean, iv.low, iv.high) == pytest.approx(want[k], rel=1e-12, abs=1e-12), k
        assert iv.groups is None and "groups" not in iv.as_dict()


def test_singleton_groups_match_the_image_bootstrap():
    rng = np.random.default_rng(8)
    v = rng.normal(30.0, 2.0, 300)
    iid, one_each = mean_interval(v), mean_interval(v, groups=np.arange(300)[::-1])
    assert one_each.groups == 300 and one_each.as_dict()["groups"] == 300
    half = (iid.high - iid.low) / 2
    assert one_each.low == pytest.approx(iid.low, abs=0.05 * half)
    assert one_each.high == pytest.approx(iid.high, abs=0.05 * half)
    assert mean_interval(v, groups=np.arange(300)) == mean_interval(v, groups=np.arange(300))  # seeded
    w = v + rng.normal(0.0, 0.5, 300)
    pd_iid, pd_one = paired_difference(v, w), paired_difference(v, w, groups=[f"s{i}" for i in range(300)])
    assert pd_one.mean == pd_iid.mean
    assert (pd_one.high - pd_one.low) == pytest.approx(pd_iid.high - pd_iid.low, rel=0.05)


def _clustered(n_groups: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n_groups`` groups of ``size`` identical values (one normal draw per group): (N,) values, (N,) group ids."""
    rng = np.random.default_rng(seed)
    return np.repeat(rng.normal(0.0, 1.0, n_groups), size), np.repeat(np.arange(n_groups), size)


def test_correlated_clusters_widen_the_interval():
    v, g = _clustered(20, 10, seed=9)  # 200 values, but only 20 independent ones
    iid, clu = mean_interval(v), mean_interval(v, groups=g)
    assert clu.mean == iid.mean and clu.groups == 20 and clu.n == 200
    assert (clu.high - clu.low) > 2.5 * (iid.high - iid.low)  # sqrt(10) ~ 3.2 wider in theory
    per_group = v[::10]  # the cluster interval is that of the 20 group means
    ref = mean_interval(per_group)
    assert (clu.high - clu.low) == pytest.approx(ref.high - ref.low, rel=0.1)
    # paired: a shared per-group offset in the difference a - b
    d, _ = _clustered(20, 10, seed=10)
    b = np.random.default_rng(11).normal(25.0, 3.0, 200)
    p_iid, p_clu = paired_difference(b + d + 0.3, b), paired_difference(b + d + 0.3, b, groups=g)
    assert (p_clu.high - p_clu.low) > 2.5 * (p_iid.high - p_iid.low)
    # unpaired: each sample's groups resampled on their own
    w, h = _clustered(15, 8, seed=12)
    u_iid, u_clu = unpaired_difference(v, w), unpaired_difference(v, w, groups=(g, h + 100))
    assert u_clu.mean == pytest.approx(v.mean() - w.mean()) and u_clu.groups == 35 and u_clu.n == 320
    assert (u_clu.high - u_clu.low) > 2.0 * (u_iid.high - u_iid.low)


def test_cluster_bootstrap_is_fast():
    import time

    rng = np.random.default_rng(13)
    v, g = rng.normal(30.0, 2.0, 300), rng.integers(0, 150, 300)
    start = time.perf_counter()
    mean_interval(v, groups=g)
    unpaired_difference(v, v[:100], groups=(g, g[:100]))
    assert time.perf_counter() - start < 1.0


def test_cluster_bootstrap_rejects_bad_groups():
    v = np.arange(6.0)
    with pytest.raises(ValueError, match=r"groups has shape \(5,\); need one group id per value, shape \(6,\)"):
        mean_interval(v, groups=np.arange(5))
    with pytest.raises(ValueError, match="groups has shape"):
        paired_difference(v, v + 1, groups=np.zeros((6, 1)))
    with pytest.raises(ValueError, match="groups holds 1 ids that are not finite"):
        mean_interval(v, groups=np.array([0, 0, 1, 1, 2, np.nan]))
    with pytest.raises(ValueError, match="single group"):
        mean_interval(v, groups=np.zeros(6, int))
    with pytest.raises(ValueError, match="not finite"):  # values checked as before
        mean_interval(np.array([1.0, np.nan, 2.0]), groups=np.arange(3))
    with pytest.raises(ValueError, match=r"unpaired_difference \(b\): groups has shape"):
        unpaired_difference(v, v[:4], groups=(np.arange(6), np.arange(3)))
    with pytest.raises(ValueError, match="groups must be a pair"):
        unpaired_difference(v, v[:4], groups=(np.arange(6),))
    flat = mean_interval(np.ones(4), groups=[0, 0, 1, 1])  # all equal: degenerate, as without groups
    assert (flat.low, flat.high, flat.groups) == (1.0, 1.0, 2)
