"""The training recipe's options each do what they say: the LR follows its schedule per step, weight decay shrinks
weights, the weight average is what is validated and checkpointed, clipping bounds the gradient norm; every
combination trains without NaN, and bad values are refused naming the field."""
from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from tuneae.checkpoint import load_checkpoint, restore_checkpoint, save_checkpoint
from tuneae.config import Config, DataConfig, ModelConfig, SearchConfig, TrainConfig
from tuneae.data import phantom_images
from tuneae.recipe import LR_SCHEDULES, OPTIMIZERS, Recipe, cosine_factor, make_optimizer, steps_per_epoch
from tuneae.rules import check_train_config
from tuneae.search.checks import validate
from tuneae.train import epoch_batches, evaluate, fit, make_loader, seeded_model

TINY = ModelConfig(kind="ae", image_size=32, latent_dim=16, base_channels=4)


@pytest.fixture(scope="module")
def images():
    imgs, _, _ = phantom_images(28, 32, seed=0)
    return imgs[:20], imgs[20:]


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))


def _lrs(cfg: TrainConfig, total: int) -> list[float]:
    """The LR of each of ``total`` optimisation steps of a started recipe."""
    net = _net()
    recipe = Recipe(net, cfg, "cpu")
    recipe.start(total, 0, torch.device("cpu"))
    out = []
    for _ in range(total):
        out.append(recipe.optimizer.param_groups[0]["lr"])
        recipe.step(net(torch.randn(8, 4)).pow(2).mean())
    return out


def test_the_lr_follows_the_schedule_per_step():
    lr, total = 1e-2, 20
    assert _lrs(TrainConfig(lr=lr), total) == [lr] * total
    cosine = _lrs(TrainConfig(lr=lr, lr_schedule="cosine", warmup_fraction=0.2), total)  # 4 warm-up steps
    assert cosine == pytest.approx([lr * cosine_factor(i, total, 4) for i in range(total)])
    assert cosine[:5] == pytest.approx([lr / 4, lr / 2, 3 * lr / 4, lr, lr])  # linear, then the cosine's top
    assert all(a > b for a, b in itertools.pairwise(cosine[4:])) and 0 < cosine[-1] < lr / 50
    one = _lrs(TrainConfig(lr=lr, lr_schedule="onecycle"), total)
    assert one[0] == pytest.approx(lr / 25) and max(one) == pytest.approx(lr)
    assert one.index(max(one)) == 5 and one[-1] < lr / 1e4  # peak at 30 % of the steps, then far below the start


def test_fit_steps_the_schedule_once_per_optimisation_step(images):
    train, val = images
    cfg = TrainConfig(lr=1e-3, epochs=2, batch_size=8, lr_schedule="cosine")
    recipe = Recipe(model := seeded_model(TINY, cfg), cfg, "cpu")
    fit(model, train, val, cfg, optimizer=recipe)
    steps = steps_per_epoch(len(train), 8)
    assert steps == 3 and recipe.scheduler.last_epoch == 2 * steps  # 20 images: batches of 8, 8, 4


def test_weight_decay_shrinks_weights_but_not_biases_or_norms():
    for optimizer in OPTIMIZERS:
        net = _net()
        before = [p.detach().clone() for p in net.parameters()]
        opt = make_optimizer(net, TrainConfig(lr=1e-3, optimizer=optimizer, weight_decay=0.1), "cpu")
        for p in net.parameters():
            p.grad = torch.zeros_like(p)  # no loss gradient: only the decay moves the weights
        opt.step()
        for p, b in zip(net.parameters(), before, strict=True):
            if p.ndim < 2:
                assert torch.equal(p, b)  # biases and BatchNorm's scale and shift do not decay
            elif optimizer == "adamw":
                assert torch.allclose(p, b * (1 - 1e-3 * 0.1))  # decoupled: p <- p - lr * wd * p, exactly
            else:
                assert p.norm() < b.norm()  # Adam's L2 penalty: the gradient wd * p pulls towards 0


def test_the_weight_average_is_validated_and_checkpointed(tmp_path, images):
    train, val = images
    cfg = TrainConfig(lr=3e-3, epochs=2, batch_size=8, ema_decay=0.9)
    model = seeded_model(TINY, cfg)
    recipe = Recipe(model, cfg, "cpu")
    metrics = fit(model, train, val, cfg, optimizer=recipe)
    average, raw = recipe.validated.state_dict(), model.state_dict()
    assert recipe.validated is not model and recipe.ema_updates == 6
    assert not torch.equal(average["encoder.0.0.weight"], raw["encoder.0.0.weight"])
    assert not torch.equal(average["encoder.0.1.running_mean"], raw["encoder.0.1.running_mean"])  # BatchNorm too
    loader = make_loader(val, 64, shuffle=False)
    assert evaluate(recipe.validated, loader, "cpu", cfg)["val/loss"] == pytest.approx(metrics["val/loss"], rel=1e-6)
    assert evaluate(model, loader, "cpu", cfg)["val/loss"] != pytest.approx(metrics["val/loss"], rel=1e-6)
    save_checkpoint(tmp_path / "ck", model, DataConfig(), cfg, 2, metrics, recipe, resume=False)
    again, payload = load_checkpoint(tmp_path / "ck")  # what the report reloads: the validated weights
    assert payload["weights"] == "ema" and not (tmp_path / "ck" / "optimizer.pt").exists()
    assert evaluate(again, loader, "cpu", cfg)["val/loss"] == pytest.approx(metrics["val/loss"], rel=1e-6)


def test_the_average_warms_up_its_decay():
    net = _net()
    recipe = Recipe(net, TrainConfig(lr=0.1, ema_decay=0.99), "cpu")
    recipe.start(10, 0, torch.device("cpu"))
    w0 = net[0].weight.detach().clone()
    recipe.step(net(torch.randn(8, 4)).pow(2).mean())
    # first update at decay min(0.99, 1 / 10) = 0.1: mostly the new weights, not the random initial ones
    assert torch.allclose(recipe.validated[0].weight, 0.1 * w0 + 0.9 * net[0].weight)


def test_clipping_bounds_the_gradient_norm():
    norms = {}
    for clip in (0.0, 0.1):
        net = _net()
        recipe = Recipe(net, TrainConfig(grad_clip=clip), "cpu")
        recipe.start(1, 0, torch.device("cpu"))
        recipe.step(1e4 * net(torch.randn(8, 4)).pow(2).mean())
        norms[clip] = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in net.parameters()])).item()
    assert norms[0.0] > 1.0 and norms[0.1] == pytest.approx(0.1, rel=1e-4)


def test_every_combination_trains_without_nan(images):
    train, val = images
    for optimizer, schedule, ema, clip in itertools.product(OPTIMIZERS, LR_SCHEDULES, (0.0, 0.9), (0.0, 1.0)):
        cfg = TrainConfig(lr=1e-3, epochs=1, batch_size=8, optimizer=optimizer, weight_decay=1e-2,
                          lr_schedule=schedule, ema_decay=ema, grad_clip=clip, precision="fp32")
        metrics = fit(seeded_model(TINY, cfg), train[:16], val[:4], cfg)
        assert all(math.isfinite(v) for v in metrics.values()), (optimizer, schedule, ema, clip)


def test_steps_per_epoch_counts_epoch_batches():
    for n, batch, world in itertools.product((5, 17, 33, 34), (1, 2, 16), (1, 2)):
        if batch > 1 and n // world < 2:
            continue
        assert steps_per_epoch(n, batch, world) == len(epoch_batches(n, batch, 0, 1, 0, world)), (n, batch, world)


def test_a_bare_optimizer_resume_state_still_restores(tmp_path, images):
    train, val = images
    cfg = TrainConfig(lr=1e-3, epochs=2, batch_size=8)
    model = seeded_model(TINY, cfg)
    opt = make_optimizer(model, cfg, "cpu")
    fit(model, train, val, cfg, optimizer=opt, on_epoch=lambda e, m: save_checkpoint(
        tmp_path / f"e{e}", model, DataConfig(), cfg, e, m, opt))  # optimizer.pt: a bare optimizer state dict
    again = seeded_model(TINY, cfg)
    recipe = Recipe(again, cfg, "cpu")
    assert restore_checkpoint(tmp_path / "e1", again, recipe) == (1, True)
    fit(again, train, val, cfg, optimizer=recipe, start_epoch=1)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values(),
                                                 strict=True))
    longer = TrainConfig(lr=1e-3, epochs=3, batch_size=8, lr_schedule="cosine")  # a schedule cannot change its span
    (saved := Recipe(model, longer, "cpu")).start(6, 0, torch.device("cpu"))  # a 2-epoch schedule's state
    save_checkpoint(tmp_path / "cos", model, DataConfig(), longer, 1, {}, saved)
    restore_checkpoint(tmp_path / "cos", model, cosine_recipe := Recipe(model, longer, "cpu"))
    with pytest.raises(ValueError, match="continue spans 6 steps, this run's 9"):
        fit(model, train, val, longer, optimizer=cosine_recipe, start_epoch=1)
    with pytest.raises(ValueError, match="not a bare optimizer"):  # its state could not resume a schedule
        cosine = TrainConfig(lr_schedule="cosine")
        fit(seeded_model(TINY, cosine), train, val, cosine, optimizer=make_optimizer(model, cosine, "cpu"))


@pytest.mark.parametrize("field, value", [("optimizer", "sgd"), ("lr_schedule", "step"), ("weight_decay", -0.1),
                                          ("warmup_fraction", 1.0), ("ema_decay", 1.0), ("grad_clip", -1.0)])
def test_bad_recipe_values_are_refused_naming_the_field(field, value):
    with pytest.raises(ValueError, match=rf"train\.{field}="):
        check_train_config(TrainConfig(**{field: value}), TINY)
    search = SearchConfig(models=("ae",), wandb=False, space={f"train.{field}": (value,)})
    with pytest.raises(ValueError, match=rf"train\.{field}"):  # the search's checks apply the same rule
        validate(Config(search, DataConfig(image_size=32), TINY))
