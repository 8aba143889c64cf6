"""The presets of ``python -m tuneae.search``: named budgets (smoke, cpu, gpu) over the root config's defaults.

Each preset sets some fields of the search, data and model sections and the search space (``section.field`` ->
categorical choices) of every kind, with per-kind additions; :func:`preset` builds the root config from one. The
dataclasses and their defaults (the seed project's recipe) live in :mod:`tuneae.config`.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from tuneae.config import SEED_SPACE, Config, DataConfig, ModelConfig, SearchConfig, TrainConfig

ARCH_SPACE: dict[str, tuple] = {
    "model.base_channels": (16, 32, 64),
    "model.kernel_size": (3, 5),
    "model.norm": ("batch", "group", "none"),
    "model.input_norm": ("none", "standardize"),
    "model.latent_layout": ("dense", "spatial"),
    "model.residual": (False, True),
    "model.recon_loss": ("mse", "l1", "l1_ssim"),
}
"""Architecture hyperparameters searched by the gpu preset for every kind (the seed project's future work: code
layout, residual blocks, training loss); a kind searches only those it uses."""

UNET_CPU_SPACE: dict[str, tuple] = {
    "model.base_channels": (8, 16),
    "model.depth": (3, 4),
    "model.norm": ("batch", "group", "none"),
    "model.input_norm": ("none", "standardize"),
    "train.lr": (1e-3, 5e-4),
    "train.epochs": (8,),
    "train.batch_size": (16, 32),
}
"""U-Net space that fits 2 CPUs (an epoch at 128 px costs 50 s at base 8, 150 s at base 16 there): narrow,
shallow, few epochs."""

BOTTLENECK_CPU_SPACE: dict[str, tuple] = {
    "model.base_channels": (16, 32),
    "model.depth": (4, 5),
    "model.residual": (False, True),
    "model.norm": ("batch", "group"),
}
"""Architecture of the bottleneck kinds (ae, vae, dae) that fits 2 CPUs at 128 px: width (base 16 or the seed's 32;
64 is the gpu preset's), depth (4 stages, an 8 x 8 code map, or the seed's 5, 4 x 4), residual blocks (4 times
the forward multiply-adds at base 32: 0.90 against 0.22 GMAC per 128 px image, depth 5) and the normalization
layer. The seed project's stack (32, 5, no residual, BatchNorm) is one
point of it, so the first trial is still its recipe."""

DNCNN_CPU_SPACE: dict[str, tuple] = {"model.depth": (8, 12, 17), "model.base_channels": (16, 32),
                                      "train.crop_size": (64,), "train.lr": (1e-3, 5e-4), "train.epochs": (8,),
                                      "train.batch_size": (16, 32)}
"""DnCNN space that fits 2 CPUs: every layer keeps the full resolution (at 128 px a forward pass costs 0.9 GMAC at
depth 8, width 32: 5x the base-8, depth-3 U-Net), so it trains on random 64 px crops (the paper: 40 / 50 px patches),
where depth 17, width 32 costs 3.3x that U-Net per epoch, as UNET_CPU_SPACE's base 16 does. Width 64: gpu preset."""
DNCNN_GPU_SPACE: dict[str, tuple] = {"model.depth": (17, 20), "model.base_channels": (64,), "model.kernel_size": (3,)}
"""The paper's DnCNN (Zhang et al. 2017): 64 channels, 3x3, 17 layers (known sigma) or 20 (blind DnCNN-B)."""

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "smoke": {
        "data": {"source": "phantom", "image_size": 32, "phantom_count": 96},
        "search": {"num_samples": 4, "cpus_per_trial": 1.0, "grace_period": 1,
                   "reduction_factor": 2.0, "name": "smoke"},
        "space": {"train.lr": (1e-3, 3e-3), "train.epochs": (3,), "train.batch_size": (16, 32),
                  "model.latent_dim": (16, 32), "model.latent_layout": ("dense", "spatial"),
                  "model.recon_loss": ("mse", "l1_ssim")},
        "space_by_kind": {"unet": {"model.depth": (2, 3)}, "dunet": {"model.depth": (2, 3)},
                          "dncnn": {"model.depth": (3, 5), "model.base_channels": (8, 16)}},
        "model": {"base_channels": 8},
    },
    "cpu": {
        "data": {"image_size": 128},
        "search": {"models": ("ae", "vae", "dae", "dunet", "dncnn"), "num_samples": 8, "cpus_per_trial": 2.0,
                   "grace_period": 1, "reduction_factor": 3.0, "name": "cpu"},
        "space": {"train.lr": (1e-3, 5e-4, 1e-4), "train.epochs": (9,), "train.batch_size": (16, 32, 64),
                  "model.latent_dim": (512, 1024, 2048), "model.latent_layout": ("dense", "spatial"),
                  "model.recon_loss": ("mse", "l1_ssim"), "train.optimizer": ("adam", "adamw"),
                  "train.weight_decay": (0.0, 1e-2), "train.lr_schedule": ("constant", "cosine")},
        "space_by_kind": {"ae": dict(BOTTLENECK_CPU_SPACE), "vae": dict(BOTTLENECK_CPU_SPACE),
                          "dae": dict(BOTTLENECK_CPU_SPACE), "unet": dict(UNET_CPU_SPACE),
                          "dunet": dict(UNET_CPU_SPACE), "dncnn": dict(DNCNN_CPU_SPACE)},
        "model": {},
    },
    "gpu": {
        "data": {"image_size": 128},
        "search": {"models": ("ae", "vae", "dae", "dunet", "dncnn"), "num_samples": 27, "cpus_per_trial": 2.0,
                   "gpus_per_trial": 0.25, "grace_period": 5, "reduction_factor": 2.0, "name": "gpu"},
        "space": {**SEED_SPACE, "train.epochs": (max(SEED_SPACE["train.epochs"]),), **ARCH_SPACE,
                  "train.optimizer": ("adam", "adamw"),
                  "train.weight_decay": (0.0, 1e-4, 1e-2), "train.lr_schedule": ("constant", "cosine", "onecycle"),
                  "train.ema_decay": (0.0, 0.999), "train.grad_clip": (0.0, 1.0)},
        "space_by_kind": {"ae": {"model.depth": (4, 5)}, "vae": {"model.depth": (4, 5)}, "dae": {"model.depth": (4, 5)},
                          "unet": {"model.depth": (3, 4, 5)}, "dunet": {"model.depth": (3, 4, 5)},
                          "dncnn": dict(DNCNN_GPU_SPACE)},
        "model": {},
    },
}
"""Presets. The epoch budget is never searched: each preset fixes ``train.epochs`` (one choice), which is ASHA's
``max_t`` and the length of every LR schedule; ASHA stops weaker trials at its rungs (the cpu preset: epochs 1 and
3 of 9; gpu: 5, 10 and 20 of 40, the seed grid's 10 / 20 / 40 among them), where a stopped trial is judged
mid-schedule. Searching the budget would spend trials on a known answer (more epochs win at a fixed schedule); a
space of several ``train.epochs`` choices (``--epochs 10 20``) still works, max_t then being the largest.

smoke (synthetic 32 px phantoms, seconds per trial: the tests use it; its ``models`` stay the default ae and vae,
with a tiny dncnn space for ``--model dncnn``), cpu (real data at 128 px with a reduced budget for 2 CPUs, about 35
min per kind: ae, vae, dae, the denoising U-Net and DnCNN, 8 trials each (TPE's random start-up is max(2, 8 // 4) = 2
of them, the first the seed project's recipe, so 6 are TPE's); 9 epochs for the bottleneck kinds, 8 for the others;
``UNET_CPU_SPACE`` for U-Nets, ``DNCNN_CPU_SPACE`` for DnCNN and ``BOTTLENECK_CPU_SPACE`` (width, depth, residual
blocks, normalization) plus the code layout for the bottleneck kinds; MSE or L1 + SSIM as training loss), gpu (the
seed project's full grid but for its epochs: 40, its largest; 1/4 GPU per trial; the same five kinds). The gpu
preset adds ``ARCH_SPACE`` (base channels, kernel size, normalization layer, input normalization, code layout,
residual blocks, training loss) and depth for every kind (``DNCNN_GPU_SPACE``: the paper's DnCNN), and the training
recipe (optimizer, weight decay, LR schedule, weight average, clipping;
tuneae.recipe); the cpu preset a part of it (optimizer, weight decay, constant or cosine LR). Trials are selected
on val/mse whatever their loss."""


def preset(name: str) -> Config:
    """The root config of a preset (:data:`PRESETS`): its sections and search space over the dataclass defaults.

    Raises:
        KeyError: an unknown preset name.
    """
    p = PRESETS[name]
    search = replace(SearchConfig(), **p["search"], space=dict(p["space"]),
                     space_by_kind={k: dict(v) for k, v in p.get("space_by_kind", {}).items()})
    return Config(search, replace(DataConfig(), **p["data"]), replace(ModelConfig(), **p.get("model", {})),
                  TrainConfig())
