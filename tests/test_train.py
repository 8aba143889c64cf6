"""The pure PyTorch loop: it learns, PSNR is right, divergence is caught, checkpoints round-trip atomically."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tuneae.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from tuneae.config import DataConfig, ModelConfig, TrainConfig
from tuneae.data import phantom_images
from tuneae.models import build_model
from tuneae.train import LossModule, eval_batch_size, evaluate, fit, make_loader, psnr_per_image, train_one_epoch


@pytest.fixture(scope="module")
def images():
    imgs, _, _ = phantom_images(48, 32, seed=0)
    return imgs[:40], imgs[40:]


def test_psnr_matches_definition():
    a = torch.zeros(2, 1, 4, 4)
    b = torch.full((2, 1, 4, 4), 0.1)
    assert torch.allclose(psnr_per_image(a, b), torch.full((2,), 20.0))  # 10 log10(1 / 0.01)


def test_fit_lowers_validation_loss(images):
    train, val = images
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="ae", image_size=32, latent_dim=32, base_channels=8))
    cfg = TrainConfig(lr=3e-3, epochs=1, batch_size=8)
    before = evaluate(model, make_loader(val, 8, shuffle=False), torch.device("cpu"), cfg)
    after = fit(model, train, val, TrainConfig(lr=3e-3, epochs=6, batch_size=8))
    assert after["val/loss"] < before["val/loss"]
    assert after["epoch"] == 6 and math.isfinite(after["val/psnr"])
    assert after["val/loss"] == pytest.approx(after["val/mse"], rel=1e-4)  # the AE's objective is MSE per pixel
    # mean of per-image PSNR >= PSNR of the mean MSE (Jensen: log is concave)
    assert after["val/psnr"] >= 10 * math.log10(1 / after["val/mse"]) - 1e-4


def test_divergence_raises(images):
    train, _ = images
    model = build_model(ModelConfig(kind="ae", image_size=32, latent_dim=8, base_channels=4))
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    opt = torch.optim.Adam(model.parameters())
    with pytest.raises(FloatingPointError, match="diverged"):
        train_one_epoch(LossModule(model), "ae", make_loader(train, 8, True), opt, torch.device("cpu"),
                        TrainConfig(), torch.Generator())


def test_checkpoint_roundtrip_reproduces_metrics(tmp_path, images):
    train, val = images
    model = build_model(ModelConfig(kind="dae", image_size=32, latent_dim=16, base_channels=4))
    cfg = TrainConfig(lr=1e-3, epochs=2, batch_size=8)
    metrics = fit(model, train, val, cfg)
    save_checkpoint(tmp_path / "ck", model, DataConfig(source="phantom", image_size=32), cfg, 2, metrics)
    again, payload = load_checkpoint(tmp_path / "ck")
    assert payload["epoch"] == 2 and payload["model_config"]["kind"] == "dae"
    m2 = evaluate(again, make_loader(val, eval_batch_size(cfg.batch_size), shuffle=False), torch.device("cpu"), cfg)
    assert m2["val/loss"] == pytest.approx(metrics["val/loss"], rel=1e-5)
    assert not list((tmp_path / "ck").glob("*.tmp"))  # atomic writes leave no temporaries


def test_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint file"):
        load_checkpoint(tmp_path / "nothing")
    bad = tmp_path / "bad" / "model.pt"
    bad.parent.mkdir()
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=str(bad)):
        load_checkpoint(bad)
    model = build_model(ModelConfig(kind="ae", image_size=32, latent_dim=16, base_channels=4))
    path = save_checkpoint(tmp_path / "mismatch", model, DataConfig(), TrainConfig(), 1, {})
    payload = torch.load(path, weights_only=True)
    payload["model_config"]["latent_dim"] = 32
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="does not match its model config"):
        load_checkpoint(path)
    for key in ("data_config", "train_config"):  # the report reads both: a clear error, not a KeyError
        payload = torch.load(path, weights_only=True)
        del payload[key]
        torch.save(payload, tmp_path / "lacking.pt")
        with pytest.raises(CheckpointError, match=f"lacks '{key}'") as err:
            load_checkpoint(tmp_path / "lacking.pt")
        assert str(tmp_path / "lacking.pt") in str(err.value)


def test_eval_batch_size_is_at_least_64():
    assert eval_batch_size(8) == 64 and eval_batch_size(64) == 64 and eval_batch_size(128) == 128


def test_make_loader_copies_read_only_arrays():
    arr = np.zeros((4, 1, 8, 8), np.uint8)
    arr.setflags(write=False)
    before = arr.copy()
    loader = make_loader(arr, 2, shuffle=False)
    assert not np.shares_memory(loader.dataset.tensors[0].numpy(), arr)  # copied once, not a view
    (batch,) = next(iter(loader))
    batch += 1  # writable
    assert bool((batch == 1).all()) and np.array_equal(arr, before)  # the source array is untouched


def test_make_loader_rejects_float_images():
    with pytest.raises(ValueError, match=r"uint8.*float32"):
        make_loader(np.full((4, 1, 8, 8), 0.5, np.float32), 2, shuffle=False)
