"""Every model kind: shapes, value range, backward, NaN checks, intermediates, config errors."""
from __future__ import annotations

import pytest
import torch

from tuneae.config import MODEL_KINDS, ModelConfig
from tuneae.losses import RECON_LOSSES, reconstruction_loss
from tuneae.models import BOTTLENECK, DENOISING, FLAT, MODELS, UNUSED_BY_KIND, VAE, DnCNN, build_model
from tuneae.models.blocks import ResBlock, spatial_code_shape

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
    target = x if kind in BOTTLENECK else x.flip(-1)  # U-Nets start as the identity: x -> x has zero loss
    loss, recon = model.objective(x, target)
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
    if kind in FLAT:  # DnCNN: one map per hidden layer, all at the input's side
        assert names == [*(f"layer.{i}" for i in range(model.cfg.depth - 1)), "output"]
        assert all(t.shape[-2:] == (32, 32) for _, t in inter)
    else:
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


# ------------------------------------------------------------------ latent layout, residual blocks, loss options
@pytest.mark.parametrize("kind", ["ae", "vae", "dae"])
@pytest.mark.parametrize("layout", ["dense", "spatial"])
@pytest.mark.parametrize("residual", [False, True])
def test_bottleneck_variants_shapes_backward(kind, layout, residual):
    torch.manual_seed(0)
    cfg = ModelConfig(kind=kind, image_size=32, depth=3, base_channels=4, latent_dim=48, latent_layout=layout,
                      residual=residual)  # code grid 32 / 2**3 = 4: 48 = 3 x 4 x 4
    model = build_model(cfg)
    x = torch.rand(3, 1, 32, 32)
    loss, recon = model.objective(x, x)
    assert recon.shape == (3, 1, 32, 32) and recon.min() >= 0 and recon.max() <= 1
    assert torch.isfinite(loss) and loss.ndim == 0
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    model.eval()
    with torch.no_grad():
        assert model.encode(x).shape == (3, 48)
        out, _ = model.forward_intermediates(x)
    assert torch.allclose(out, model(x), atol=1e-6)
    n_res = sum(isinstance(m, ResBlock) for m in model.modules())
    assert n_res == (2 * 3 - 1 if residual else 0)  # after every encoder stage and every hidden decoder stage


@pytest.mark.parametrize("latent, depth, code", [(2048, 4, (32, 8, 8)), (512, 5, (32, 4, 4)), (1024, 5, (64, 4, 4))])
def test_spatial_code_has_exactly_latent_dim_numbers(latent, depth, code):
    assert spatial_code_shape(latent, 128, depth) == code
    model = build_model(ModelConfig(kind="vae", image_size=128, depth=depth, base_channels=4, latent_dim=latent,
                                    latent_layout="spatial")).eval()
    conv = model.to_latent[1]
    assert isinstance(conv, torch.nn.Conv2d) and conv.out_channels == 2 * code[0]  # mean and log-variance maps
    with torch.no_grad():
        mu, logvar = model.encode_dist(torch.rand(2, 1, 128, 128))
    assert mu.shape == logvar.shape == (2, latent)
    dense = build_model(ModelConfig(kind="ae", image_size=128, depth=depth, base_channels=4, latent_dim=latent))
    spatial = build_model(ModelConfig(kind="ae", image_size=128, depth=depth, base_channels=4, latent_dim=latent,
                                      latent_layout="spatial"))
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(spatial) < count(dense)  # conv heads instead of two (flat x latent) Linear layers


def test_spatial_code_is_local():
    """A spatial code cell only sees its part of the image; a dense code unit sees everything."""
    torch.manual_seed(0)
    cfg = {"kind": "ae", "image_size": 64, "depth": 3, "base_channels": 4, "latent_dim": 64, "norm": "none"}
    x = torch.rand(1, 1, 64, 64)
    y = x.clone()
    y[..., 48:, 48:] = 1 - y[..., 48:, 48:]  # change the bottom-right corner only
    changed = {}
    for layout in ("spatial", "dense"):
        model = build_model(ModelConfig(**cfg, latent_layout=layout)).eval()
        with torch.no_grad():
            changed[layout] = (model.encode(x) - model.encode(y)).abs()  # (1, 64)
    grid = changed["spatial"].view(8, 8)  # code 1 x 8 x 8
    assert grid[:2, :2].max() == 0 and grid[6:, 6:].min() > 0  # far cells untouched, near cells changed
    assert (changed["dense"] > 0).all()


def test_vae_kl_on_spatial_code():
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="vae", image_size=32, depth=3, base_channels=4, latent_dim=32,
                                    latent_layout="spatial")).eval()
    x = torch.rand(4, 1, 32, 32)
    with torch.no_grad():
        loss, recon = model.objective(x, x)
        mu, logvar = model.encode_dist(x)
        logits = torch.logit(recon.clamp(1e-7, 1 - 1e-7))
        bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
    kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)  # over all 32 code numbers (2 x 4 x 4)
    assert (kl >= 0).all() and torch.isfinite(kl).all()
    assert torch.isclose(loss, (bce + kl).mean(), rtol=1e-3)
    model.train()
    torch.manual_seed(1)
    a = model(x)
    torch.manual_seed(2)
    assert not torch.allclose(a, model(x))  # training mode samples z by the reparameterization
    assert model.sample(3, generator=torch.Generator().manual_seed(0)).shape == (3, 1, 32, 32)


@pytest.mark.parametrize("kind", ["ae", "dae", "unet", "dunet", "dncnn"])
@pytest.mark.parametrize("loss_name", RECON_LOSSES)
def test_recon_loss_options(kind, loss_name):
    torch.manual_seed(0)
    model = build_model(_cfg(kind, recon_loss=loss_name))
    x, target = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)
    loss, recon = model.objective(x, target)
    assert torch.isfinite(loss) and loss > 0
    if kind in ("ae", "dae"):  # the loss is the named one, on the returned reconstruction
        assert torch.isclose(loss, reconstruction_loss(loss_name, recon, target))
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_dunet_residual_in_pixel_space_under_unclipped_noise():
    torch.manual_seed(0)
    model = build_model(_cfg("dunet"))
    clean = torch.rand(2, 1, 32, 32)
    noisy = clean + 0.3 * torch.randn_like(clean)  # unclipped AWGN: leaves [0, 1]
    assert noisy.min() < 0 and noisy.max() > 1
    assert torch.equal(model.estimate(noisy), noisy)  # zero-initialised head: identity in pixel space
    loss, out = model.objective(noisy, clean)
    assert torch.isclose(loss, (noisy - clean).pow(2).mean())  # the loss sees the unclamped estimate
    assert torch.equal(out, noisy.clamp(0, 1)) and torch.equal(model(noisy), out)
    loss.backward()
    assert model.head.weight.grad.abs().sum() > 0  # gradients reach the noise head (no saturated sigmoid)


def test_dncnn_is_the_paper_stack_and_residual():
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="dncnn", image_size=32, depth=17, base_channels=64))
    assert isinstance(model, DnCNN) and "dncnn" in DENOISING
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(convs) == 17 and len(bns) == 15  # first Conv+ReLU, 15 Conv+BN+ReLU, last Conv
    assert all(c.kernel_size == (3, 3) and c.stride == (1, 1) for c in convs)
    assert convs[0].in_channels == 1 and convs[-1].out_channels == 1 and convs[5].out_channels == 64
    clean = torch.rand(2, 1, 24, 40)  # any side: no down-sampling
    noisy = clean + 0.3 * torch.randn_like(clean)
    assert torch.equal(model.estimate(noisy), noisy)  # zero-initialised last layer: predicts no noise yet
    torch.nn.init.normal_(model.head.weight, std=0.01)
    model.eval()
    with torch.no_grad():  # the output is the input minus the predicted noise, decode(encode(x))
        assert torch.allclose(model.estimate(noisy), noisy - model.decode(model.encode(noisy)), atol=1e-6)
        assert model(noisy).shape == (2, 1, 24, 40)
    loss, out = model.train().objective(noisy, clean)
    assert torch.isclose(loss, (model.estimate(noisy) - clean).pow(2).mean())  # MSE of the unclamped estimate
    assert out.min() >= 0 and out.max() <= 1


def test_dncnn_depth_is_layers_not_downsampling():
    build_model(ModelConfig(kind="dncnn", image_size=36, depth=20, base_channels=4))  # 36 not divisible by 2**20
    with pytest.raises(ValueError, match=r"model\.depth=1: a dncnn needs at least 2"):
        build_model(ModelConfig(kind="dncnn", image_size=32, depth=1, base_channels=4))


@pytest.mark.parametrize("bad, match", [
    ({"latent_layout": "spatial", "latent_dim": 20, "depth": 3}, r"latent_dim to be a multiple.*model.depth=3"),
    ({"latent_layout": "grid"}, "model.latent_layout='grid'"),
    ({"recon_loss": "huber"}, "model.recon_loss='huber'"),
    ({"recon_loss": "l1_ssim", "image_size": 8, "depth": 2}, "needs model.image_size >= 11"),
])
def test_bad_new_fields_are_named(bad, match):
    with pytest.raises(ValueError, match=match):
        build_model(ModelConfig(**{**SMALL, **bad}))


def test_unused_keys_of_new_fields():
    assert {"model.latent_layout", "model.residual"} <= UNUSED_BY_KIND["dunet"]
    assert {"model.latent_dim", "model.latent_layout", "model.residual"} <= UNUSED_BY_KIND["dncnn"]
    assert not {"model.depth", "model.base_channels", "train.noise_sigma_max"} & UNUSED_BY_KIND["dncnn"]
    assert "model.recon_loss" in UNUSED_BY_KIND["vae"] and "model.recon_loss" not in UNUSED_BY_KIND["ae"]
    assert not {"model.latent_layout", "model.residual"} & UNUSED_BY_KIND["vae"]
