"""A final fit's record, typed: ``finalfit.json`` (:class:`FinalFits`), each kind's or baseline's fit
(:class:`FinalFit`) and each training seed (:class:`Seed`), with the one reader of the file."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tuneae.layout import FINALFIT_FILE
from tuneae.run.best import best_seed
from tuneae.run.errors import NUMBER, RunError, mapping, need


def over_seeds(values: list[float]) -> dict[str, float]:
    """Mean, sample standard deviation (n - 1; 0 for a single value), min, max and n of per-seed values (e.g. a
    final fit's val PSNR in dB per training seed).

    Raises:
        ValueError: no values.
    """
    if not values:
        raise ValueError("over_seeds: no values")
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "min": float(v.min()),
            "max": float(v.max()), "n": len(v)}


@dataclass(frozen=True)
class Seed:
    """One training seed of a final fit: its last epoch's validation metrics, learning curve and checkpoint."""

    seed: int
    """``train.seed`` of this run."""
    metrics: dict[str, float]
    """The last epoch's validation metrics (``val/mse``, ``val/psnr`` in dB, ``val/ssim``, ``val/loss``,
    ``train/loss``; those measured)."""
    checkpoint: str
    """Its checkpoint folder (relative to the experiment folder once recorded)."""
    epochs: int | None = None
    """The epoch budget it trained to."""
    history: tuple[dict[str, float], ...] = ()
    """One metrics dict per epoch, each with ``epoch``."""
    trained_epochs_now: int | None = None
    """Epochs trained by the call that recorded it (0: read back)."""
    train_s_now: float | None = None
    """Their wall seconds, validation passes included."""

    def to_json(self) -> dict[str, Any]:
        """The seed as written to ``finalfit.json`` (absent optional fields stay absent)."""
        out = {"seed": self.seed, "epochs": self.epochs, "metrics": dict(self.metrics),
               "history": [dict(h) for h in self.history], "checkpoint": self.checkpoint,
               "trained_epochs_now": self.trained_epochs_now, "train_s_now": self.train_s_now}
        return {k: v for k, v in out.items() if v is not None}

    @classmethod
    def from_json(cls, data: Any, where: str) -> Seed:
        """Read one seed; ``seed``, ``metrics`` and ``checkpoint`` are required.

        Raises:
            RunError: not an object, or a required field missing or of the wrong type (names ``where``).
        """
        d = mapping(data, where)
        history = need(d, "history", list, where, [])
        return cls(seed=need(d, "seed", int, where), metrics=dict(need(d, "metrics", dict, where)),
                   checkpoint=need(d, "checkpoint", str, where), epochs=need(d, "epochs", int, where, None),
                   history=tuple(mapping(h, f"{where}.history") for h in history),
                   trained_epochs_now=need(d, "trained_epochs_now", int, where, None),
                   train_s_now=need(d, "train_s_now", NUMBER, where, None))


@dataclass(frozen=True)
class FinalFit:
    """One fitted configuration of ``finalfit.json``: a kind's best trial, or a baseline trial, over seeds."""

    kind: str
    """The model kind."""
    source_trial: str | None
    """The search trial whose configuration was fitted."""
    model_config: dict[str, Any]
    train_config: dict[str, Any]
    """The training settings; ``epochs`` is the budget, ``seed`` None (each seed has its own)."""
    seeds: tuple[Seed, ...]
    over_seeds: dict[str, dict[str, float]]
    """Metric -> :func:`over_seeds` of the seeds' last-epoch values (``val/psnr`` and ``val/mse`` at least)."""
    best_seed: int
    """The seed with the lowest validation MSE (:func:`tuneae.run.best.best_seed`)."""
    best_checkpoint: str | None = None
    command: str | None = None
    """The call that fitted it."""
    device: str | None = None

    @property
    def epochs(self) -> int:
        """The epoch budget."""
        return int(self.train_config["epochs"])

    @property
    def best(self) -> Seed:
        """The :class:`Seed` named by ``best_seed``."""
        return next(s for s in self.seeds if s.seed == self.best_seed)

    def to_json(self) -> dict[str, Any]:
        """The entry as written to ``finalfit.json`` (``command`` / ``device`` only when recorded)."""
        out = {"kind": self.kind, "source_trial": self.source_trial, "model_config": self.model_config,
               "train_config": self.train_config, "seeds": [s.to_json() for s in self.seeds],
               "over_seeds": self.over_seeds, "best_seed": self.best_seed, "best_checkpoint": self.best_checkpoint}
        return {**out, **{k: getattr(self, k) for k in ("command", "device") if getattr(self, k) is not None}}

    @classmethod
    def from_json(cls, data: Any, where: str) -> FinalFit:
        """Read one entry of ``kinds`` or ``baselines``.

        Raises:
            RunError: not an object; ``kind``, ``train_config.epochs``, ``best_seed``, ``over_seeds`` ``val/psnr``
                and ``val/mse`` or ``seeds`` missing or of the wrong type; or ``best_seed`` not among the seeds
                (names ``where`` and the field).
        """
        d = mapping(data, where)
        train = need(d, "train_config", dict, where)
        need(train, "epochs", int, f"{where}.train_config")
        over = need(d, "over_seeds", dict, where)
        for metric in ("val/psnr", "val/mse"):
            need(over, metric, dict, f"{where}.over_seeds")
        seeds = tuple(Seed.from_json(s, f"{where}.seeds[{i}]") for i, s in enumerate(need(d, "seeds", list, where)))
        fit = cls(kind=need(d, "kind", str, where), source_trial=None if d.get("source_trial") is None
                  else str(d["source_trial"]), model_config=need(d, "model_config", dict, where, {}),
                  train_config=train, seeds=seeds, over_seeds=over, best_seed=need(d, "best_seed", int, where),
                  best_checkpoint=need(d, "best_checkpoint", str, where, None),
                  command=need(d, "command", str, where, None), device=need(d, "device", str, where, None))
        if not any(s.seed == fit.best_seed for s in seeds):
            raise RunError(f"{where}: field 'best_seed' {fit.best_seed} is not among its seeds "
                           f"{[s.seed for s in seeds]}")
        return fit

    @classmethod
    def of_seeds(cls, kind: str, source_trial: str, model_config: dict[str, Any], train_config: dict[str, Any],
                 seeds: list[Seed], metrics: tuple[str, ...], command: str | None = None,
                 device: str | None = None) -> FinalFit:
        """A new entry from its trained seeds: the spread of ``metrics`` over them and the best seed.

        Args:
            kind, source_trial, model_config, train_config: as the fields.
            seeds: the trained seeds (checkpoints as they are to be recorded).
            metrics: the metrics to summarise, each where every seed has it.
            command, device: as the fields.
        Raises:
            RunError: no seed has a finite validation MSE.
        """
        best = best_seed(seeds)
        if best is None:
            raise RunError(f"{kind}: no seed of the final fit has a finite val/mse")
        return cls(kind=kind, source_trial=source_trial, model_config=model_config, train_config=train_config,
                   seeds=tuple(seeds),
                   over_seeds={k: over_seeds([s.metrics[k] for s in seeds]) for k in metrics
                               if all(k in s.metrics for s in seeds)},
                   best_seed=best.seed, best_checkpoint=best.checkpoint, command=command, device=device)


@dataclass(frozen=True)
class FinalFits:
    """A results folder's ``finalfit.json``: every fitted kind and baseline, and the calls that fitted them."""

    search: str | None = None
    """The search's name."""
    kinds: dict[str, FinalFit] = field(default_factory=dict)
    """Kind -> its best trial's fit."""
    baselines: dict[str, FinalFit] = field(default_factory=dict)
    """``<kind>-trial-<id>`` -> that trial's fit with the same seeds."""
    commands: tuple[str, ...] = ()
    """The calls, in the order of their last run."""
    command: str | None = None
    """The last call."""
    device: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The file's contents."""
        return {"search": self.search, "command": self.command, "commands": list(self.commands),
                "device": self.device, "kinds": {k: f.to_json() for k, f in self.kinds.items()},
                "baselines": {k: f.to_json() for k, f in self.baselines.items()}}

    @classmethod
    def from_json(cls, data: Any, where: str = FINALFIT_FILE) -> FinalFits:
        """Read ``finalfit.json``'s contents.

        Raises:
            RunError: not a final fit's record (no ``kinds`` / ``baselines`` objects) or an entry that
                :meth:`FinalFit.from_json` refuses (names the file and the field).
        """
        d = mapping(data, where)
        kinds, baselines = need(d, "kinds", dict, where, {}), need(d, "baselines", dict, where, {})
        command = need(d, "command", str, where, None)
        commands = need(d, "commands", list, where, [command] if command else [])
        return cls(search=need(d, "search", str, where, None),
                   kinds={k: FinalFit.from_json(v, f"{where}: kinds.{k}") for k, v in kinds.items()},
                   baselines={k: FinalFit.from_json(v, f"{where}: baselines.{k}") for k, v in baselines.items()},
                   commands=tuple(str(c) for c in commands), command=command,
                   device=need(d, "device", str, where, None))

    def every(self) -> dict[str, FinalFit]:
        """The kinds' and the baselines' entries together, kinds first."""
        return {**self.kinds, **self.baselines}


def read_finalfit(path: Path, name: str | None = None) -> FinalFits | None:
    """Read and check a results folder's ``finalfit.json``.

    Args:
        path: the file.
        name: the search's name, when the record must belong to it.
    Returns:
        The record, or None when there is no file.
    Raises:
        RunError: the file is unreadable, not JSON, not a final fit's record, has a bad entry, or is of another
            search than ``name`` (names the file and what is wrong).
    """
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunError(f"{path} is not readable JSON ({exc})") from exc
    fits = FinalFits.from_json(raw, str(path))
    if name is not None and fits.search not in (None, name):
        raise RunError(f"{path} is the final fit of search {fits.search!r}, not {name!r}")
    return fits
