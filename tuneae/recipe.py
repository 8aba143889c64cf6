"""The training recipe of a trial: optimizer, learning-rate schedule, weight average and gradient clipping, and their
state for an exact resume. Pure PyTorch, no Ray.

The choices are ``TrainConfig`` fields, searched like any hyperparameter; the defaults (Adam, constant LR, no
decay, no average, no clipping) are the seed project's recipe.

- ``optimizer``: ``adam`` (Kingma & Ba 2015), where ``weight_decay`` is an L2 penalty added to the gradient, or
  ``adamw`` (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization"), where the weights shrink by
  ``lr * weight_decay`` per step apart from the gradient. Decay applies to conv and linear weights only; biases and
  normalisation parameters (1-D tensors) are left out, the common practice (e.g. timm's ``param_groups_weight_decay``).
- ``lr_schedule``, stepped once per optimisation step over the whole budget, ``epochs * steps_per_epoch`` steps:
  ``constant``; ``cosine``, a linear warm-up over ``warmup_fraction`` of the steps then a cosine decay towards 0
  (SGDR without restarts, Loshchilov & Hutter 2017); ``onecycle`` (Smith & Topin 2019, "Super-Convergence",
  ``torch.optim.lr_scheduler.OneCycleLR`` with its defaults: from lr / 25 up to ``lr`` over 30 % of the steps, then
  down to lr / 2.5e5 by cosine, Adam's beta1 cycled between 0.95 and 0.85).
- ``ema_decay``: an exponential moving average of the weights (Polyak & Juditsky 1992 averaging, exponential form),
  BatchNorm buffers included, kept in a ``torch.optim.swa_utils.AveragedModel`` and updated after every step by
  ``get_ema_multi_avg_fn`` at decay ``min(ema_decay, (1 + t) / (10 + t))`` after t earlier updates (the warm-up of
  TensorFlow's ``ExponentialMovingAverage(num_updates=...)``): without it the average of a decay of 0.999 would still
  be mostly the random initial weights at the first ASHA rung. The average is what is validated and checkpointed.
- ``grad_clip``: the global L2 norm of the gradients clipped to this value (``torch.nn.utils.clip_grad_norm_``,
  Pascanu et al. 2013).

A :class:`Recipe` holds the optimizer, the scheduler and the average; its :meth:`Recipe.state_dict` is a trial's
resume state (with the average on, the raw weights too, since a checkpoint's model weights are the average's).
"""
from __future__ import annotations

import copy
import math
import warnings

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from tuneae.config import TrainConfig

OPTIMIZERS = ("adam", "adamw")
"""Values of ``TrainConfig.optimizer``."""
LR_SCHEDULES = ("constant", "cosine", "onecycle")
"""Values of ``TrainConfig.lr_schedule``."""
EMA_WARMUP = 10
"""The decay of the weight average after t updates is at most ``(1 + t) / (EMA_WARMUP + t)``."""


def make_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device | str) -> torch.optim.Optimizer:
    """``cfg.optimizer`` at ``cfg.lr`` over ``model``'s parameters; the fused kernel on CUDA.

    With ``cfg.weight_decay > 0`` two parameter groups: tensors of 2 or more dimensions (conv and linear weights)
    decay, 1-D ones (biases, normalisation scales and shifts) do not; with 0 a single group (the seed recipe's).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    groups: list[dict] = [{"params": params}]
    if cfg.weight_decay > 0:
        groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
                  {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    kind = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return kind(groups, lr=cfg.lr, weight_decay=0.0, fused=torch.device(device).type == "cuda")


def optimizer_to(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Move the optimizer's state tensors (Adam's moments) to ``device``, e.g. after a restore on the CPU.

    Adam's ``step`` count stays on the CPU unless the group is fused or capturable, where torch keeps it beside
    the parameters (``torch.optim.Adam``'s own placement rule).
    """
    for group in optimizer.param_groups:
        step_too = bool(group.get("fused") or group.get("capturable"))
        for p in group["params"]:
            state = optimizer.state.get(p, {})
            for k, v in state.items():
                if torch.is_tensor(v) and (k != "step" or step_too):
                    state[k] = v.to(device)


def cosine_factor(step: int, total: int, warmup: int) -> float:
    """LR multiplier of ``cosine`` for 0-based optimisation step ``step`` of ``total``, ``warmup`` of them rising.

    ``(step + 1) / warmup`` during the warm-up, then ``(1 + cos(pi * (step - warmup) / (total - warmup))) / 2``: 1 at
    the first step after the warm-up, above 0 at the last step (0 once ``step >= total``).
    """
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int) -> LRScheduler | None:
    """The LR schedule of ``cfg.lr_schedule`` over ``total_steps`` optimisation steps (None for ``constant``).

    Building one sets the optimizer's LR to the schedule's first value.

    Raises:
        ValueError: an unknown schedule, or ``total_steps < 1``.
    """
    if total_steps < 1:
        raise ValueError(f"a schedule needs at least one step, got total_steps={total_steps}")
    if cfg.lr_schedule == "constant":
        return None
    if cfg.lr_schedule == "cosine":
        warmup = round(cfg.warmup_fraction * total_steps)
        return LambdaLR(optimizer, lambda step: cosine_factor(step, total_steps, warmup))
    if cfg.lr_schedule == "onecycle":
        return OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=total_steps)
    raise ValueError(f"train.lr_schedule={cfg.lr_schedule!r}: choose one of {', '.join(LR_SCHEDULES)}")


class Recipe:
    """A trial's optimisation state beside its raw weights: optimizer, LR scheduler, weight average.

    Built before training (and before a restore, :func:`tuneae.checkpoint.restore_checkpoint`); :meth:`start`, called
    by :func:`tuneae.train.fit` once the budget in steps is known, builds the scheduler and applies a restored state.

    Args:
        model: the unwrapped model (not DDP) whose parameters are optimised.
        cfg: the trial's training settings.
        device: the training device (picks the fused optimizer on CUDA).
        optimizer: an optimizer over ``model``'s parameters; default :func:`make_optimizer`.
    """

    def __init__(self, model: nn.Module, cfg: TrainConfig, device: torch.device | str,
                 optimizer: torch.optim.Optimizer | None = None):
        self.model, self.cfg = model, cfg
        self.optimizer = optimizer if optimizer is not None else make_optimizer(model, cfg, device)
        self.scheduler: LRScheduler | None = None
        self.total_steps = 0
        """The budget the schedule spans, in optimisation steps (set by :meth:`start`)."""
        self.ema = (AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
                    if cfg.ema_decay > 0 else None)
        self.ema_updates = 0
        """Updates of the average so far (a host-side count: the decay's warm-up needs no device read)."""
        self._pending: dict | None = None
        self._pairs: list[tuple[list[torch.Tensor], list[torch.Tensor]]] = []

    @property
    def validated(self) -> nn.Module:
        """The weights that are validated and checkpointed: the average's module when on, else the model."""
        return self.ema.module if self.ema is not None else self.model

    def start(self, total_steps: int, done_steps: int, device: torch.device, memory_format: torch.memory_format
              = torch.preserve_format) -> None:
        """Ready the recipe for training on ``device``: build the schedule over ``total_steps`` steps, apply the
        state of :meth:`load_state_dict` (else move the schedule ``done_steps`` steps on, for a run resumed from
        weights alone, and start the average at the current weights), move state to ``device``. A recipe started
        before and not restored since continues as it stands (``fit`` called again on the same run).

        Args:
            total_steps: the budget in optimisation steps, ``epochs * steps_per_epoch``.
            done_steps: steps already taken (``start_epoch * steps_per_epoch``).
            device: the model's device; ``memory_format`` its layout (for the average's copy).
        Raises:
            ValueError: a restored schedule that spans another number of steps (``train.epochs``, the batch size or
                the training images changed since it was saved): it cannot continue here.
        """
        pending, self._pending = self._pending, None
        continuing = pending is None and self.total_steps > 0
        saved_total = (pending or {}).get("total_steps") or self.total_steps or total_steps
        if self.cfg.lr_schedule != "constant" and saved_total != total_steps:
            raise ValueError(f"train.lr_schedule={self.cfg.lr_schedule!r}: the schedule to continue spans "
                             f"{saved_total} steps, this run's {total_steps} (train.epochs, train.batch_size or the "
                             f"training images changed); start afresh or keep the budget")
        self.total_steps = total_steps
        if self.ema is not None:
            self.ema.to(device, memory_format=memory_format)
            if not continuing and (pending is None or pending.get("ema") is None):
                self.ema.module.load_state_dict(self.model.state_dict())
                self.ema_updates = 0
            self._pairs = _average_pairs(self.ema.module, self.model)
        if not continuing:
            self._schedule(pending, done_steps)
        optimizer_to(self.optimizer, device)

    def _schedule(self, pending: dict | None, done_steps: int) -> None:
        """Build the scheduler over ``self.total_steps``, then apply ``pending`` or move ``done_steps`` on."""
        self.scheduler = make_scheduler(self.optimizer, self.cfg, self.total_steps)
        if pending is not None:
            self.optimizer.load_state_dict(pending["optimizer"])
        if self.scheduler is not None and pending is not None and pending.get("scheduler") is not None:
            self.scheduler.load_state_dict(pending["scheduler"])
        elif self.scheduler is not None and done_steps:
            with warnings.catch_warnings():  # stepping a schedule with no optimizer step is the point here
                warnings.simplefilter("ignore", UserWarning)
                for _ in range(min(done_steps, self.total_steps - 1)):  # OneCycleLR refuses a step past its end
                    self.scheduler.step()

    def step(self, loss: torch.Tensor) -> None:
        """One optimisation step on ``loss``: gradients, clipping, the optimizer, the schedule, the average.

        No host synchronisation (the clipping scales on the device).
        """
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        if self.ema is not None:
            self.update_average()

    @torch.no_grad()
    def update_average(self) -> None:
        """Move the average towards the model by ``get_ema_multi_avg_fn`` at the warmed-up decay (module docstring);
        integer buffers (BatchNorm's batch count) are copied."""
        decay = min(self.cfg.ema_decay, (1 + self.ema_updates) / (EMA_WARMUP + self.ema_updates))
        average = get_ema_multi_avg_fn(decay)
        for ema_tensors, model_tensors in self._pairs:
            if ema_tensors[0].is_floating_point():
                average(ema_tensors, model_tensors, None)
            else:
                torch._foreach_copy_(ema_tensors, model_tensors)
        self.ema_updates += 1

    def state_dict(self) -> dict:
        """The resume state: ``optimizer`` and ``scheduler`` (None for ``constant``) state dicts, ``total_steps``
        (the schedule's span) and, with the average on, ``model`` (the raw weights), ``ema`` (the
        ``AveragedModel``'s) and ``ema_updates``."""
        state = {"optimizer": self.optimizer.state_dict(), "total_steps": self.total_steps,
                 "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None}
        if self.ema is not None:
            self.ema.n_averaged.fill_(self.ema_updates)
            state.update(model=_cpu(self.model.state_dict()), ema=_cpu(self.ema.state_dict()),
                         ema_updates=self.ema_updates)
        return state

    def load_state_dict(self, state: dict) -> None:
        """Take a resume state (:meth:`state_dict`, or a bare optimizer state dict of older checkpoints): raw
        weights and average now, optimizer and scheduler at :meth:`start` (after the scheduler is built, which
        resets the LR).

        Raises:
            KeyError: a state that is neither.
        """
        state = resume_parts(state)
        if state.get("model") is not None:
            self.model.load_state_dict(state["model"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
            self.ema_updates = int(state.get("ema_updates", int(self.ema.n_averaged)))
        self._pending = state


def resume_parts(state: dict) -> dict:
    """A resume state in :meth:`Recipe.state_dict`'s form; a bare optimizer state dict (``state`` and
    ``param_groups``, as resume checkpoints held before recipes) becomes its ``optimizer`` part.

    Raises:
        KeyError: neither form.
    """
    if "param_groups" in state:
        return {"optimizer": state}
    if "optimizer" not in state:
        raise KeyError(f"not a resume state: keys {sorted(state)}")
    return state


def steps_per_epoch(n: int, batch_size: int, world_size: int = 1) -> int:
    """Optimisation steps of one epoch on each rank: ``len(tuneae.train.epoch_batches(n, batch_size, ...))``.

    Each rank takes ``n // world_size`` images in batches of ``batch_size``; a last batch of a single image is dropped
    when ``batch_size > 1`` (BatchNorm), the same every epoch.
    """
    full, rest = divmod(n // world_size, batch_size)
    return full + int(rest > 1 or (rest == 1 and batch_size == 1))


def _average_pairs(average: nn.Module, model: nn.Module) -> list[tuple[list[torch.Tensor], list[torch.Tensor]]]:
    """(average's tensors, model's tensors) grouped by dtype, parameters and buffers, for ``torch._foreach_*``."""
    groups: dict[torch.dtype, tuple[list, list]] = {}
    for a, m in zip([*average.parameters(), *average.buffers()], [*model.parameters(), *model.buffers()],
                    strict=True):
        pair = groups.setdefault(a.dtype, ([], []))
        pair[0].append(a.detach())
        pair[1].append(m.detach())
    return list(groups.values())


def _cpu(state: dict) -> dict:
    """A state dict's tensors copied to the CPU (what a checkpoint stores)."""
    return {k: v.detach().cpu() if torch.is_tensor(v) else copy.deepcopy(v) for k, v in state.items()}
