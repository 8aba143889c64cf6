"""The rules of training settings, each in one place: training (:func:`check_train_config`, called by
:func:`tuneae.train.fit`) and the search's checks before Ray starts (:func:`tuneae.search.checks.validate`, on every
choice of the search space) apply the same functions and so refuse the same values for the same reason.

The rules of the model's architecture are :func:`tuneae.models.check_model_config`, of random crops
:func:`tuneae.augment.check_crop_size`.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tuneae.augment import check_crop_size
from tuneae.config import ModelConfig, TrainConfig
from tuneae.models import stride_stages
from tuneae.noise import PROTOCOLS
from tuneae.precision import MEMORY_FORMATS, PRECISIONS
from tuneae.recipe import LR_SCHEDULES, OPTIMIZERS

TRAIN_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "lr": (lambda v: v > 0, "must be > 0 (e.g. 1e-3)"),
    "epochs": (lambda v: v >= 1, "must be >= 1"),
    "batch_size": (lambda v: v >= 1, "must be >= 1"),
    "checkpoint_every": (lambda v: v >= 0, "must be >= 0 (epochs between resume checkpoints; 0: none)"),
    "seed": (lambda v: v >= 0, "must be >= 0"),
    "noise_sigma_min": (lambda v: v >= 0, "must be >= 0 (sigma on the [0, 1] scale)"),
    "noise_sigma_max": (lambda v: v >= 0, "must be >= 0 (sigma on the [0, 1] scale)"),
    "val_noise_sigma": (lambda v: v >= 0, "must be >= 0 (sigma on the [0, 1] scale)"),
    "noise_protocol": (lambda v: v in PROTOCOLS, f"choose one of {', '.join(PROTOCOLS)} (tuneae.noise)"),
    "precision": (lambda v: v in PRECISIONS, f"choose one of {', '.join(PRECISIONS)} (tuneae.precision)"),
    "memory_format": (lambda v: v in MEMORY_FORMATS, f"choose one of {', '.join(MEMORY_FORMATS)} (tuneae.precision)"),
    "optimizer": (lambda v: v in OPTIMIZERS, f"choose one of {', '.join(OPTIMIZERS)} (tuneae.recipe)"),
    "weight_decay": (lambda v: v >= 0, "must be >= 0 (0: no decay; e.g. 1e-2 with adamw)"),
    "lr_schedule": (lambda v: v in LR_SCHEDULES, f"choose one of {', '.join(LR_SCHEDULES)} (tuneae.recipe)"),
    "warmup_fraction": (lambda v: 0 <= v < 1, "must be in [0, 1) (fraction of the budget's steps)"),
    "ema_decay": (lambda v: 0 <= v < 1, "must be in [0, 1) (0: no weight average; e.g. 0.999)"),
    "grad_clip": (lambda v: v >= 0, "must be >= 0 (largest global gradient L2 norm; 0: no clipping)"),
}
"""``TrainConfig`` field -> (whether a value is valid, what a valid value is): the rules of a single value, applied
by :func:`check_train_config` before training and by :func:`tuneae.search.checks.validate` to every choice."""


def noise_range_problem(low: float, high: float) -> str:
    """Why ``noise_sigma_min = low`` cannot train beside ``noise_sigma_max = high`` ("" when it can): it exceeds
    ``high`` and the training noise sigma is drawn from [low, high]; callers name both values before the reason."""
    return "" if low <= high else "the training noise sigma is drawn from [noise_sigma_min, noise_sigma_max]"


def batch_norm_problem(batch_size: int, norm: str, depth: int, side: int) -> str:
    """Why BatchNorm cannot train on ``batch_size`` images of ``side`` x ``side`` pixels ("" when it can).

    In training mode ``torch.nn.BatchNorm2d`` normalises each channel over batch x height x width and raises
    "Expected more than 1 value per channel when training" when that is a single value. Every BatchNorm layer of
    tuneae's models (:func:`tuneae.models.blocks.norm_layer`, in the conv stages and residual blocks; the latent
    heads have none) sits at a side of at least ``side / 2**depth`` (the bottleneck), so a batch of ``b`` images
    trains iff ``b * (side / 2**depth)**2 >= 2``. GroupNorm and no norm train on any batch size; validation runs in
    eval mode, on running statistics, so any batch.

    Args:
        batch_size: images per training step.
        norm: ``model.norm``.
        depth: stride-2 stages of the model (:func:`tuneae.models.stride_stages`: ``model.depth``, 0 for
            ``dncnn``).
        side: the training input's side in pixels: ``train.crop_size`` when set, else the image size.
    """
    bottleneck = side // 2 ** depth
    if norm != "batch" or batch_size * bottleneck * bottleneck >= 2:
        return ""
    return (f"at depth {depth} and input side {side} px the bottleneck is {bottleneck}x{bottleneck}, so BatchNorm "
            f"would see one value per channel (PyTorch: 'Expected more than 1 value per channel when training'); use "
            f"a batch size >= 2, or model.norm 'group' or 'none'")


def check_train_config(cfg: TrainConfig, model_cfg: ModelConfig) -> None:
    """Refuse training settings that cannot work, before any compute is spent.

    The same rules as the search's checks (:data:`TRAIN_RULES`, :func:`noise_range_problem`,
    :func:`batch_norm_problem`, :func:`tuneae.augment.check_crop_size`).

    Raises:
        ValueError: naming the field and value (``train.lr=0.0: must be > 0 ...``).
    """
    for name, (ok, need) in TRAIN_RULES.items():
        if not ok(getattr(cfg, name)):
            raise ValueError(f"train.{name}={getattr(cfg, name)!r}: {need}")
    check_crop_size(cfg.crop_size, model_cfg)
    problem = batch_norm_problem(cfg.batch_size, model_cfg.norm, stride_stages(model_cfg.kind, model_cfg.depth),
                                 cfg.crop_size or model_cfg.image_size)
    if problem:
        raise ValueError(f"train.batch_size={cfg.batch_size} with model.norm='batch': {problem}")
    problem = noise_range_problem(cfg.noise_sigma_min, cfg.noise_sigma_max)
    if problem:
        raise ValueError(f"train.noise_sigma_min={cfg.noise_sigma_min} exceeds "
                         f"train.noise_sigma_max={cfg.noise_sigma_max}: {problem}")
