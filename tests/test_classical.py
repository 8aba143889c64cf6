"""tuneae.classical: the classical denoisers, tuning on validation images with interior grids, the clipped-noise
debiasing."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from tuneae.classical import (
    METHODS,
    GridEdgeError,
    clipped_mean,
    debias_clipped,
    debias_rician,
    denoise,
    geometric_grid,
    tune,
)
from tuneae.metrics import psnr
from tuneae.noise import AWGN, CLIPPED8, RICIAN, add_noise, rician_mean


def _images(n: int = 3, size: int = 32, seed: int = 0) -> np.ndarray:
    """(n, size, size) piecewise-constant 'heads' in [0, 1]: a black background, a disc, a brighter blob."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    out = []
    for _ in range(n):
        (cx, cy), r = rng.uniform(0.4, 0.6, 2), rng.uniform(0.3, 0.4)
        im = np.where((xx - cx) ** 2 + (yy - cy) ** 2 < r**2, 0.5, 0.0)
        im[(xx - cx - 0.1) ** 2 + (yy - cy) ** 2 < (r / 3) ** 2] = 0.9
        out.append(im)
    return np.stack(out)


def _noisy(clean: np.ndarray, sigma: float, protocol: str = AWGN, seed: int = 1) -> np.ndarray:
    x = torch.from_numpy(clean)[:, None]
    return add_noise(x, sigma, protocol, torch.Generator().manual_seed(seed))[:, 0].numpy()


@pytest.mark.parametrize("protocol", [AWGN, CLIPPED8, RICIAN])
@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_denoises(name, protocol):
    clean = _images(2, 48)
    noisy = _noisy(clean, 0.1, protocol)
    out = denoise(name, noisy, 0.1, 1.0, protocol)
    assert out.shape == clean.shape and out.min() >= 0 and out.max() <= 1
    assert psnr(out, clean).mean() > psnr(np.clip(noisy, 0, 1), clean).mean() + 2
    _, grid, parameter = METHODS[name].under(protocol)
    assert len(grid) >= 3 and list(grid) == sorted(grid) and parameter and METHODS[name].tune_images >= 1


def test_tune_widens_until_the_choice_is_interior():
    clean = _images(3)
    noisy = _noisy(clean, 0.1)
    start = geometric_grid(0.05, 2**0.25, 3)  # far below TV's best weight / sigma
    r = tune("tv_chambolle", clean, noisy, 0.1, grid=start, max_widenings=30)
    factors = sorted(r.scores)
    assert r.interior and r.widenings >= 1 and r.factor > max(start)
    assert factors[0] < r.factor < factors[-1]
    assert r.scores[r.factor] == max(r.scores.values())
    assert r.as_dict()["interior"] and r.images == 3


def test_tune_fails_when_the_choice_stays_at_a_grid_edge():
    clean = _images(3)
    noisy = _noisy(clean, 0.1)
    edge = (1e-4, 1.2e-4, 1.44e-4)  # TV weight ~0: the best is always the largest factor tried
    with pytest.raises(GridEdgeError, match=r"tv_chambolle at sigma 0.1 \(awgn\).*high edge.*after 2 widenings"):
        tune("tv_chambolle", clean, noisy, 0.1, grid=edge, max_widenings=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = tune("tv_chambolle", clean, noisy, 0.1, grid=edge, max_widenings=2, strict=False)
    assert not r.interior and r.factor == max(r.scores) and len(r.scores) == 5
    assert any("high edge" in str(w.message) for w in caught)


def test_clipped_mean_and_debias():
    assert clipped_mean(0.0, 0.2) == pytest.approx(0.2 / math.sqrt(2 * math.pi), rel=1e-3)
    rng = np.random.default_rng(0)
    for x in (0.0, 0.05, 0.5, 0.97):  # closed form against Monte Carlo
        mc = np.clip(x + 0.2 * rng.standard_normal(200_000), 0, 1).mean()
        assert clipped_mean(x, 0.2) == pytest.approx(mc, abs=2e-3)
    xs = np.linspace(0, 1, 11)
    np.testing.assert_allclose(debias_clipped(clipped_mean(xs, 0.1), 0.1), xs, atol=1e-4)
    assert debias_clipped(np.array([-0.5, 1.5]), 0.1).tolist() == [0.0, 1.0]


def test_clipped_protocol_output_is_debiased():
    clean = _images(2, 48)
    noisy = _noisy(clean, 0.2, CLIPPED8)
    background = clean == 0
    aware = denoise("tv_chambolle", noisy, 0.2, 1.0, CLIPPED8)
    naive = denoise("tv_chambolle", noisy, 0.2, 1.0, AWGN)  # the same clipped data, no debiasing
    assert naive[background].mean() > 0.05  # the clipping bias, about 0.2 / sqrt(2 pi) = 0.08
    assert aware[background].mean() < 0.5 * naive[background].mean()
    assert psnr(aware, clean).mean() > psnr(naive, clean).mean()


def test_debias_rician_inverts_the_rician_mean():
    xs = np.linspace(0, 1, 11)
    np.testing.assert_allclose(debias_rician(rician_mean(xs, 0.1), 0.1), xs, atol=1e-4)
    assert debias_rician(np.array([0.1 * math.sqrt(math.pi / 2) - 0.01, 1.5]), 0.1).tolist() == [0.0, 1.0]
    big = np.array([0.6, 0.9])  # high SNR: Gudbjartsson & Patz's sqrt(m^2 - sigma^2)
    np.testing.assert_allclose(debias_rician(big, 0.05), np.sqrt(big**2 - 0.05**2), atol=1e-4)


def test_rician_protocol_output_is_bias_corrected():
    clean = _images(2, 48)
    noisy = _noisy(clean, 0.2, RICIAN)
    assert noisy.min() >= 0
    background = clean == 0
    aware = denoise("tv_chambolle", noisy, 0.2, 1.0, RICIAN)
    naive = denoise("tv_chambolle", noisy, 0.2, 1.0, AWGN)  # the same Rician data, no correction
    assert naive[background].mean() > 0.15  # the Rayleigh mean 0.2 sqrt(pi / 2) = 0.25, smoothed
    assert aware[background].mean() < 0.5 * naive[background].mean()
    assert psnr(aware, clean).mean() > psnr(naive, clean).mean()


def test_workers_give_the_same_output():
    noisy = _noisy(_images(3), 0.1)
    np.testing.assert_allclose(denoise("nl_means", noisy, 0.1, 0.8, workers=2), denoise("nl_means", noisy, 0.1, 0.8))


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"name": "median"}, "unknown classical denoiser"), ({"factor": 0.0}, "factor"), ({"sigma": 0.0}, "sigma"),
    ({"protocol": "poisson"}, "choose one of"), ({"noisy": np.zeros((8, 8))}, r"\(N, H, W\)"),
])
def test_denoise_rejects_bad_input(kwargs, match):
    args = {"name": "tv_chambolle", "noisy": np.zeros((1, 16, 16)), "sigma": 0.1, "factor": 1.0, **kwargs}
    with pytest.raises(ValueError, match=match):
        denoise(**args)


def test_tune_rejects_bad_grids_and_shapes():
    clean = _images(2, 16)
    with pytest.raises(ValueError, match="strictly increasing"):
        tune("tv_chambolle", clean, clean, 0.1, grid=(1.0, 0.5, 2.0))
    with pytest.raises(ValueError, match="same"):
        tune("tv_chambolle", clean, clean[:1], 0.1)
