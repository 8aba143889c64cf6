"""Training augmentation: crops keep dtype, come from the image, cover all 8 flips/rotations, and are seeded."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from tuneae.augment import augment_batch, check_crop_size, random_crops, random_dihedral
from tuneae.config import ModelConfig, TrainConfig


def _images(b: int = 6, s: int = 16) -> torch.Tensor:
    return torch.randint(0, 256, (b, 1, s, s), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def _dihedral(x: torch.Tensor) -> list[torch.Tensor]:
    turned = [torch.rot90(x, k, dims=(-2, -1)) for k in range(4)]
    return turned + [t.flip(-1) for t in turned]


def test_crops_keep_dtype_and_come_from_the_image():
    images = _images()
    out = augment_batch(images, 8, torch.Generator().manual_seed(1))
    assert out.shape == (6, 1, 8, 8) and out.dtype == torch.uint8 and out.device == images.device
    for img, crop in zip(images, out):
        windows = [img[:, r:r + 8, c:c + 8] for r in range(9) for c in range(9)]
        assert any(torch.equal(crop, t) for w in windows for t in _dihedral(w))  # a transformed window


def test_seeded_and_varied():
    images = _images(32)
    a = augment_batch(images, 8, torch.Generator().manual_seed(7))
    b = augment_batch(images, 8, torch.Generator().manual_seed(7))
    c = augment_batch(images, 8, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_all_eight_transforms_drawn():
    x = torch.arange(16, dtype=torch.uint8).view(1, 1, 4, 4).repeat(200, 1, 1, 1)
    out = random_dihedral(x, torch.Generator().manual_seed(0))
    seen = {next(i for i, t in enumerate(_dihedral(x[0])) if torch.equal(o, t)) for o in out}
    assert seen == set(range(8))


def test_zero_is_identity_and_full_size_only_turns():
    images = _images()
    gen = torch.Generator().manual_seed(0)
    assert augment_batch(images, 0, gen) is images
    full = augment_batch(images, 16, gen)
    assert all(any(torch.equal(o, t) for t in _dihedral(i)) for i, o in zip(images, full))


def test_crop_positions_are_uniform_enough():
    x = torch.arange(100, dtype=torch.float32).view(1, 1, 10, 10).repeat(500, 1, 1, 1)
    out = random_crops(x, 1, torch.Generator().manual_seed(0))  # each crop is one pixel: its index
    assert out.shape == (500, 1, 1, 1) and out.unique().numel() > 90


@pytest.mark.parametrize("crop, kind, match", [
    (-1, "dunet", "train.crop_size=-1"),
    (64, "dunet", r"model.image_size=32"),
    (16, "ae", "only for fully convolutional kinds"),
    (12, "dunet", r"2\*\*model.depth=8"),
])
def test_check_crop_size_names_fields(crop, kind, match):
    with pytest.raises(ValueError, match=match):
        check_crop_size(crop, ModelConfig(kind=kind, image_size=32, depth=3))


def test_check_crop_size_accepts_valid():
    check_crop_size(0, ModelConfig(kind="ae", image_size=32, depth=5))
    check_crop_size(32, ModelConfig(kind="vae", image_size=32, depth=5))
    check_crop_size(16, ModelConfig(kind="dunet", image_size=32, depth=3))


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="square"):
        random_dihedral(torch.zeros(1, 1, 4, 5), torch.Generator())
    with pytest.raises(ValueError, match="crop size 9"):
        random_crops(torch.zeros(1, 1, 8, 8), 9, torch.Generator())


def test_training_loop_crops_train_batches_only():
    from tuneae.models import build_model
    from tuneae.train import fit

    rng = torch.Generator().manual_seed(0)
    train = torch.randint(0, 256, (12, 1, 32, 32), dtype=torch.uint8, generator=rng).numpy()
    val = torch.randint(0, 256, (4, 1, 32, 32), dtype=torch.uint8, generator=rng).numpy()
    model = build_model(ModelConfig(kind="dunet", image_size=32, depth=2, base_channels=4))
    seen = []
    model.stem.register_forward_pre_hook(lambda m, args: seen.append((m.training, args[0].shape[-1])))
    metrics = fit(model, train, val, TrainConfig(epochs=1, batch_size=4, crop_size=16))
    assert {side for training, side in seen if training} == {16}  # train: 16 px crops
    assert {side for training, side in seen if not training} == {32}  # validation: full images
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
    with pytest.raises(ValueError, match="only for fully convolutional kinds"):
        fit(build_model(ModelConfig(kind="ae", image_size=32, depth=3, base_channels=4, latent_dim=16)),
            train, val, TrainConfig(epochs=1, crop_size=16))


def test_search_refuses_crops_a_kind_cannot_take():
    from tuneae.search.checks import validate
    from tuneae.search.cli import resolve

    cfg, _ = resolve(["--preset", "smoke", "--model", "ae", "dunet"])
    search = replace(cfg.search, space={**cfg.search.space, "train.crop_size": (0, 16)})
    with pytest.raises(ValueError, match=r"train.crop_size=16 < model.image_size=32 is only for fully convolutional"):
        validate(replace(cfg, search=search))
    validate(replace(cfg, search=replace(search, models=("dunet",))))  # U-Nets take 16 px crops at depth 2 or 3
