"""Final fit: the best configuration of each kind, chosen on validation by a finished search, trained again for the
full epoch budget with several seeds; mean and spread over seeds, and the best seed's checkpoint for the report.

    python -m tuneae.finalfit results/<name> [--seeds 3] [--epochs N] [--epochs N KIND=N ...] [--model KIND ...]
                              [--device auto]
                              [--baseline recipe | TRIAL_ID ...]

The search picks each kind's best trial by ``val/mse`` (:func:`tuneae.run.best.best_trial`); its checkpoint stores the
full configuration (data, model, training), which is trained again from scratch with ``train.seed`` = s + 1, ...,
s + N, where s is the trial's own seed (weights, shuffling, noise and crops all follow the seed,
:mod:`tuneae.seeding`): the search's own run, whose validation score chose the configuration, is not among them, so
the mean over seeds carries no winner's curse. The budget is the largest ``train.epochs``
the search allowed that kind (ASHA may have stopped the search's trials earlier), or ``--epochs`` (one number for
every kind, and ``KIND=N`` for one kind and its baselines, e.g. ``--epochs 40 dunet=20``). Selection and
every number here use the validation split only; the test split stays for the report.

``--baseline`` fits other trials' configurations (from ``trials.csv``) with the same seeds, so the report
(``python -m tuneae.report``) can compare the kind's best with them seed by seed and paired over test images; a
baseline is never reported as the kind's model. ``--baseline recipe`` means each fitted kind's default-recipe trial
(the seed project's recipe, the search's first trial), except where the kind's best trial is that trial or repeats
its configuration (said so; the report then shows the search found nothing better).

Files (the run layout of :mod:`tuneae.layout`)::

    <experiment>/finalfit/<kind>/seed-<s>/model.pt, optimizer.pt, history.json   checkpoint every epoch (resume)
    <experiment>/finalfit/<kind>-trial-<id>/seed-<s>/...                          the same for a baseline
    <results>/finalfit.json      "kinds" and "baselines": config, per-seed metrics and learning curves, mean / sd /
                                 min / max, the best seed and its checkpoint (relative to the experiment folder),
                                 and the command that fitted it; "commands": the calls, in the order of their
                                 last run (a call with --model keeps the entries it does not fit again; an entry
                                 is dropped when its refit starts, so an interrupted refit leaves none stale)
    <results>/finalfit.md        the table

Resumable like the search: run the same command again; finished seeds are read back, an interrupted seed continues
from its last epoch with its optimizer state (the same result as an uninterrupted run, :func:`tuneae.train.fit`).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from tuneae.checkpoint import CheckpointError, configs_of, load_checkpoint, restore_checkpoint, save_checkpoint
from tuneae.config import DataConfig, ModelConfig, TrainConfig
from tuneae.data import Splits
from tuneae.files import atomic_write
from tuneae.layout import FINALFIT_FILE, FINALFIT_TABLE, RunLayout, portable_command
from tuneae.models import DENOISING
from tuneae.recipe import Recipe
from tuneae.run.errors import RunError
from tuneae.run.find import Trial, find_run
from tuneae.run.fits import FinalFit, FinalFits, Seed, read_finalfit
from tuneae.run.reload import data_config, load_data, load_model
from tuneae.run.study import read_study, recipe_trials, same_as_recipe
from tuneae.run.summary import Summary
from tuneae.train import fit, seeded_model

RESULT_FILE, TABLE_FILE = FINALFIT_FILE, FINALFIT_TABLE
"""The final fit's files in the results folder (:mod:`tuneae.layout`)."""
SSIM_MIN_SIZE = 11
"""Smallest image side (pixels) with a validation SSIM per epoch (SSIM's 11 x 11 window); smaller test images
get none."""
HISTORY_FILE = "history.json"
"""Per-seed learning curve (one metrics dict per epoch) beside the checkpoint."""
SUMMARY_METRICS = ("val/mse", "val/psnr", "val/ssim", "val/loss", "train/loss")
"""Metrics summarised over seeds."""


@dataclass(frozen=True)
class FitPlan:
    """One final fit: a trial's configs with the epoch budget set (the kind's best trial, or a baseline)."""

    kind: str
    trial_id: str
    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    label: str
    """Its key in ``finalfit.json`` and its checkpoint folder: the kind for a best trial, ``<kind>-trial-<id>`` for
    a baseline."""


def _baseline_trials(layout: RunLayout, trial_ids: list[str]) -> dict[str, tuple[str, Path]]:
    """trial id -> (kind, checkpoint folder) of each baseline, from the results folder's ``trials.csv``.

    Raises:
        RunError: no trials.csv, a trial id it does not list, or a trial without a checkpoint (names them).
    """
    if not trial_ids:
        return {}
    try:
        with layout.trials_file.open() as f:
            rows = {r["trial_id"]: r for r in csv.DictReader(f)}
    except OSError as exc:
        raise RunError(f"--baseline needs the search's {layout.trials_file}: {exc}") from exc
    out = {}
    for tid in trial_ids:
        row = rows.get(tid)
        if row is None:
            raise RunError(f"--baseline {tid}: no such trial in {layout.trials_file} (trials: {sorted(rows)})")
        ckpt = layout.checkpoint(row.get("checkpoint_path") or "")
        if not row.get("checkpoint_path") or not (ckpt / "model.pt").is_file():
            raise RunError(f"--baseline {tid}: the trial has no checkpoint ({ckpt})")
        out[tid] = (row["model"], ckpt)
    return out


RECIPE_BASELINE = "recipe"
"""The ``--baseline`` value that stands for each fitted kind's default-recipe trial (:func:`recipe_baselines`)."""


def recipe_baselines(layout: RunLayout, best: dict[str, str]) -> list[str]:
    """The default-recipe trial of each kind in ``best``, to fit as its baseline (printed: a kind whose best trial
    is that trial, or repeats its configuration, gets none, since the fit would repeat the kind's own).

    Args:
        layout: the run's layout (its Optuna study file records which trial ran the recipe:
            :func:`tuneae.run.study.recipe_trials`).
        best: kind -> the Tune trial id of its best trial.
    Returns:
        Trial ids, one per kind that gets a baseline, in ``best``'s order.
    Raises:
        RunError: no study file, or no study for a kind in ``best`` (names the file).
    """
    try:
        studies = read_study(layout.study_file, list(best), importances=False)
    except (FileNotFoundError, KeyError) as exc:
        raise RunError(f"--baseline {RECIPE_BASELINE} needs the search's Optuna study: {exc}") from exc
    recipe, out = recipe_trials(studies), []
    for kind, tid in best.items():
        why = same_as_recipe(studies[kind], tid, recipe.get(kind))
        if why or not recipe.get(kind):
            print(f"[finalfit] {kind}: no default-recipe baseline: {why or 'its study has no trial'}", flush=True)
        else:
            out.append(recipe[kind])
    return out


def epoch_budget(summary: Summary | None, kind: str, train: TrainConfig) -> int:
    """The epoch budget of a kind's final fit by default.

    Args:
        summary: the search's summary (None for a bare experiment folder).
        kind: the model kind.
        train: the best trial's training settings.
    Returns:
        The largest ``train.epochs`` in the kind's searched space, else the trial's own ``train.epochs``.
    """
    choices = (summary.space(kind) if summary else {}).get("train.epochs") or [train.epochs]
    return max(int(e) for e in choices)


def parse_epochs(values: list[str] | None) -> dict[str | None, int]:
    """``--epochs`` values -> {None: budget for every kind, kind: its budget}; ``{}`` when not given.

    Args:
        values: e.g. ``["40", "dunet=20"]``: a bare number for every kind, ``KIND=N`` for one kind (and its
            baselines).
    Raises:
        ValueError: a value that is neither, a number below 1, or a kind or the default given twice (names it).
    """
    out: dict[str | None, int] = {}
    for v in values or ():
        kind, _, n = v.rpartition("=")
        key = kind or None
        try:
            budget = int(n)
        except ValueError:
            raise ValueError(f"--epochs {v!r}: expected N or KIND=N with N an integer >= 1") from None
        if budget < 1 or key in out or (kind == "" and "=" in v):
            raise ValueError(f"--epochs {v!r}: N must be >= 1 and each kind (and the bare default) given once")
        out[key] = budget
    return out


def plan(results: str | Path, kinds: list[str] | None = None, epochs: int | dict[str | None, int] | None = None,
         experiment: str | None = None, data: str | None = None,
         baselines: list[str] | None = None) -> tuple[RunLayout, list[FitPlan], Splits]:
    """Read each kind's best trial of a finished search (and any baseline trials), turn each into a
    :class:`FitPlan` and load their data.

    Args:
        results: ``results/<name>`` with ``summary.json`` (or a bare experiment folder).
        kinds: the kinds to fit (default: every kind with a best trial).
        epochs: the epoch budget, or {None: budget, kind: budget} (:func:`parse_epochs`); a kind without one gets
            :func:`epoch_budget`.
        experiment: the experiment folder when it moved since the search.
        data: a data source overriding the checkpoints' (as the report's ``--data``).
        baselines: trial ids (``trials.csv``) whose configurations are fitted with the same seeds, to compare with
            their kind's best; :data:`RECIPE_BASELINE` stands for each fitted kind's default-recipe trial
            (:func:`recipe_baselines`).
    Returns:
        (the run's layout, one plan per kind in search order then one per baseline, the splits: uint8
        (N, 1, S, S) arrays in [0, 255]).
    Raises:
        RunError: no such run, no best trial, a missing or unreadable checkpoint, a kind asked for that has no
            best trial, or data that cannot be loaded or splits differently from the search's (the rules of
            :func:`tuneae.run.reload.load_data`, shared with the report).
    """
    run = find_run(results, experiment, final_fit=False)  # the search's own best trials, never an earlier fit
    missing = sorted(set(kinds or ()) - set(run.trials))
    if missing:
        raise RunError(f"{results}: no best trial for {missing}; have {sorted(run.trials)}")
    budgets = epochs if isinstance(epochs, dict) else ({} if epochs is None else {None: epochs})
    unknown = sorted(k for k in budgets if k is not None and k not in run.trials)
    if unknown:
        raise RunError(f"--epochs: no best trial for {unknown}; have {sorted(run.trials)}")
    todo = [(kind, trial, kind) for kind, trial in run.trials.items() if not kinds or kind in kinds]
    ids = [b for b in baselines or () if b != RECIPE_BASELINE]
    if RECIPE_BASELINE in (baselines or ()):
        ids += [t for t in recipe_baselines(run.layout, {k: trial.trial_id for k, trial, _ in todo}) if t not in ids]
    for tid, (kind, ckpt) in _baseline_trials(run.layout, ids).items():
        todo.append((kind, Trial(kind, tid, ckpt, {}), f"{kind}-trial-{tid}"))
    plans, models = [], {}
    for kind, trial, label in todo:
        models[label] = load_model(trial)
        payload = models[label][1]
        _, model, train = configs_of(payload)
        budget = budgets.get(kind, budgets.get(None)) or epoch_budget(run.summary, kind, train)
        plans.append(FitPlan(kind, trial.trial_id, data_config(payload, run, data), model,
                             replace(train, epochs=budget), label))
    return run.layout, plans, load_data(models, run, data)


def _read_history(folder: Path, upto: int, last: dict[str, float]) -> list[dict[str, float]]:
    """The learning curve saved beside a checkpoint of epoch ``upto``; the checkpoint's metrics fill a last epoch
    that a crash kept out of the file."""
    try:
        history = json.loads((folder / HISTORY_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        history = []
    history = [h for h in history if h.get("epoch", 0) <= upto]
    if upto and (not history or history[-1].get("epoch") != upto):
        history.append({**last, "epoch": upto})
    return history


def fit_seed(p: FitPlan, seed: int, splits: Splits, folder: Path, device: str) -> Seed:
    """Train (or resume, or read back) one seed of one plan; a checkpoint with optimizer state every epoch.

    Args:
        p: the plan; its ``train.epochs`` is the budget.
        seed: ``train.seed`` of this run.
        splits: :class:`tuneae.data.Splits` of ``p.data`` (uint8 train / val arrays).
        folder: this seed's checkpoint folder.
        device: ``cpu``, ``cuda``, ...
    Returns:
        The seed: its last epoch's metrics (``SUMMARY_METRICS`` measured; PSNR in dB), its history (metrics per
        epoch, with ``val/ssim`` (:func:`tuneae.train.evaluate_batches`, images of at least ``SSIM_MIN_SIZE`` px)
        for the epochs this code trained; a seed resumed from an older fit lacks it for its earlier epochs), its
        checkpoint folder (absolute), and the epochs trained by this call with their wall seconds, validation
        passes included (0 for a seed read back, the remaining epochs for one resumed).
    Raises:
        CheckpointError: the folder holds a checkpoint of another configuration, or of more epochs than the budget
            (names the folder).
        FloatingPointError: the training loss diverged.
    """
    cfg = replace(p.train, seed=seed)
    model = seeded_model(p.model, cfg)
    optimizer = Recipe(model, cfg, device)  # optimizer, LR schedule and weight average (tuneae.recipe)
    start, history, last = 0, [], {}
    if (folder / "model.pt").is_file():
        _, payload = load_checkpoint(folder)
        stored = TrainConfig(**payload["train_config"])
        if replace(stored, epochs=cfg.epochs) != cfg or payload["model_config"] != asdict(p.model):
            raise CheckpointError(f"{folder} holds a final fit of another configuration; move it away or use a "
                                  f"fresh experiment folder")
        start, _ = restore_checkpoint(folder, model, optimizer)
        if start > cfg.epochs:
            raise CheckpointError(f"{folder} holds {start} trained epochs, more than the budget of {cfg.epochs}; "
                                  f"give --epochs {start} or more, or move the folder away")
        last = dict(payload["metrics"])
        history = _read_history(folder, start, last)

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        save_checkpoint(folder, model, p.data, cfg, epoch, metrics, optimizer)
        history.append({**metrics, "epoch": epoch})
        atomic_write(folder / HISTORY_FILE, json.dumps(history, indent=1) + "\n")
        print(f"[finalfit] {p.label} seed {seed} epoch {epoch}/{cfg.epochs}: "
              f"val/psnr {metrics['val/psnr']:.2f} dB",
              flush=True)

    started = time.time()
    if start < cfg.epochs:
        fit(model, splits.train, splits.val, cfg, device, on_epoch, optimizer=optimizer, start_epoch=start,
            val_ssim=p.model.image_size >= SSIM_MIN_SIZE)
        last = {k: v for k, v in history[-1].items() if k != "epoch"}
    return Seed(seed=seed, epochs=cfg.epochs, metrics={k: last[k] for k in SUMMARY_METRICS if k in last},
                history=tuple(history), checkpoint=str(folder), trained_epochs_now=cfg.epochs - start,
                train_s_now=round(time.time() - started, 1))


def summarize(p: FitPlan, seeds: list[Seed], layout: RunLayout, command: str | None = None,
              device: str | None = None) -> FinalFit:
    """One entry of ``finalfit.json``: the plan's configs, its seeds (checkpoints relative to the experiment
    folder), the spread of ``SUMMARY_METRICS`` over seeds and the best seed (:func:`tuneae.run.best.best_seed`).

    Args:
        p: the plan fitted.
        seeds: :func:`fit_seed`'s results, one per seed.
        layout: the run's layout (checkpoints are recorded relative to its experiment folder).
        command, device: the call that fitted it and its device.
    Returns:
        The entry.
    Raises:
        RunError: no seed has a finite validation MSE.
    """
    seeds = [replace(s, checkpoint=layout.relative_checkpoint(str(Path(s.checkpoint).resolve()))) for s in seeds]
    return FinalFit.of_seeds(p.kind, p.trial_id, asdict(p.model), {**asdict(p.train), "seed": None}, seeds,
                             SUMMARY_METRICS, command, device)


def read_earlier(path: Path, name: str) -> FinalFits:
    """An existing ``finalfit.json``, whose kinds and baselines a new call keeps unless it fits them again (a call
    with ``--model vae`` adds the VAE beside the AE fitted before, it does not drop it).

    Args:
        path: the results folder's ``finalfit.json``.
        name: the search's name (``layout.name``).
    Returns:
        Its record, or an empty one when there is no such file.
    Raises:
        RunError: the file is unreadable, not a final fit's, of another search, or an entry lacks a field the
            table needs (names the file, the entry and what is wrong); nothing is trained, and the file is left as
            it is.
    """
    try:
        earlier = read_finalfit(path, name)
    except RunError as exc:
        raise RunError(f"{exc}; move the file away (or fix it) to start the final fit's record afresh") from exc
    return earlier if earlier is not None else FinalFits(search=name)


def table(kinds: dict[str, FinalFit]) -> str:
    """The markdown table of ``finalfit.json``.

    Args:
        kinds: label (kind or baseline) -> its fit.
    Returns:
        The table (val PSNR in dB, MSE and SSIM where the fit measured it, "-" if not: mean +- sd over seeds; the
        best seed) and a note on what the validation metrics measure, as markdown.
    """
    lines = ["| model | seeds | epochs | val PSNR (dB), mean +- sd | min - max | val MSE, mean +- sd | "
             "val SSIM, mean +- sd | best seed |", "|---|---|---|---|---|---|---|---|"]
    for kind, k in kinds.items():
        ps, ms = k.over_seeds["val/psnr"], k.over_seeds["val/mse"]
        ss = k.over_seeds.get("val/ssim")
        lines.append(f"| {kind} | {ps['n']} | {k.epochs} | {ps['mean']:.2f} +- {ps['sd']:.2f} | "
                     f"{ps['min']:.2f} - {ps['max']:.2f} | {ms['mean']:.5f} +- {ms['sd']:.5f} | "
                     + (f"{ss['mean']:.3f} +- {ss['sd']:.3f}" if ss else "-") + f" | {k.best_seed} |")
    noisy = sorted({f"{k.kind} at sigma {k.train_config.get('val_noise_sigma', 0):g}" for k in kinds.values()
                    if k.kind in DENOISING})
    lines += ["", "Validation metrics (fp32, the fixed validation set of `tuneae.train.validation_batches`): the "
                  "output against the clean image; the input is the clean image for ae / vae / unet"
              + (f" and a noisy one for dae / dunet / dncnn ({', '.join(noisy)}, on the [0, 1] scale)" if noisy else "")
              + ". Each kind's own input, so the columns compare seeds and epochs, not kinds."]
    return "\n".join(lines) + "\n"


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m tuneae.finalfit", description=__doc__.split("\n\n")[0])
    ap.add_argument("results", help="results/<name> of a finished search (with summary.json)")
    ap.add_argument("--seeds", type=int, default=3,
                    help="number of seeds (default 3): train.seed s+1 .. s+N, s the search trial's seed")
    ap.add_argument("--epochs", nargs="+", default=None, metavar="N|KIND=N",
                    help="epoch budget: N for every kind, KIND=N for one kind and its baselines (default: the "
                         "largest train.epochs the search allowed that kind)")
    ap.add_argument("--model", nargs="+", default=None, help="kinds to fit (default: every kind with a best trial)")
    ap.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    ap.add_argument("--experiment", default=None, help="the experiment folder, when it moved since the search")
    ap.add_argument("--baseline", nargs="+", default=[], metavar="recipe|TRIAL_ID",
                    help="also fit these trials' configurations (trials.csv) with the same seeds, to compare with "
                         "their kind's best; 'recipe': each kind's default-recipe trial (the seed project's recipe, "
                         "the search's first), unless the kind's best is that configuration")
    ap.add_argument("--data", default=None, metavar="SOURCE",
                    help="data source instead of the one in the checkpoints (when the search ran elsewhere)")
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m tuneae.finalfit``.

    Args:
        argv: command-line arguments without the program name; None reads ``sys.argv[1:]``.
    Returns:
        The exit status: 0, 2 on bad input (nothing trained; one ``error:`` line on stderr), 1 when a seed
        diverged.
    """
    args = _parser().parse_args(argv)
    try:
        epochs = parse_epochs(args.epochs)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.seeds < 1:
        print(f"error: --seeds {args.seeds} must be >= 1", file=sys.stderr)
        return 2
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    try:
        layout, plans, splits = plan(args.results, args.model, epochs, args.experiment, args.data,
                                     args.baseline)
    except RunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out_file = layout.finalfit_file
    command = portable_command("python -m tuneae.finalfit", sys.argv[1:] if argv is None else argv)
    try:
        earlier = read_earlier(out_file, layout.name)
    except RunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    fitted = {"kinds": dict(earlier.kinds), "baselines": dict(earlier.baselines)}
    commands = [*(c for c in earlier.commands if c != command), command]

    def write() -> None:
        record = FinalFits(layout.name, fitted["kinds"], fitted["baselines"], tuple(commands), command, device)
        atomic_write(out_file, json.dumps(record.to_json(), indent=1, default=str) + "\n")

    for p in plans:
        seeds = [p.train.seed + 1 + i for i in range(args.seeds)]
        folders = [layout.finalfit_seed(p.label, s) for s in seeds]
        section = "kinds" if p.label == p.kind else "baselines"
        if fitted[section].pop(p.label, None) is not None:  # its seed folders are about to change
            write()
        try:
            runs = [fit_seed(p, s, splits, f, device) for s, f in zip(seeds, folders)]
            fitted[section][p.label] = summarize(p, runs, layout, command, device)
        except (FloatingPointError, CheckpointError, RunError) as exc:
            print(f"error: {p.label}: {exc}", file=sys.stderr)
            return 1 if isinstance(exc, FloatingPointError) else 2
        write()
    text = table({**fitted["kinds"], **fitted["baselines"]})
    atomic_write(layout.results / TABLE_FILE, text)
    print(text + f"\n[finalfit] wrote {out_file} and {layout.results / TABLE_FILE}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
