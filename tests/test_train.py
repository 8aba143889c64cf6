"""The one training loop: it learns, PSNR is right, divergence is caught, the Ray Train worker trains exactly as
``fit``, resume is exact, bf16 runs, a last batch of one image is harmless, and checkpoints go where they are used."""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from tuneae.checkpoint import (
    OPTIMIZER_FILE,
    CheckpointError,
    asha_rungs,
    checkpoint_kind,
    load_checkpoint,
    restore_checkpoint,
    save_checkpoint,
)
from tuneae.config import DataConfig, ModelConfig, TrainConfig
from tuneae.data import phantom_images
from tuneae.models import build_model
from tuneae.precision import autocast_dtype, cpu_has_bf16, memory_format
from tuneae.recipe import Recipe
from tuneae.seeding import Seed, stream_seed
from tuneae.train import (
    LossModule,
    _inputs,
    check_train_config,
    epoch_batches,
    eval_batch_size,
    evaluate,
    fit,
    images_on,
    make_loader,
    psnr_per_image,
    seeded_model,
    train_one_epoch,
)

# the seed project's stack at 32 px: a 1x1 bottleneck with BatchNorm
TINY = {"image_size": 32, "latent_dim": 16, "base_channels": 4}


@pytest.fixture(scope="module")
def images():
    imgs, _, _ = phantom_images(48, 32, seed=0)
    return imgs[:40], imgs[40:]


@pytest.fixture
def one_thread():
    """One torch thread, as a Ray Train worker with 1 CPU runs: float sums then run in the same order."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_psnr_matches_definition():
    a = torch.zeros(2, 1, 4, 4)
    b = torch.full((2, 1, 4, 4), 0.1)
    assert torch.allclose(psnr_per_image(a, b), torch.full((2,), 20.0))  # 10 log10(1 / 0.01)


def test_fit_lowers_validation_loss(images):
    train, val = images
    cfg = TrainConfig(lr=3e-3, epochs=6, batch_size=8, precision="fp32")
    model = seeded_model(ModelConfig(kind="ae", image_size=32, latent_dim=32, base_channels=8), cfg)
    before = evaluate(model, make_loader(val, 8, shuffle=False), torch.device("cpu"), cfg)
    after = fit(model, train, val, cfg)
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
    recipe = Recipe(model, TrainConfig(), "cpu")
    x = images_on(train, torch.device("cpu"))
    with pytest.raises(FloatingPointError, match=r"training loss is nan \(diverged\)"):
        train_one_epoch(LossModule(model), "ae", x, epoch_batches(len(x), 8, 0, 1), recipe, TrainConfig(),
                        torch.Generator())


def test_checkpoint_roundtrip_reproduces_metrics(tmp_path, images):
    train, val = images
    cfg = TrainConfig(lr=1e-3, epochs=2, batch_size=8)
    model = seeded_model(ModelConfig(kind="dae", **TINY), cfg)
    metrics = fit(model, train, val, cfg)
    save_checkpoint(tmp_path / "ck", model, DataConfig(source="phantom", image_size=32), cfg, 2, metrics)
    again, payload = load_checkpoint(tmp_path / "ck")
    assert payload["epoch"] == 2 and payload["model_config"]["kind"] == "dae"
    m2 = evaluate(again, make_loader(val, eval_batch_size(cfg.batch_size), shuffle=False), torch.device("cpu"), cfg)
    assert m2["val/loss"] == pytest.approx(metrics["val/loss"], rel=1e-5)
    assert not list((tmp_path / "ck").glob("*.tmp"))  # atomic writes leave no temporaries


MODERN = {"optimizer": "adamw", "weight_decay": 1e-2, "lr_schedule": "cosine", "warmup_fraction": 0.2,
          "ema_decay": 0.9, "grad_clip": 1.0}
"""Every recipe option on at once (the seed recipe is the defaults)."""


# dae: the noise stream; vae: torch's generator (reparameterization); with a schedule and a weight average mid-way
@pytest.mark.parametrize("kind, recipe", [("dae", {}), ("dae", MODERN),
                                          ("vae", {"lr_schedule": "onecycle", "ema_decay": 0.5})])
def test_resume_from_a_resume_checkpoint_is_exact(tmp_path, images, kind, recipe):
    train, val = images
    cfg = TrainConfig(lr=1e-3, epochs=4, batch_size=16, **recipe)
    mcfg = ModelConfig(kind=kind, **TINY)
    straight = seeded_model(mcfg, cfg)
    straight_recipe = Recipe(straight, cfg, "cpu")  # checkpointing does not touch the run
    expected = fit(straight, train, val, cfg, optimizer=straight_recipe, on_epoch=lambda e, m: save_checkpoint(
        tmp_path / f"e{e}", straight, DataConfig(), cfg, e, m, straight_recipe, resume=e == 2))
    resumed = seeded_model(mcfg, cfg)
    resumed_recipe = Recipe(resumed, cfg, "cpu")
    assert restore_checkpoint(tmp_path / "e2", resumed, resumed_recipe) == (2, True)  # half-way through the schedule
    got = fit(resumed, train, val, cfg, optimizer=resumed_recipe, start_epoch=2)
    assert got == expected
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name  # the raw weights
    for (name, a), b in zip(straight_recipe.validated.state_dict().items(),
                            resumed_recipe.validated.state_dict().values(), strict=True):
        assert torch.equal(a, b), name  # the validated (averaged) weights
    assert resumed_recipe.optimizer.param_groups[0]["lr"] == straight_recipe.optimizer.param_groups[0]["lr"]
    weights_only = seeded_model(mcfg, cfg)  # a rung's checkpoint: the schedule moves to its epoch
    only_recipe = Recipe(weights_only, cfg, "cpu")
    assert restore_checkpoint(tmp_path / "e3", weights_only, only_recipe) == (3, False)
    fit(weights_only, train, val, cfg, optimizer=only_recipe, start_epoch=3)
    assert only_recipe.optimizer.param_groups[0]["lr"] == straight_recipe.optimizer.param_groups[0]["lr"]


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
    with pytest.raises(CheckpointError, match="does not match the trial's"):
        restore_checkpoint(path.parent, build_model(ModelConfig(kind="ae", **TINY)))
    for key in ("data_config", "train_config"):  # the report reads both: a clear error, not a KeyError
        payload = torch.load(path, weights_only=True)
        del payload[key]
        torch.save(payload, tmp_path / "lacking.pt")
        with pytest.raises(CheckpointError, match=f"lacks '{key}'") as err:
            load_checkpoint(tmp_path / "lacking.pt")
        assert str(tmp_path / "lacking.pt") in str(err.value)


def test_last_batch_of_one_is_dropped_and_shards_are_even(images):
    assert [len(b) for b in epoch_batches(33, 16, 0, 1)] == [16, 16]  # 33 = 2 * 16 + 1: BatchNorm needs >= 2
    assert [len(b) for b in epoch_batches(34, 16, 0, 1)] == [16, 16, 2]
    assert [len(b) for b in epoch_batches(5, 1, 0, 1)] == [1] * 5  # batch 1 is asked for (group norm): kept
    shards = [torch.cat(epoch_batches(35, 4, 0, 2, rank=r, world_size=2)) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 16  # 17 per rank -> 4 batches of 4 and a dropped single
    assert not set(shards[0].tolist()) & set(shards[1].tolist())
    assert not torch.equal(torch.cat(epoch_batches(35, 4, 0, 1)), torch.cat(epoch_batches(35, 4, 0, 2)))
    with pytest.raises(ValueError, match="at least 2"):
        epoch_batches(3, 16, 0, 1, rank=0, world_size=2)
    train, val = images  # 33 images at batch 16 with the seed project's stack's 1x1 BatchNorm bottleneck
    metrics = fit(build_model(ModelConfig(kind="ae", **TINY)), train[:33], val, TrainConfig(epochs=1, batch_size=16))
    assert math.isfinite(metrics["train/loss"]) and math.isfinite(metrics["val/loss"])


def test_training_noise_follows_the_protocol_with_one_sigma_per_image():
    clean = torch.full((64, 1, 8, 8), 0.5)
    cfg = TrainConfig(noise_sigma_min=0.05, noise_sigma_max=0.3)
    assert _inputs("ae", clean, cfg, torch.Generator().manual_seed(0)) is clean  # no noise for ae / vae / unet
    x = _inputs("dae", clean, cfg, torch.Generator().manual_seed(0))
    sd = (x - clean).flatten(1).std(1)  # (64,) one estimate per image
    assert sd.min() < 0.1 and sd.max() > 0.25  # sigma drawn per image across [0.05, 0.3]
    assert x.min() < 0 or x.max() > 1  # awgn (the default) is not clipped
    y = _inputs("dae", clean, replace(cfg, noise_protocol="clipped8"), torch.Generator().manual_seed(0))
    assert y.min() >= 0 and y.max() <= 1 and torch.equal(y, torch.round(y * 255) / 255)
    with pytest.raises(ValueError, match=r"train\.noise_protocol"):
        check_train_config(replace(cfg, noise_protocol="gauss"), ModelConfig(kind="dae", **TINY))


def test_impossible_settings_are_refused_naming_the_field():
    bn = ModelConfig(kind="ae", **TINY)
    with pytest.raises(ValueError, match=r"batch_size=1 with model\.norm='batch'"):
        check_train_config(TrainConfig(batch_size=1), bn)
    check_train_config(TrainConfig(batch_size=1), ModelConfig(kind="ae", norm="group", **TINY))
    for field, value in [("precision", "fp16"), ("memory_format", "nhwc"), ("checkpoint_every", -1), ("lr", 0.0)]:
        with pytest.raises(ValueError, match=f"train.{field}"):
            check_train_config(TrainConfig(**{field: value}), bn)
    with pytest.raises(ValueError, match="noise_sigma_min"):
        check_train_config(TrainConfig(noise_sigma_min=0.3, noise_sigma_max=0.1), ModelConfig(kind="dae", **TINY))


def test_precision_and_layout_rules():
    cpu = torch.device("cpu")
    assert autocast_dtype(TrainConfig(precision="fp32"), cpu) is None
    assert autocast_dtype(TrainConfig(precision="bf16"), cpu) is torch.bfloat16
    assert autocast_dtype(TrainConfig(precision="auto"), cpu) is (torch.bfloat16 if cpu_has_bf16() else None)
    assert autocast_dtype(TrainConfig(precision="auto"), torch.device("mps")) is None
    assert memory_format(TrainConfig(), "dunet") is torch.channels_last
    assert memory_format(TrainConfig(), "ae") is torch.contiguous_format
    assert memory_format(TrainConfig(memory_format="channels_last"), "vae") is torch.channels_last


def test_bf16_trains_under_autocast_and_validates_in_fp32(images):
    train, val = images
    seen: dict[bool, set] = {True: set(), False: set()}  # training mode -> dtypes of the first conv's output
    results = {}
    for precision in ("fp32", "bf16"):
        cfg = TrainConfig(lr=1e-3, epochs=2, batch_size=16, precision=precision)
        model = seeded_model(ModelConfig(kind="dunet", image_size=32, base_channels=4, depth=2), cfg)
        if precision == "bf16":
            model.stem[0].register_forward_hook(lambda m, i, out: seen[m.training].add(out.dtype))
        results[precision] = fit(model, train, val, cfg)
        assert model.stem[0].weight.is_contiguous(memory_format=torch.channels_last)  # U-Net: channels_last
    assert seen == {True: {torch.bfloat16}, False: {torch.float32}}
    assert all(math.isfinite(v) for v in results["bf16"].values())
    assert results["bf16"]["val/psnr"] == pytest.approx(results["fp32"]["val/psnr"], abs=0.5)
    assert results["bf16"] != results["fp32"]  # the arithmetic did change


def test_one_seeding_rule():
    seeds = {stream_seed(0, s, e, r) for s in Seed for e in range(3) for r in range(2)}
    assert len(seeds) == len(Seed) * 3 * 2  # every stream, epoch and rank apart
    assert stream_seed(7, Seed.NOISE, 2, 1) == stream_seed(7, Seed.NOISE, 2, 1)
    with pytest.raises(ValueError):
        stream_seed(-1, Seed.WEIGHTS)


@pytest.mark.parametrize("grace, rf, max_t", [(1, 2.0, 3), (1, 3.0, 9), (1, 2.0, 20), (5, 2.0, 40), (2, 1.5, 17),
                                               (1, 3.0, 6)])
def test_rungs_are_where_ray_asha_records_trials(grace, rf, max_t):
    from ray.tune.schedulers import ASHAScheduler

    bracket = ASHAScheduler(time_attr="epoch", max_t=max_t, grace_period=grace, reduction_factor=rf)._brackets[0]
    milestones = [m for m, _ in bracket._rungs]  # upstream's own milestones (private, read only to check ours)
    assert asha_rungs(grace, rf, max_t) == tuple(sorted({math.ceil(m) for m in milestones}))


def test_checkpoint_schedule_rungs_end_and_every_k():
    rungs = asha_rungs(1, 3.0, 9)  # the cpu preset: rungs at epochs 1 and 3 (and 9 = max_t, where all stop)
    assert rungs == (1, 3, 9)
    plan = [checkpoint_kind(e, 9, 5, rungs) for e in range(1, 10)]
    assert plan == ["weights", "", "weights", "", "resume", "", "", "", "weights"]
    assert [checkpoint_kind(e, 6, 2) for e in range(1, 7)] == ["", "resume", "", "resume", "", "weights"]
    assert [checkpoint_kind(e, 4, 0, (2,)) for e in range(1, 5)] == ["", "weights", "", "weights"]
    gpu = asha_rungs(5, 2.0, 40)  # the gpu preset: rungs on multiples of checkpoint_every stay weights-only
    assert gpu == (5, 10, 20, 40)
    assert [e for e in range(1, 41) if checkpoint_kind(e, 40, 5, gpu) == "resume"] == [15, 25, 30, 35]


def test_ray_worker_trains_as_fit_and_checkpoints_on_schedule(ray_session, tmp_path, images, one_thread):
    """The Ray Train worker loop through a real TorchTrainer (1 worker, 1 CPU) against fit on one thread, with a
    schedule and a weight average."""
    import ray.train
    from ray.train.torch import TorchTrainer

    from tuneae.config import to_flat
    from tuneae.trainable import DATA_KEY, asha_config, train_loop_per_worker

    train, val = images
    data_cfg = DataConfig(source="phantom", image_size=32)
    model_cfg = ModelConfig(kind="dae", **TINY)
    train_cfg = TrainConfig(lr=1e-3, epochs=4, batch_size=16, checkpoint_every=2, lr_schedule="cosine", ema_decay=0.9)
    expected = fit(seeded_model(model_cfg, train_cfg), train[:33], val, train_cfg)
    config = {**to_flat(data_cfg, model_cfg, train_cfg), **asha_config(1, 3.0, 4),  # rungs at epochs 1 and 3
              DATA_KEY: {"ref": ray_session.put({"train": train[:33], "val": val})}}
    result = TorchTrainer(
        train_loop_per_worker, train_loop_config=config,
        scaling_config=ray.train.ScalingConfig(num_workers=1, resources_per_worker={"CPU": 1}),
        run_config=ray.train.RunConfig(name="worker", storage_path=str(tmp_path),
                                       checkpoint_config=ray.train.CheckpointConfig(num_to_keep=None)),
    ).fit()
    assert result.return_value is None
    assert {k: result.metrics[k] for k in expected} == expected  # same loop, same seeds: the same numbers
    written = {m["epoch"]: m["checkpoint/bytes"] for _, m in result.best_checkpoints}
    has_optimizer = {m["epoch"]: (Path(ck.path) / OPTIMIZER_FILE).is_file() for ck, m in result.best_checkpoints}
    assert has_optimizer == {1: False, 2: True, 3: False, 4: False}  # rung 1, resume 2, rung 3, end 4
    assert written[2] > 2 * written[1]  # Adam's two moments per weight (and here raw weights and their average)
    assert {torch.load(Path(ck.path) / "model.pt", weights_only=True)["weights"] for ck, _ in result.best_checkpoints} \
        == {"ema"}  # every checkpoint holds the validated weights: the average's
