"""Reconstruction losses: the torch SSIM against scikit-image's, the L1 + SSIM mix, errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from skimage.metrics import structural_similarity

from tuneae.losses import SSIM_ALPHA, gaussian_window, reconstruction_loss, ssim


def _pair(seed: int, size: int = 48, sigma: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """A smooth synthetic image in [0, 1] and a noisy, blurred copy (float64, (size, size))."""
    rng = np.random.default_rng(seed)
    clean = gaussian_filter(rng.random((size, size)), 2.0)
    clean = (clean - clean.min()) / (clean.max() - clean.min())
    other = np.clip(gaussian_filter(clean, 0.7) + sigma * rng.standard_normal((size, size)), 0, 1)
    return clean, other


@pytest.mark.parametrize("seed, sigma", [(0, 0.1), (1, 0.3), (2, 0.02)])
def test_torch_ssim_matches_skimage(seed, sigma):
    a, b = _pair(seed, sigma=sigma)
    ref = structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)
    ours = ssim(torch.from_numpy(a).float()[None, None], torch.from_numpy(b).float()[None, None])
    assert ours.shape == (1,)
    assert abs(ours.item() - ref) < 1e-3, (ours.item(), ref)


def test_ssim_window_is_scipys_gaussian():
    impulse = np.zeros(21)
    impulse[10] = 1
    taps = gaussian_filter(impulse, 1.5, truncate=3.5)[5:16]
    assert np.allclose(gaussian_window().numpy(), taps, atol=1e-7)


def test_ssim_per_image_identity_and_gradient():
    a, b = _pair(3)
    x = torch.from_numpy(np.stack([a, b])).float()[:, None].requires_grad_(True)  # (2, 1, 48, 48)
    y = torch.from_numpy(np.stack([a, a])).float()[:, None]
    s = ssim(x, y)
    assert s.shape == (2,) and torch.isclose(s[0], torch.tensor(1.0)) and s[1] < 0.95
    s.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad[1].abs().sum() > 0


def test_ssim_stays_float32_under_bf16_autocast():
    a, b = _pair(4)
    x, y = (torch.from_numpy(v).float()[None, None] for v in (a, b))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        s = ssim(x, y)
    assert s.dtype == torch.float32 and torch.isclose(s, ssim(x, y))


def test_l1_ssim_is_zhao_mix():
    a, b = _pair(5)
    x, y = (torch.from_numpy(v).float()[None, None] for v in (a, b))
    mix = reconstruction_loss("l1_ssim", x, y)
    expected = SSIM_ALPHA * (1 - ssim(x, y)) + (1 - SSIM_ALPHA) * (x - y).abs().mean()
    assert torch.isclose(mix, expected.squeeze())
    assert reconstruction_loss("l1_ssim", y, y).abs() < 1e-6
    assert torch.isclose(reconstruction_loss("l1", x, y), (x - y).abs().mean())
    assert torch.isclose(reconstruction_loss("mse", x, y), (x - y).pow(2).mean())


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="recon_loss='huber'"):
        reconstruction_loss("huber", torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16))
    with pytest.raises(ValueError, match="at least 11 px"):
        ssim(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="one shape"):
        ssim(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 15))


def test_torch_ssim_matches_the_evaluation_metric():
    """The training SSIM agrees with tuneae.metrics.ssim (the report's Wang SSIM) image by image."""
    from tuneae.metrics import ssim as eval_ssim

    pairs = [_pair(s, sigma=0.05 * (s + 1)) for s in range(4)]
    a = np.stack([p[0] for p in pairs])  # (4, 48, 48)
    b = np.stack([p[1] for p in pairs])
    ref = eval_ssim(b, a)  # (4,)
    ours = ssim(torch.from_numpy(b).float()[:, None], torch.from_numpy(a).float()[:, None]).numpy()
    assert np.abs(ours - ref).max() < 1e-3
