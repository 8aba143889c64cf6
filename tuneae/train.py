"""Pure PyTorch training and evaluation: one epoch, validation metrics, a plain ``fit``. No Ray here.

Metric names are the project's one set, the same in Tune, W&B, CSV files and the report:
``train/loss``, ``val/loss`` (the model's own objective), ``val/mse`` and ``val/psnr`` (dB).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tuneae.augment import augment_batch, check_crop_size
from tuneae.config import TrainConfig
from tuneae.data import to_float
from tuneae.models import DENOISING, Autoencoder
from tuneae.noise import add_noise

MIN_EVAL_BATCH = 64
"""Smallest validation batch: evaluation needs no gradients, so small training batches need not slow it down."""


def eval_batch_size(batch_size: int) -> int:
    """The validation loader's batch size for a trial trained with ``batch_size``: ``max(batch_size, 64)``.

    Every caller that evaluates a trial's validation split (:func:`fit`, the Ray Train worker loop, the report)
    must use this: the report re-evaluates a reloaded checkpoint and checks that it reproduces the ``val/loss``
    the trial reported, and the batching decides how the seeded validation noise of denoising kinds is drawn
    (one draw per batch) and in which order floating-point sums run.

    Args:
        batch_size: the trial's training batch size (images, >= 1).
    Returns:
        The validation batch size in images, >= 64.
    """
    return max(batch_size, MIN_EVAL_BATCH)


class LossModule(nn.Module):
    """Wraps a model so that ``forward(x, target)`` returns ``model.objective(x, target)``.

    DistributedDataParallel synchronises gradients only through ``forward``; wrapping the objective keeps DDP
    (Ray Train's ``prepare_model``) correct for every model kind.
    """

    def __init__(self, model: Autoencoder):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 1, S, S) input and target in [0, 1] -> (loss scalar, reconstruction (B, 1, S, S))."""
        return self.model.objective(x, target)


def make_loader(images: np.ndarray, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    """A DataLoader over uint8 images held in memory (no decoding; batches stay uint8 until the step).

    Args:
        images: (N, 1, S, S) uint8 (read-only arrays from the Ray object store are copied once here).
        batch_size: images per batch; the last batch may be smaller.
        shuffle: reshuffle each epoch with a generator seeded by ``seed``.
        seed: seed of the shuffling generator.
    Returns:
        A loader yielding 1-tuples ``(x,)`` with x (B, 1, S, S) uint8.
    Raises:
        ValueError: an empty image array, images that are not uint8 (float images in [0, 1] would silently become
            0s and 1s), or a non-positive batch size.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (0-255), got {images.dtype}; see tuneae.data.to_float "
                         "for the model-side conversion")
    if len(images) == 0:
        raise ValueError("cannot train or evaluate on an empty image set")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be positive")
    tensor = torch.from_numpy(np.array(images, dtype=np.uint8, copy=True))  # writable copy
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(TensorDataset(tensor), batch_size=batch_size, shuffle=shuffle, generator=gen)


def psnr_per_image(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio per image, data range 1: 10 * log10(1 / MSE_i).

    Args:
        recon, target: (B, C, H, W) in [0, 1].
    Returns:
        (B,) PSNR in dB (MSE floored at 1e-10, i.e. at most 100 dB).
    """
    mse = (recon - target).pow(2).flatten(1).mean(1).clamp_min(1e-10)  # (B,)
    return 10.0 * torch.log10(1.0 / mse)


def _inputs(kind: str, clean: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """The model input for a clean batch: the batch itself, or a noisy copy for denoising kinds.

    For denoising kinds sigma is drawn once per batch, uniform in [noise_sigma_min, noise_sigma_max].
    """
    if kind not in DENOISING:
        return clean
    u = torch.rand((), generator=gen).item()
    sigma = cfg.noise_sigma_min + u * (cfg.noise_sigma_max - cfg.noise_sigma_min)
    return add_noise(clean, sigma, cfg.noise_protocol, gen)


def _on_any_rank(flag: bool, device: torch.device) -> bool:
    """``flag`` OR-ed over the DDP ranks (just ``flag`` without a process group).

    Every rank must stop at the same step: a rank that leaves the loop alone leaves the others waiting forever in
    the next gradient all-reduce.
    """
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()) \
            or torch.distributed.get_world_size() == 1:
        return flag
    t = torch.tensor([float(flag)], device=device)  # (1,)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return bool(t.item())


def train_one_epoch(loss_module: nn.Module, kind: str, loader: Iterable, optimizer: torch.optim.Optimizer,
                    device: torch.device, cfg: TrainConfig, gen: torch.Generator) -> float:
    """One pass over ``loader`` with one Adam (or other ``optimizer``) step per batch, in training mode.

    Args:
        loss_module: a :class:`LossModule` (possibly DDP-wrapped); ``forward(x, target) -> (loss, recon)``.
        kind: the model kind; denoising kinds (``dae``, ``dunet``) get a noisy input, sigma on the [0, 1] scale
            drawn once per batch uniform in [``cfg.noise_sigma_min``, ``cfg.noise_sigma_max``].
        loader: yields ``(x,)`` with x (B, 1, S, S) uint8 in [0, 255]; with ``cfg.crop_size`` > 0 each image is
            cropped and flipped / rotated first (:func:`tuneae.augment.augment_batch`; training only).
        optimizer: steps the parameters of ``loss_module``.
        device: where the batches go (the model must already be there).
        cfg: noise range, ``crop_size`` and ``lr`` (the latter only for the divergence message).
        gen: CPU generator for the crops and the noise of denoising kinds.
    Returns:
        This rank's running mean of the objective over the epoch's images (each batch's loss weighted by its size,
        taken while the weights change): MSE per pixel on the [0, 1] scale for ``ae``/``dae``/``unet``/``dunet``,
        negative ELBO in nats per image for ``vae``. 0.0 for an empty loader.
    Raises:
        FloatingPointError: the loss became NaN or infinite, on any DDP rank (all ranks raise at the same step).
        TypeError: a batch is not uint8 (from :func:`tuneae.data.to_float`).
    """
    loss_module.train()
    total, count = 0.0, 0
    for (batch,) in loader:
        clean = to_float(augment_batch(batch, cfg.crop_size, gen))  # (B, 1, c, c) in [0, 1]; c = S without crops
        x = _inputs(kind, clean, cfg, gen).to(device)
        clean = clean.to(device)
        loss, _ = loss_module(x, clean)
        if _on_any_rank(not torch.isfinite(loss).item(), device):
            value = loss.item()
            what = f"is {value}" if not math.isfinite(value) else "is not finite on another DDP rank"
            raise FloatingPointError(f"training loss {what} (diverged) at lr={cfg.lr}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(batch)
        count += len(batch)
    return total / max(count, 1)


@torch.no_grad()
def evaluate(model: Autoencoder, loader: Iterable, device: torch.device, cfg: TrainConfig,
             seed: int = 1234) -> dict[str, float]:
    """Validation metrics, computed the same way for every kind, in eval mode without gradients.

    For denoising kinds the input carries Gaussian noise of sigma ``cfg.val_noise_sigma`` (on the [0, 1] scale;
    seeded, so every epoch and every reload with the same batching sees the same noisy set) and the metrics
    compare the output with the clean image. The VAE decodes its posterior mean (deterministic).

    Args:
        model: the unwrapped model (not DDP), already on ``device``; left in eval mode.
        loader: yields ``(x,)`` with x (B, 1, S, S) uint8 in [0, 255]; use batches of
            :func:`eval_batch_size` to reproduce a trial's reported metrics.
        device: where the batches go.
        cfg: only ``val_noise_sigma`` is read.
        seed: seed of the validation noise generator.
    Returns:
        ``{"val/loss": the model's objective averaged over images (MSE per pixel, or nats per image for the VAE),
        "val/mse": MSE per pixel on the [0, 1] scale averaged over images, "val/psnr": mean of per-image PSNR in dB
        (see :func:`psnr_per_image`)}``.
    Raises:
        ZeroDivisionError: the loader yields no batch (:func:`make_loader` never builds such a loader).
        TypeError: a batch is not uint8 (from :func:`tuneae.data.to_float`).
        ValueError: a negative ``cfg.val_noise_sigma`` for a denoising kind.
    """
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    loss_sum, mse_sum, psnr_sum, n = 0.0, 0.0, 0.0, 0
    for (batch,) in loader:
        clean = to_float(batch)
        x = add_noise(clean, cfg.val_noise_sigma, cfg.noise_protocol, gen) if model.cfg.kind in DENOISING else clean
        x, clean = x.to(device), clean.to(device)
        loss, recon = model.objective(x, clean)
        b = len(batch)
        loss_sum += loss.item() * b
        mse_sum += (recon - clean).pow(2).flatten(1).mean(1).sum().item()
        psnr_sum += psnr_per_image(recon, clean).sum().item()
        n += b
    return {"val/loss": loss_sum / n, "val/mse": mse_sum / n, "val/psnr": psnr_sum / n}


def fit(model: Autoencoder, train_images: np.ndarray, val_images: np.ndarray, cfg: TrainConfig,
        device: torch.device | str = "cpu",
        on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> dict[str, float]:
    """Train ``model`` in place for ``cfg.epochs`` epochs with Adam (Kingma & Ba 2015) at ``cfg.lr``, without Ray.

    For scripts, tests and benchmarks; the same steps as the Ray Train worker loop, on one process. Seeds
    ``torch.manual_seed(cfg.seed)``; the validation loader uses :func:`eval_batch_size`.

    Args:
        model: moved to ``device`` and trained in place.
        train_images, val_images: (N, 1, S, S) uint8 in [0, 255], N >= 1.
        cfg: lr, epochs, batch_size, seed, noise settings.
        device: e.g. ``"cpu"`` or ``"cuda"``.
        on_epoch: called after each epoch with (epoch starting at 1, metrics).
    Returns:
        The last epoch's metrics: ``train/loss``, ``val/loss``, ``val/mse``, ``val/psnr`` (dB) (units as in
        :func:`train_one_epoch` and :func:`evaluate`) and ``epoch``; ``{}`` when ``cfg.epochs < 1``.
    Raises:
        FloatingPointError: the training loss became NaN or infinite.
        ValueError: an empty image array or ``cfg.batch_size < 1`` (from :func:`make_loader`), a negative noise
            sigma or unknown ``cfg.noise_protocol`` for a denoising kind (from :func:`tuneae.noise.add_noise`), or a
            ``cfg.crop_size`` the model cannot train on (:func:`tuneae.augment.check_crop_size`).
    """
    check_crop_size(cfg.crop_size, model.cfg)
    device = torch.device(device)
    torch.manual_seed(cfg.seed)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    train_loader = make_loader(train_images, cfg.batch_size, shuffle=True, seed=cfg.seed)
    val_loader = make_loader(val_images, eval_batch_size(cfg.batch_size), shuffle=False)
    gen = torch.Generator().manual_seed(cfg.seed)
    loss_module = LossModule(model)
    metrics: dict[str, float] = {}
    for epoch in range(1, cfg.epochs + 1):
        train_loss = train_one_epoch(loss_module, model.cfg.kind, train_loader, opt, device, cfg, gen)
        metrics = {"train/loss": train_loss, **evaluate(model, val_loader, device, cfg), "epoch": epoch}
        if on_epoch is not None:
            on_epoch(epoch, metrics)
    return metrics
