"""Every model kind: shapes, value range, backward, NaN checks, intermediates, config errors."""
from __future__ import annotations

import pytest
import torch

from tuneae.config import MODEL_KINDS, ModelConfig
from tuneae.models import BOTTLENECK, MODELS, VAE, build_model

SMALL = {"image_size": 32, "latent_dim": 16, "base_channels": 4}


def _cfg(kind: str, **kw) -> ModelConfig:
    depth = 5 if kind in BOTTLENECK else 3
    return ModelConfig(kind=kind, depth=depth, **{**SMALL, **kw})


def test_registry_covers_config_kinds():
    assert set(MODEL_KINDS) == set(MODELS)


@pytest.mark.parametrize("kind", MODEL_KINDS)
@pytest.mark.parametrize("norm", ["batch", "group", "none"])
def test_shapes_range_backward(kind, norm):
    torch.manual_seed(0)
    model = build_model(_cfg(kind, norm=norm))
    x = torch.rand(3, 1, 32, 32)
    loss, recon = model.objective(x, x)
    assert recon.shape == (3, 1, 32, 32)
    assert torch.isfinite(loss) and loss.ndim == 0
    assert recon.min() >= 0 and recon.max() <= 1
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    model.eval()
    with torch.no_grad():
        out, inter = model.forward_intermediates(x)
    assert torch.allclose(out, model(x), atol=1e-6)
    names = [n for n, _ in inter]
    assert names[-1] == "output" and any(n.startswith("encoder") for n in names)
    assert any(n.startswith("decoder") for n in names)
    assert all(torch.isfinite(t).all() for _, t in inter)


@pytest.mark.parametrize("kind", ["ae", "vae", "dae"])
def test_seed_architecture_at_128(kind):
    model = build_model(ModelConfig(kind=kind, image_size=128, latent_dim=512))
    x = torch.rand(2, 1, 128, 128)
    with torch.no_grad():
        model.eval()
        z = model.encode(x)
        _, inter = model.forward_intermediates(x)
    assert z.shape == (2, 512)
    shapes = {n: tuple(t.shape[1:]) for n, t in inter}
    assert shapes["encoder.0"] == (32, 64, 64) and shapes["encoder.4"] == (512, 4, 4)
    assert shapes["decoder.3"] == (32, 64, 64) and shapes["output"] == (1, 128, 128)


def test_vae_loss_is_per_image_and_batch_size_independent():
    torch.manual_seed(0)
    model = build_model(_cfg("vae")).eval()
    x = torch.rand(8, 1, 32, 32)
    with torch.no_grad():
        full, _ = model.objective(x, x)
        half, _ = model.objective(x[:4], x[:4])
        other, _ = model.objective(x[4:], x[4:])
    assert torch.isclose(full, (half + other) / 2, rtol=1e-5)
    assert full > 32 * 32 * 0.3  # nats per image: summed over 1024 pixels, not averaged


def test_vae_reparameterization_and_prior_samples():
    torch.manual_seed(0)
    model = build_model(_cfg("vae"))
    assert isinstance(model, VAE)
    mu, logvar = torch.zeros(1000, 4), torch.full((1000, 4), 2 * torch.log(torch.tensor(3.0)))
    z = VAE.reparameterize(mu, logvar)
    assert 2.7 < z.std().item() < 3.3  # sigma = exp(logvar / 2) = 3
    model.eval()
    s = model.sample(5, generator=torch.Generator().manual_seed(0))
    assert s.shape == (5, 1, 32, 32) and 0 <= s.min() and s.max() <= 1


def test_unet_starts_as_identity_and_standardize_keeps_output_range():
    model = build_model(_cfg("dunet", input_norm="standardize")).eval()
    x = torch.rand(2, 1, 32, 32) * 0.9 + 0.05
    with torch.no_grad():
        y = model(x)
    assert torch.allclose(y, x, atol=1e-4)


@pytest.mark.parametrize("bad, match", [
    ({"image_size": 100}, "image_size=100 is not divisible"),
    ({"kind": "gan"}, "model.kind='gan'"),
    ({"norm": "layer"}, "model.norm='layer'"),
    ({"kernel_size": 4}, "kernel_size=4"),
    ({"input_norm": "minmax"}, "input_norm='minmax'"),
])
def test_bad_config_is_named(bad, match):
    with pytest.raises(ValueError, match=match):
        build_model(ModelConfig(**{**SMALL, **bad}))
