"""tuneae.noise: the AWGN protocol (not clipped), the clipped 8-bit variant, Rician noise and the evaluation seeding
rule."""
from __future__ import annotations

import math

import pytest
import torch

from tuneae.config import TrainConfig
from tuneae.noise import (
    AWGN,
    CLIPPED8,
    LEVELS_8BIT,
    PRIMARY,
    PROTOCOLS,
    RICIAN,
    add_noise,
    check_protocol,
    eval_noisy,
    eval_seed,
    rician_mean,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_awgn_is_zero_mean_unclipped_with_sd_sigma():
    x = torch.full((4, 1, 64, 64), 0.0)  # black: where clipping would bias the noise
    y = add_noise(x, 0.2, AWGN, _gen())
    n = y.numel()
    assert PRIMARY == AWGN and PROTOCOLS[0] == AWGN
    assert y.min() < 0  # not clipped
    assert abs(y.mean().item()) < 4 * 0.2 / math.sqrt(n)
    assert y.std().item() == pytest.approx(0.2, rel=0.02)


def test_clipped8_is_the_same_draw_clipped_and_quantized():
    x = torch.rand((3, 1, 32, 32), generator=_gen(5))
    a, c = add_noise(x, 0.1, AWGN, _gen(1)), add_noise(x, 0.1, CLIPPED8, _gen(1))
    assert c.min() >= 0 and c.max() <= 1
    assert torch.equal(c * LEVELS_8BIT, torch.round(c * LEVELS_8BIT))  # on the 1/255 grid
    torch.testing.assert_close(c, torch.round(a.clamp(0, 1) * LEVELS_8BIT) / LEVELS_8BIT)
    black = add_noise(torch.zeros(2, 1, 128, 128), 0.2, CLIPPED8, _gen(2))
    assert black.mean().item() == pytest.approx(0.2 / math.sqrt(2 * math.pi), rel=0.03)  # the clipping bias


def test_rician_statistics():
    sigma = 0.1
    black = add_noise(torch.zeros(4, 1, 64, 64, dtype=torch.float64), sigma, RICIAN, _gen(3))
    assert black.min() >= 0 and RICIAN in PROTOCOLS
    assert black.mean().item() == pytest.approx(sigma * math.sqrt(math.pi / 2), rel=0.02)  # Rayleigh mean
    assert (black**2).mean().item() == pytest.approx(2 * sigma**2, rel=0.03)  # E[y^2] = x^2 + 2 sigma^2
    bright = add_noise(torch.full((4, 1, 64, 64), 0.8, dtype=torch.float64), sigma, RICIAN, _gen(4))
    assert bright.mean().item() == pytest.approx(math.sqrt(0.8**2 + sigma**2), abs=2e-3)  # close to x
    assert bright.std().item() == pytest.approx(sigma, rel=0.03)  # nearly Gaussian at high SNR
    assert rician_mean(0.0, sigma) == pytest.approx(sigma * math.sqrt(math.pi / 2))
    assert rician_mean(0.8, sigma) == pytest.approx(bright.mean().item(), abs=2e-3)
    x = torch.rand((2, 1, 16, 16), generator=_gen(5))  # the awgn draw is the real channel
    a, r = add_noise(x, 0.1, AWGN, _gen(1)), add_noise(x, 0.1, RICIAN, _gen(1))
    assert (r >= a.abs() - 1e-7).all() and torch.equal(add_noise(x, 0.0, RICIAN), x)


def test_sigma_per_image_and_zero():
    x = torch.full((3, 1, 16, 16), 0.5)
    y = add_noise(x, torch.tensor([0.0, 0.1, 0.3]), AWGN, _gen())
    assert torch.equal(y[0], x[0])
    assert y[1].std() < y[2].std()
    assert torch.equal(add_noise(x, 0.0), x)


@pytest.mark.parametrize(("sigma", "protocol", "match"), [
    (-0.1, AWGN, "finite and >= 0"), (float("nan"), AWGN, "finite"), (torch.tensor([0.1, 0.2]), AWGN, "shape"),
    (0.1, "gauss", "choose one of awgn, clipped8"),
])
def test_add_noise_rejects_bad_input(sigma, protocol, match):
    with pytest.raises(ValueError, match=match):
        add_noise(torch.zeros(3, 1, 8, 8), sigma, protocol)


def test_add_noise_rejects_integer_images():
    with pytest.raises(ValueError, match="float"):
        add_noise(torch.zeros(1, 1, 8, 8, dtype=torch.uint8), 0.1)


def test_eval_seed_is_one_rule_per_seed_split_sigma():
    s = eval_seed(0, 0.1, "test")
    assert s == eval_seed(0, 0.1, "test") and 0 <= s < 2**32
    others = {eval_seed(0, 0.1, "val"), eval_seed(1, 0.1, "test"), eval_seed(0, 0.2, "test"),
              eval_seed(0, 0.1001, "test")}
    assert s not in others and len(others) == 4
    with pytest.raises(ValueError, match="split"):
        eval_seed(0, 0.1, "train")
    with pytest.raises(ValueError, match="sigma"):
        eval_seed(0, 0.0)
    with pytest.raises(ValueError, match="seed"):
        eval_seed(-1, 0.1)


def test_eval_noisy_reproducible_and_shared_by_protocols():
    clean = torch.rand((2, 1, 16, 16), generator=_gen(3))
    a = eval_noisy(clean, 0.1, AWGN, seed=0, split="val")
    assert torch.equal(a, eval_noisy(clean, 0.1, AWGN, seed=0, split="val"))
    assert not torch.equal(a, eval_noisy(clean, 0.1, AWGN, seed=0, split="test"))
    c = eval_noisy(clean, 0.1, CLIPPED8, seed=0, split="val")
    torch.testing.assert_close(c, torch.round(a.clamp(0, 1) * LEVELS_8BIT) / LEVELS_8BIT)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_eval_noisy_is_the_same_on_the_gpu():
    clean = torch.rand((2, 1, 16, 16), generator=_gen(4))
    on_gpu = eval_noisy(clean.cuda(), 0.1, AWGN, seed=0)
    assert on_gpu.device.type == "cuda"
    torch.testing.assert_close(on_gpu.cpu(), eval_noisy(clean, 0.1, AWGN, seed=0))
    cuda_gen = torch.Generator(device="cuda").manual_seed(0)
    assert add_noise(clean, 0.1, AWGN, cuda_gen).device.type == "cpu"  # a CUDA generator for CPU images


def test_learned_denoisers_train_on_the_primary_protocol_by_default():
    assert TrainConfig().noise_protocol == PRIMARY
    assert check_protocol(TrainConfig().noise_protocol) == AWGN
