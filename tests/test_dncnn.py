"""DnCNN (kind ``dncnn``) through the rest of tuneae: the presets' search spaces, one smoke-scale training epoch on
random crops under Rician noise, and native-resolution denoising."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from tuneae.config import ModelConfig, TrainConfig
from tuneae.data import phantom_images
from tuneae.models import UNUSED_BY_KIND, build_model
from tuneae.presets import preset
from tuneae.search.checks import validate
from tuneae.search.space import kind_space
from tuneae.train import fit, seeded_model


@pytest.mark.parametrize("name", ["smoke", "cpu", "gpu"])
def test_presets_search_dncnn_validly(name):
    cfg = preset(name)
    assert name == "smoke" or "dncnn" in cfg.search.models  # smoke keeps its default kinds (test time)
    validate(replace(cfg, search=replace(cfg.search, models=("dncnn",))))  # every combination builds and trains
    space = kind_space(cfg.search, "dncnn")
    assert not set(space) & UNUSED_BY_KIND["dncnn"] and "model.latent_dim" not in space
    depths, widths = space["model.depth"], space["model.base_channels"]
    assert {"smoke": ((3, 5), (8, 16)), "cpu": ((8, 12, 17), (16, 32)), "gpu": ((17, 20), (64,))}[name] \
        == (depths, widths)


def test_one_smoke_epoch_on_crops_under_rician_noise():
    imgs, _, _ = phantom_images(24, 32, seed=0)
    train, val = imgs[:16], imgs[16:]
    cfg = TrainConfig(lr=1e-3, epochs=1, batch_size=8, crop_size=16, noise_protocol="rician", precision="fp32")
    model = seeded_model(ModelConfig(kind="dncnn", image_size=32, depth=3, base_channels=8), cfg)
    before = [p.detach().clone() for p in model.parameters()]
    metrics = fit(model, train, val, cfg)
    assert metrics["epoch"] == 1 and math.isfinite(metrics["val/mse"]) and math.isfinite(metrics["val/psnr"])
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_denoise_command_runs_dncnn_at_native_resolution(tmp_path):
    from tuneae.denoise.model import Denoiser

    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="dncnn", image_size=32, depth=3, base_channels=4)).eval()
    torch.nn.init.normal_(model.head.weight, std=0.01)
    den = Denoiser(model, {"train_config": {"noise_sigma_min": 0.05, "noise_sigma_max": 0.3}}, tmp_path / "model.pt",
                   "checkpoint", torch.device("cpu"))
    assert den.role == "denoiser" and den.resolution("auto") == "native"
    slices = np.random.default_rng(0).random((2, 37, 50), dtype=np.float32)  # no multiple of anything
    out = den.apply(slices, "native")
    with torch.no_grad():
        want = model.estimate(torch.from_numpy(slices[:, None]))[:, 0].numpy()
    np.testing.assert_allclose(out, want, atol=1e-6)  # no padding: the model sees the slice itself


def test_report_sigma_loop_runs_dncnn_and_a_bias_corrected_classic_under_rician_noise(monkeypatch):
    from tuneae.classical import METHODS
    from tuneae.data import to_float
    from tuneae.report import denoising
    from tuneae.report.denoising import run_sigma, selection

    monkeypatch.setattr(denoising, "METHODS", {"tv_chambolle": METHODS["tv_chambolle"]})  # the fast one (CI time)
    imgs, _, _ = phantom_images(8, 32, seed=1)
    clean, val = to_float(imgs[:3]), to_float(imgs[3:])  # (N, 1, 32, 32) in [0, 1]
    model = build_model(ModelConfig(kind="dncnn", image_size=32, depth=3, base_channels=4)).eval()
    r = run_sigma({"dncnn": (model, {})}, clean, val, 0.2, "rician", seed=0)
    assert set(r.test) == {"noisy", "dncnn", "tv_chambolle"} and r.tuned["tv_chambolle"].protocol == "rician"
    assert r.tuned["tv_chambolle"].interior
    assert r.test["tv_chambolle"]["psnr"].mean() > r.test["noisy"]["psnr"].mean() + 3  # corrected for the bias
    assert selection(r, ["dncnn"])["best_learned"] == "dncnn"
