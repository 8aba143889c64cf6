"""Pure PyTorch training: the one training loop (:func:`fit`) and evaluation. No Ray here.

:func:`fit` is the loop of every trial: the Ray Train worker (:mod:`tuneae.trainable`) calls it with its rank, its
DDP wrapper and an ``on_epoch`` hook that reports and checkpoints; scripts, tests and benchmarks call it alone.

Metric names are the project's one set, the same in Tune, W&B, CSV files and the report:
``train/loss``, ``val/loss`` (the model's own objective), ``val/mse`` and ``val/psnr`` (dB).

Data stay on the training device: the uint8 images are moved there once per trial, each batch is gathered there
by index and cropped there (``TrainConfig.crop_size``, :mod:`tuneae.augment`, training batches only), noise of
``TrainConfig.noise_protocol`` (:mod:`tuneae.noise`) is drawn there, and nothing inside an epoch waits for the
device except every ``NAN_CHECK_EVERY`` steps (the divergence check on the accumulated loss). Seeds follow one rule
(:mod:`tuneae.seeding`); precision and memory layout are chosen in :mod:`tuneae.precision`.

The training recipe (optimizer, weight decay, LR schedule, weight average, gradient clipping) is
:class:`tuneae.recipe.Recipe`. **How a schedule meets ASHA's rungs**: a schedule spans the trial's whole budget,
``TrainConfig.epochs`` epochs of :func:`tuneae.recipe.steps_per_epoch` steps, which is ASHA's ``max_t`` when
``train.epochs`` is fixed (the intended use: the budget is the scheduler's, not a searched hyperparameter). A trial
that ASHA stops at a rung is judged where it stands mid-schedule, its LR not yet annealed, as ASHA judges every
trial at a rung; a schedule per rung (annealing by each rung, then warming again) was rejected: a promoted trial
would not be the run an uninterrupted trial is, and a trial could not resume exactly. When ``train.epochs`` is
searched, each trial's schedule spans its own epochs, so at the rung of a short trial's last epoch an annealed
short trial meets longer ones mid-schedule (favouring short budgets there). A resume checkpoint holds the
scheduler's and the average's state, so a trial resumed mid-schedule continues exactly as an uninterrupted one;
one resumed from weights alone moves its schedule to the epoch it resumes at.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn

from tuneae.augment import augment_batch
from tuneae.config import ModelConfig, TrainConfig
from tuneae.data import to_float
from tuneae.metrics import ssim
from tuneae.models import DENOISING, Autoencoder, build_model
from tuneae.noise import add_noise
from tuneae.precision import autocast_dtype, memory_format
from tuneae.recipe import Recipe, steps_per_epoch
from tuneae.recipe import make_optimizer as make_optimizer  # re-exported: callers build optimizers through train
from tuneae.recipe import optimizer_to as optimizer_to
from tuneae.rules import check_train_config
from tuneae.seeding import VAL_NOISE_SEED, Seed, stream_seed

MIN_EVAL_BATCH = 64
"""Smallest validation batch: evaluation needs no gradients, so small training batches need not slow it down."""
NAN_CHECK_EVERY = 50
"""Steps between divergence checks inside an epoch (each check waits for the device); the last step is checked too."""


def seeded_model(model_cfg: ModelConfig, train_cfg: TrainConfig) -> Autoencoder:
    """Build the model of ``model_cfg`` with weights drawn from the ``Seed.WEIGHTS`` stream of ``train_cfg.seed``.

    Raises:
        ValueError: an invalid model config (see :func:`tuneae.models.check_model_config`).
    """
    torch.manual_seed(stream_seed(train_cfg.seed, Seed.WEIGHTS))
    return build_model(model_cfg)


def eval_batch_size(batch_size: int) -> int:
    """The validation batch size for a trial trained with ``batch_size``: ``max(batch_size, 64)``.

    Every caller that evaluates a trial's validation split (:func:`fit`, the report) must use this: the report
    re-evaluates a reloaded checkpoint and checks that it reproduces the ``val/loss`` the trial reported, and the
    batching decides how the seeded validation noise of denoising kinds is drawn (one draw per batch).

    Args:
        batch_size: the trial's training batch size (images, >= 1).
    Returns:
        The validation batch size in images, >= 64.
    """
    return max(batch_size, MIN_EVAL_BATCH)


# ------------------------------------------------------------------------------------------------- settings
def as_recipe(optimizer: torch.optim.Optimizer | Recipe | None, model: Autoencoder, cfg: TrainConfig,
              device: torch.device) -> Recipe:
    """The :class:`tuneae.recipe.Recipe` :func:`fit` trains with: ``optimizer`` itself, a new one (None), or one
    around a bare optimizer (e.g. of :func:`make_optimizer`, restored from a checkpoint).

    Raises:
        ValueError: a bare optimizer with an LR schedule or a weight average, whose state it cannot carry: a resume
            would restart them and a checkpoint would not hold the validated weights (use ``Recipe``).
    """
    if isinstance(optimizer, Recipe):
        return optimizer
    if optimizer is not None and (cfg.lr_schedule != "constant" or cfg.ema_decay > 0):
        raise ValueError(f"train.lr_schedule={cfg.lr_schedule!r} / train.ema_decay={cfg.ema_decay}: pass a "
                         f"tuneae.recipe.Recipe (its state resumes and checkpoints), not a bare optimizer")
    return Recipe(model, cfg, device, optimizer)


# ---------------------------------------------------------------------------------------------- data and steps
class LossModule(nn.Module):
    """Wraps a model so that ``forward(x, target)`` returns ``model.objective(x, target)``, under autocast.

    DistributedDataParallel synchronises gradients only through ``forward``; wrapping the objective keeps DDP
    (Ray Train's ``prepare_model``) correct for every model kind. With ``amp_dtype`` the network runs under
    ``torch.autocast`` (mixed precision; the models compute their loss terms in fp32) and the loss is returned
    in fp32.
    """

    def __init__(self, model: Autoencoder, amp_dtype: torch.dtype | None = None):
        super().__init__()
        self.model = model
        self.amp_dtype = amp_dtype

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 1, S, S) input and target in [0, 1] -> (fp32 loss scalar, reconstruction (B, 1, S, S))."""
        with torch.autocast(x.device.type, dtype=self.amp_dtype or torch.bfloat16, enabled=self.amp_dtype is not None):
            loss, recon = self.model.objective(x, target)
        return loss.float(), recon


def images_on(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 images (N, 1, S, S) as a tensor on ``device``, copied once (read-only object-store arrays included).

    Raises:
        ValueError: an empty array, or images that are not uint8 (float images in [0, 1] would silently become
            0s and 1s).
    """
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (0-255), got {images.dtype}; see tuneae.data.to_float "
                         "for the model-side conversion")
    if len(images) == 0:
        raise ValueError("cannot train or evaluate on an empty image set")
    return torch.from_numpy(np.array(images, dtype=np.uint8, copy=True)).to(device)


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1,
                  device: torch.device | str = "cpu") -> list[torch.Tensor]:
    """Index batches of one training epoch for one rank: a seeded permutation, this rank's shard, then batches.

    Every rank draws the same permutation (``Seed.SHUFFLE`` of the epoch) and takes every ``world_size``-th index
    from ``rank``; the ``n mod world_size`` last indices are left out so every rank runs the same number of steps
    (as ``DistributedSampler(drop_last=True)``). A last batch of a single image is dropped when
    ``batch_size > 1``: BatchNorm cannot normalise one image in training mode; the image is in another place of
    the next epoch's permutation, so no image is left out for good.

    Args:
        n: number of training images.
        batch_size: images per batch (per rank).
        seed, epoch: ``TrainConfig.seed`` and the 1-based epoch.
        rank, world_size: this rank and the number of DDP ranks.
        device: where the index tensors live (the images' device).
    Returns:
        A list of int64 index tensors of shape (batch_size,) except the last, of shape (r,) with 2 <= r.
    Raises:
        ValueError: fewer than 2 images per rank while ``batch_size > 1`` (no batch would remain).
    """
    per_rank = n // world_size
    if batch_size > 1 and per_rank < 2:
        raise ValueError(f"{n} training image(s) for {world_size} worker(s): each needs at least 2 (BatchNorm)")
    gen = torch.Generator().manual_seed(stream_seed(seed, Seed.SHUFFLE, epoch))
    perm = torch.randperm(n, generator=gen)[rank:per_rank * world_size:world_size]  # (per_rank,)
    batches = list(perm.to(device).split(batch_size))
    if batch_size > 1 and len(batches[-1]) == 1:
        batches.pop()
    return batches


def _inputs(kind: str, clean: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """The model input for a clean batch (B, 1, S, S) in [0, 1]: itself, or a noisy copy for denoising kinds.

    For denoising kinds each image gets its own sigma (on the [0, 1] scale), uniform in [noise_sigma_min,
    noise_sigma_max], and noise of ``cfg.noise_protocol`` with it (:func:`tuneae.noise.add_noise`; ``awgn`` is not
    clipped), all drawn from ``gen`` on the batch's device (no host synchronisation).
    """
    if kind not in DENOISING:
        return clean
    u = torch.rand((len(clean),), generator=gen, device=clean.device)  # (B,)
    sigma = cfg.noise_sigma_min + u * (cfg.noise_sigma_max - cfg.noise_sigma_min)  # (B,)
    return add_noise(clean, sigma, cfg.noise_protocol, gen)


def _on_any_rank(flag: torch.Tensor) -> bool:
    """``flag`` (a bool tensor) OR-ed over the DDP ranks, as a Python bool (one host synchronisation).

    Every rank must stop at the same step: a rank that leaves the loop alone leaves the others waiting forever in
    the next gradient all-reduce.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized() \
            and torch.distributed.get_world_size() > 1:
        t = flag.float().reshape(1)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return bool(t.item())
    return bool(flag)


def train_one_epoch(loss_module: nn.Module, kind: str, images: torch.Tensor, batches: list[torch.Tensor],
                    recipe: Recipe, cfg: TrainConfig, gen: torch.Generator) -> float:
    """One pass over ``batches`` with one optimisation step per batch (:meth:`Recipe.step`), in training mode.

    Args:
        loss_module: a :class:`LossModule` (possibly DDP-wrapped); ``forward(x, target) -> (loss, recon)``.
        kind: the model kind; denoising kinds (``dae``, ``dunet``) get a noisy input (see :func:`_inputs`).
        images: (N, 1, S, S) uint8 in [0, 255] on the model's device (:func:`images_on`).
        batches: index tensors into ``images`` on the same device (:func:`epoch_batches`); with ``cfg.crop_size``
            > 0 each gathered image is cropped and flipped / rotated (:func:`tuneae.augment.augment_batch`).
        recipe: steps the parameters of ``loss_module`` (optimizer, clipping, schedule, average; started,
            :meth:`Recipe.start`).
        cfg: noise protocol and range, ``crop_size``.
        gen: generator on the images' device for the crops and the noise of denoising kinds.
    Returns:
        This rank's running mean of the objective over the epoch's images (each batch's loss weighted by its size,
        taken while the weights change): MSE per pixel on the [0, 1] scale for ``ae``/``dae``/``unet``/``dunet``,
        negative ELBO in nats per image for ``vae``. 0.0 for no batch.
    Raises:
        FloatingPointError: the accumulated loss became NaN or infinite, on any DDP rank (checked every
            ``NAN_CHECK_EVERY`` steps and at the last; all ranks raise at the same step).
    """
    loss_module.train()
    total = torch.zeros((), dtype=torch.float64, device=images.device)  # sum of loss * batch size, on the device
    count = 0
    for step, idx in enumerate(batches, 1):
        clean = to_float(augment_batch(images[idx], cfg.crop_size, gen))  # (B, 1, c, c) in [0, 1]; c = S uncropped
        loss, _ = loss_module(_inputs(kind, clean, cfg, gen), clean)
        recipe.step(loss)
        total += loss.detach() * len(idx)
        count += len(idx)
        if (step % NAN_CHECK_EVERY == 0 or step == len(batches)) and _on_any_rank(~torch.isfinite(total)):
            value = total.item()
            what = f"is {value}" if not math.isfinite(value) else "is not finite on another DDP rank"
            lr = recipe.optimizer.param_groups[0]["lr"]
            raise FloatingPointError(f"training loss {what} (diverged) by step {step} at lr={lr:.3g} "
                                     f"(train.lr={cfg.lr}, {cfg.lr_schedule})")
    return total.item() / max(count, 1)


def validation_batches(batches: Iterable, kind: str, cfg: TrainConfig, device: torch.device | str,
                       seed: int = VAL_NOISE_SEED) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The fixed validation set of a trial on ``device``: (input, clean target) per batch, made once per trial.

    Denoising kinds get noise of ``cfg.noise_protocol`` at sigma ``cfg.val_noise_sigma`` (on the [0, 1] scale;
    :func:`tuneae.noise.add_noise`), drawn per batch in order from one CPU generator seeded with ``seed``, so the
    noisy set is the same on every device, in every epoch and in every reload that uses the same batching
    (:func:`eval_batch_size`). Validation images are always full and unaugmented.

    Args:
        batches: uint8 batches (B, 1, S, S) in [0, 255], as tensors, arrays or 1-tuples (a DataLoader of
            :func:`make_loader`).
        kind: the model kind.
        cfg: only ``val_noise_sigma`` and ``noise_protocol`` are read.
        device: where the batches go.
        seed: seed of the validation noise.
    Returns:
        ``[(x (B, 1, S, S), clean (B, 1, S, S)), ...]`` float32 in [0, 1] on ``device``.
    Raises:
        TypeError: a batch is not uint8 (from :func:`tuneae.data.to_float`).
        ValueError: a negative ``cfg.val_noise_sigma`` or an unknown ``cfg.noise_protocol`` for a denoising kind.
    """
    gen = torch.Generator().manual_seed(seed)
    out = []
    for batch in batches:
        clean = to_float(batch[0] if isinstance(batch, (tuple, list)) else batch)
        x = add_noise(clean, cfg.val_noise_sigma, cfg.noise_protocol, gen) if kind in DENOISING else clean
        out.append((x.to(device), clean.to(device)))
    return out


def psnr_per_image(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio per image, data range 1: 10 * log10(1 / MSE_i).

    Args:
        recon, target: (B, C, H, W) in [0, 1].
    Returns:
        (B,) PSNR in dB (MSE floored at 1e-10, i.e. at most 100 dB).
    """
    mse = (recon - target).pow(2).flatten(1).mean(1).clamp_min(1e-10)  # (B,)
    return 10.0 * torch.log10(1.0 / mse)


@torch.no_grad()
def evaluate_batches(model: Autoencoder, batches: list[tuple[torch.Tensor, torch.Tensor]],
                     with_ssim: bool = False) -> dict[str, float]:
    """Validation metrics over prepared batches (:func:`validation_batches`), in eval mode, fp32, no gradients.

    The VAE decodes its posterior mean (deterministic). Sums stay on the device; one synchronisation at the end.

    Args:
        model: the unwrapped model (not DDP), on the batches' device; left in eval mode.
        batches: ``[(x, clean), ...]`` (B, 1, S, S) in [0, 1].
    Returns:
        ``{"val/loss": the model's objective averaged over images (MSE per pixel, or nats per image for the VAE),
        "val/mse": MSE per pixel on the [0, 1] scale averaged over images, "val/psnr": mean of per-image PSNR in dB
        (see :func:`psnr_per_image`)}``, and with ``with_ssim`` "val/ssim": mean SSIM in [-1, 1] of the output
        (clipped to [0, 1]) against the clean image, as the report measures it (:func:`tuneae.metrics.ssim`, Wang
        et al. 2004 via scikit-image; images of at least 11 px), from the same forward pass.
    Raises:
        ZeroDivisionError: no batch.
    """
    model.eval()
    sums, n = None, 0
    outs, refs = [], []
    for x, clean in batches:
        loss, recon = model.objective(x, clean)
        if with_ssim:
            outs.append(recon.float().clamp(0, 1)[:, 0].cpu().numpy())
            refs.append(clean[:, 0].cpu().numpy())
        b = len(x)
        row = torch.stack([loss.double() * b, (recon - clean).pow(2).flatten(1).mean(1).double().sum(),
                           psnr_per_image(recon, clean).double().sum()])  # (3,)
        sums = row if sums is None else sums + row
        n += b
    if n == 0:
        raise ZeroDivisionError("no validation batch")
    loss_sum, mse_sum, psnr_sum = sums.tolist()
    out = {"val/loss": loss_sum / n, "val/mse": mse_sum / n, "val/psnr": psnr_sum / n}
    if with_ssim:
        out["val/ssim"] = float(ssim(np.concatenate(outs), np.concatenate(refs)).mean())
    return out


def evaluate(model: Autoencoder, loader: Iterable, device: torch.device | str, cfg: TrainConfig,
             seed: int = VAL_NOISE_SEED) -> dict[str, float]:
    """Validation metrics of ``model`` (on ``device``) over ``loader``'s uint8 batches, as every trial computes
    them: :func:`validation_batches` (noise seeded by ``seed``) then :func:`evaluate_batches`. Use batches of
    :func:`eval_batch_size` to reproduce a trial's reported metrics.

    Raises:
        ZeroDivisionError: no batch. TypeError: a batch is not uint8. ValueError: as :func:`validation_batches`.
    """
    return evaluate_batches(model, validation_batches(loader, model.cfg.kind, cfg, device, seed))


def make_loader(images: np.ndarray, batch_size: int, shuffle: bool, seed: int = 0) -> torch.utils.data.DataLoader:
    """A DataLoader over uint8 images held in memory (for evaluation outside a trial, e.g. the report).

    Args:
        images: (N, 1, S, S) uint8 (read-only arrays from the Ray object store are copied once here).
        batch_size: images per batch; the last batch may be smaller.
        shuffle: reshuffle each epoch with a generator seeded by ``seed``.
        seed: seed of the shuffling generator.
    Returns:
        A loader yielding 1-tuples ``(x,)`` with x (B, 1, S, S) uint8.
    Raises:
        ValueError: an empty image array, images that are not uint8, or a non-positive batch size.
    """
    from torch.utils.data import DataLoader, TensorDataset

    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be positive")
    tensor = images_on(images, torch.device("cpu"))  # writable copy
    return DataLoader(TensorDataset(tensor), batch_size=batch_size, shuffle=shuffle,
                      generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------------ the loop
def fit(model: Autoencoder, train_images: np.ndarray, val_images: np.ndarray, cfg: TrainConfig,
        device: torch.device | str = "cpu", on_epoch: Callable[[int, dict[str, float]], None] | None = None, *,
        optimizer: torch.optim.Optimizer | Recipe | None = None, start_epoch: int = 0, rank: int = 0,
        world_size: int = 1, wrap: Callable[[nn.Module], nn.Module] | None = None,
        val_ssim: bool = False) -> dict[str, float]:
    """Train ``model`` in place from epoch ``start_epoch + 1`` to ``cfg.epochs``: the loop of every trial.

    The recipe of ``cfg`` (:mod:`tuneae.recipe`: Adam or AdamW at ``cfg.lr``, an LR schedule over the whole budget
    stepped per optimisation step, a weight average that is what is validated, gradient clipping); precision and
    memory format from ``cfg`` (:func:`autocast_dtype`, :func:`memory_format`); data moved to ``device`` once
    (:func:`images_on`), batches by :func:`epoch_batches`, training crops of ``cfg.crop_size``
    (:mod:`tuneae.augment`), validation on full images in fp32 on a fixed set (:func:`validation_batches`, batches of
    :func:`eval_batch_size`). Each epoch reseeds its streams (:func:`stream_seed`), so a run resumed after epoch k
    with the recipe's state (:meth:`Recipe.state_dict`: optimizer, schedule, average) matches an uninterrupted one.
    Build the model with :func:`seeded_model` to seed the weights by the same rule.

    Args:
        model: moved to ``device`` and trained in place.
        train_images, val_images: (N, 1, S, S) uint8 in [0, 255], N >= 1 (train: >= 2 per rank).
        cfg: lr, epochs, batch_size, seed, noise (protocol and sigmas), crop_size, precision and memory format.
        device: e.g. ``"cpu"`` or ``"cuda"``.
        on_epoch: called after each epoch with (epoch starting at 1, metrics) on every rank (the Ray Train worker
            reports and checkpoints there).
        optimizer: a :class:`tuneae.recipe.Recipe` of ``model`` (e.g. restored from a checkpoint), or a bare
            optimizer over its parameters (constant LR and no average only, :func:`as_recipe`); default a new
            ``Recipe``. It is started here (:meth:`Recipe.start`), its state moved to ``device``; with a weight
            average the validated weights are the average's (``optimizer.validated``), the model keeps the raw ones.
        start_epoch: epochs already done (a restored checkpoint's epoch).
        rank, world_size: DDP rank and size (each rank trains on its own shard of every epoch).
        wrap: applied to the :class:`LossModule` (Ray Train's ``prepare_model`` wraps it in DDP).
        val_ssim: also measure ``val/ssim`` every epoch (:func:`evaluate_batches`; the final fit's learning curve).
    Returns:
        The last epoch's metrics: ``train/loss``, ``val/loss``, ``val/mse``, ``val/psnr`` (dB) (units as in
        :func:`train_one_epoch` and :func:`evaluate_batches`) and ``epoch``; ``{}`` when no epoch is left.
    Raises:
        FloatingPointError: the training loss became NaN or infinite.
        ValueError: invalid settings (:func:`check_train_config`), empty or non-uint8 images, or fewer than 2
            training images per rank.
    """
    device = torch.device(device)
    check_train_config(cfg, model.cfg)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: cuDNN times its kernels once, keeps the fastest
    layout = memory_format(cfg, model.cfg.kind)
    model.to(device, memory_format=layout)
    recipe = as_recipe(optimizer, model, cfg, device)
    train = images_on(train_images, device)
    steps = steps_per_epoch(len(train), cfg.batch_size, world_size)
    recipe.start(cfg.epochs * steps, start_epoch * steps, device, layout)
    loss_module = LossModule(model, autocast_dtype(cfg, device))
    loss_module = wrap(loss_module) if wrap is not None else loss_module
    val_np = np.asarray(val_images)
    bs = eval_batch_size(cfg.batch_size)
    val = validation_batches((images_on(val_np[i:i + bs], torch.device("cpu")) for i in range(0, len(val_np), bs)),
                             model.cfg.kind, cfg, device)
    metrics: dict[str, float] = {}
    for epoch in range(start_epoch + 1, cfg.epochs + 1):
        torch.manual_seed(stream_seed(cfg.seed, Seed.SAMPLING, epoch, rank))
        gen = torch.Generator(device=device).manual_seed(stream_seed(cfg.seed, Seed.NOISE, epoch, rank))
        batches = epoch_batches(len(train), cfg.batch_size, cfg.seed, epoch, rank, world_size, device)
        train_loss = train_one_epoch(loss_module, model.cfg.kind, train, batches, recipe, cfg, gen)
        metrics = {"train/loss": train_loss, **evaluate_batches(recipe.validated, val, val_ssim), "epoch": epoch}
        if on_epoch is not None:
            on_epoch(epoch, metrics)
    return metrics
