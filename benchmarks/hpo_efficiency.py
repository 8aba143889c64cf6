"""How much of the full grid's budget do TPE + ASHA and random search + ASHA need to come within 1% of its best?

    python benchmarks/hpo_efficiency.py [--data FOLDER|phantom] [--size 32] [--train-images 512] [--val-images 256]
        [--max-epochs 9] [--latent-dim 128] [--lr ...] [--batch-size ...] [--lr-schedule ...] [--seeds 0 .. 9]
        [--num-samples 60] [--threads N] [--out results/hpo-efficiency] [--cache-dir runs/hpo-efficiency] [--tiny]

A tabular benchmark (as HPOBench, Eggensperger et al. 2021, NeurIPS Datasets and Benchmarks): every grid point is
trained once, its learning curve recorded, and the searchers then run over the recorded curves.

1. **The space** (:data:`SPACE`, 60 points): hyperparameters the product searches, chosen so that the best point
   should lie inside the grid: ``train.lr`` at five values half a decade apart, too low to too high (a probe on the MRI
   subset, batch 16, cosine, 4 epochs: val/mse 0.078 at 1e-4, 0.021 at 1e-3, 0.016 at 1e-2, 0.030 at 3e-2),
   ``train.batch_size`` and ``train.lr_schedule`` (tuneae.recipe). The code size is fixed (:data:`FIXED`), so "the
   bigger code wins" cannot decide it. The epoch budget is not searched, as in the product: every point trains for
   ``--max-epochs`` (the cpu preset's 9), its LR schedule spanning all of them.
2. **Learning curves**: each point trained by the product's loop (:func:`tuneae.train.fit`, AE, a fixed subset at
   ``--size`` px), val/mse after every epoch. The schedule is set by the maximum budget, so the first k epochs of a
   curve are exactly what a trial stopped by ASHA at epoch k saw (judged mid-schedule, as in the product). A grid
   point is its whole curve; the grid costs points x max epochs.
3. **Interior check**: where the grid's best lies in each dimension (index among the sorted choices), whether it is
   interior, how many points lie within 1% of it (the odds of a lucky guess), and the Spearman rank correlation of
   the value at epoch 1 (and at each rung) with the final one over the curves (high: early stopping is trivial).
4. **The searchers**, ``--seeds`` each, in real Ray Tune runs whose trial function replays its point's curve, one
   report per epoch and one trial at a time (as this machine runs 2-CPU trials), hence deterministic: TPE + ASHA as
   the product builds them (:func:`tuneae.search.searcher.make_searcher`: seeded multivariate TPE, Bergstra et al.
   2011, NeurIPS, no repeated configuration, the seed recipe first; Ray's ``ASHAScheduler``, Li et al. 2020, MLSys,
   on ``epoch``, the cpu preset's grace period 1 and reduction factor 3); random search + ASHA (the same searcher
   class and no-repeat rule with Optuna's ``RandomSampler``: only the sampler differs); the full grid in a random
   order per seed.
5. **The measure**, per method and seed: the budget (epochs, and % of the grid's cost) at which the best result so
   far first comes within ``GOAL["gap_pct"]`` of the grid's best final val/mse (None if never), and the final gap.
   A trial's result is its last reported val/mse (the product's best-trial rule, :mod:`tuneae.run.best`), counted
   when the trial ends (at a rung or at max epochs).

Writes ``summary.json`` (settings, the grid's best, its position and the interior check, per method and seed the
budget to within 1% and the final gap, median / quartiles / range over seeds), ``curves.json`` (the curves and every
trace) and ``best_vs_budget.png`` (gap to the grid's best against budget %, median over seeds, interquartile band).
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from tuneae.checkpoint import asha_rungs

GOAL = {"gap_pct": 1.0, "budget_pct": 20.0}
""""Found": within ``gap_pct`` % of the grid's best final val/mse. The goal for TPE + ASHA: found in every seed,
with a median budget of at most ``budget_pct`` % of the full grid's epochs."""
SPACE: dict[str, tuple] = {"train.lr": (3e-4, 1e-3, 3e-3, 1e-2, 3e-2), "train.batch_size": (8, 16, 32, 64),
                           "train.lr_schedule": ("constant", "cosine", "onecycle")}
"""60 points, categorical choices as the product searches them; the smallest batch may win (most steps per epoch)."""
FIXED: dict = {"model.kind": "ae", "model.latent_dim": 128}
"""Settings every point shares: the seed project's AE, its code fixed at 128 numbers (8:1 at 32 px, the compression
of the cpu preset's largest code, 2048, at 128 px)."""
TINY_SPACE: dict[str, tuple] = {"train.lr": (1e-3, 3e-3, 1e-2), "train.batch_size": (4, 8),
                                "train.lr_schedule": ("constant", "cosine")}
"""The ``--tiny`` space: 12 points (a check that the benchmark runs, not a measurement)."""
METHODS = ("tpe_asha", "random_asha")
"""The searchers compared with the grid."""
REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "brain-tumor-mri"
"""This project's MRI folder beside the checkout (used when it exists and ``--data`` is not given)."""


# ------------------------------------------------------------------------------------ 1-2. space and curves
def grid_points(space: dict[str, tuple]) -> list[dict]:
    """Every point of ``space`` (``{section.field: value}``), in ``itertools.product`` order."""
    return [dict(zip(space, values)) for values in itertools.product(*space.values())]


def point_key(point: dict, dims: list[str] | tuple[str, ...]) -> str:
    """A point's key in the curves: its values in the order of ``dims``, joined by ``|`` (e.g. ``0.001|16|cosine``)."""
    return "|".join(str(point[d]) for d in dims)


def subset(source: str, size: int, n_train: int, n_val: int, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n_train`` training and ``n_val`` validation images (uint8, (N, 1, size, size)) of ``source``
    (phantoms: seed 0), decoded into ``cache``."""
    from tuneae.config import DataConfig
    from tuneae.data import load_splits, phantom_images

    if source == "phantom":
        imgs, _, _ = phantom_images(n_train + n_val, size, seed=0)
        return imgs[:n_train], imgs[n_train:]
    splits = load_splits(DataConfig(source=source, image_size=size, cache_dir=str(cache)))
    return splits.train[:n_train], splits.val[:n_val]


def learning_curves(train: np.ndarray, val: np.ndarray, space: dict[str, tuple], fixed: dict, size: int,
                    max_epochs: int, seed: int, cache: Path) -> dict[str, list[float]]:
    """val/mse after each epoch (1 .. ``max_epochs``) of every point of ``space``, keyed by :func:`point_key`.

    Each point is ``fixed`` + the point, trained for ``max_epochs`` (its LR schedule spanning them) from the weights
    of training seed ``seed``. Written to ``cache`` after each point and read back, so an interrupted run continues.
    A run whose loss became NaN or infinite gets ``inf`` for every epoch from the one that diverged.
    """
    from tuneae.config import from_flat
    from tuneae.run.best import METRIC
    from tuneae.train import fit, seeded_model

    curves = json.loads(cache.read_text()) if cache.is_file() else {}
    for point in grid_points(space):
        key = point_key(point, list(space))
        if len(curves.get(key, [])) >= max_epochs:
            continue
        cfg = from_flat({**fixed, **point, "data.image_size": size, "train.epochs": max_epochs, "train.seed": seed})
        losses: list[float] = []
        t0 = time.time()
        try:
            fit(seeded_model(cfg.model, cfg.train), train, val, cfg.train,
                on_epoch=lambda e, m, losses=losses: losses.append(m[METRIC]))
        except FloatingPointError:
            losses += [float("inf")] * (max_epochs - len(losses))
        curves[key] = losses
        cache.write_text(json.dumps(curves))
        print(f"curve {key} ({time.time() - t0:.1f} s): {[round(v, 5) for v in losses]}", flush=True)
    return curves


# --------------------------------------------------------------------------------------- 3. the grid's answer
def grid_summary(curves: dict[str, list[float]], space: dict[str, tuple], gap_pct: float = GOAL["gap_pct"],
                 rungs: tuple[int, ...] = (1,)) -> dict:
    """The grid trained to the end: its best final val/mse, where that point lies, and whether stopping early is
    trivially right.

    Args:
        curves: :func:`learning_curves`' output, one curve per point of ``space`` (all of one length).
        space: the searched choices; numeric dimensions are placed among their sorted choices.
        gap_pct: "near the best" means within this many % of it.
        rungs: epochs at which the rank correlation with the final value is measured (1 and ASHA's rungs).
    Returns:
        ``points``, ``max_epochs``, ``epochs`` (the grid's cost: points x max epochs), ``best_val_mse``,
        ``best_point`` (its key), ``position`` (per dimension: ``value``, ``index`` among the sorted choices,
        ``of``, ``interior``: not at either end, None for an unordered (string) dimension or one of under 3
        choices), ``interior`` (the ``train.lr`` dimension's, else every ordered dimension's), ``near_best``
        (points within ``gap_pct`` of the best), ``spearman`` (``{"epoch_<r>_vs_final": rho}`` over the finite
        curves, scipy.stats.spearmanr), ``same_best_at_epoch_1`` and ``diverged`` (curves that are not finite).
    """
    from scipy.stats import spearmanr

    dims = list(space)
    points = {point_key(p, dims): p for p in grid_points(space)}
    max_epochs = len(next(iter(curves.values())))
    finals = {k: curves[k][-1] for k in points}
    best_key = min(finals, key=finals.get)
    best = finals[best_key]
    position = {}
    for d in dims:
        value, choices = points[best_key][d], space[d]
        ordered = all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in choices)
        order = sorted(choices) if ordered else list(choices)
        i = order.index(value)
        position[d] = {"value": value, "index": i, "of": len(order),
                       "interior": (0 < i < len(order) - 1) if ordered and len(order) >= 3 else None}
    flags = [p["interior"] for p in position.values() if p["interior"] is not None]
    interior = position["train.lr"]["interior"] if "train.lr" in position else bool(flags) and all(flags)
    finite = [k for k in points if all(math.isfinite(v) for v in curves[k])]
    spearman = {}
    for r in sorted({1, *rungs}):
        if r < max_epochs and len(finite) >= 3:
            rho = spearmanr([curves[k][r - 1] for k in finite], [finals[k] for k in finite]).statistic
            spearman[f"epoch_{r}_vs_final"] = round(float(rho), 3)
    first = min(points, key=lambda k: curves[k][0])
    return {"points": len(points), "max_epochs": max_epochs, "epochs": len(points) * max_epochs,
            "best_val_mse": best, "best_point": best_key, "position": position, "interior": bool(interior),
            "near_best": sum(v <= best * (1 + gap_pct / 100) for v in finals.values()),
            "spearman": spearman, "same_best_at_epoch_1": first == best_key, "diverged": len(points) - len(finite)}


def grid_trace(curves: dict[str, list[float]], seed: int) -> list[list[float]]:
    """The full grid in a random order (``numpy.random.default_rng(seed)``): after each point, trained to the end,
    ``[epochs spent, best final val/mse so far]``."""
    keys = sorted(curves)
    trace, spent, best = [], 0, math.inf
    for i in np.random.default_rng(seed).permutation(len(keys)):
        curve = curves[keys[i]]
        spent += len(curve)
        best = min(best, curve[-1])
        trace.append([spent, best])
    return trace


def trace_from_reports(reports: list[tuple[float, str, float]]) -> list[list[float]]:
    """A search's anytime trace from its reports ``(time, trial id, val/mse)``, one per epoch.

    Every report costs one epoch; a trial's result, its last report, counts from that report on (the product's
    best-trial rule: the lowest last value). Returns ``[[epochs spent, best result so far], ...]``, one entry per
    ended trial, in the order they ended.
    """
    reports = sorted(reports)
    last = {trial: i for i, (_, trial, _) in enumerate(reports)}
    trace, best = [], math.inf
    for spent, (_, trial, value) in enumerate(reports, 1):
        if last[trial] == spent - 1:
            best = min(best, value)
            trace.append([spent, best])
    return trace


def budget_to_within(trace: list[list[float]], target: float) -> int | None:
    """The epochs spent when a trace's best first reaches ``target`` or below; None if it never does."""
    return next((int(spent) for spent, best in trace if best <= target), None)


# ------------------------------------------------------------------------------------------- 4. searchers
def lookup_trial(config: dict, curves: dict, dims: list[str], max_epochs: int) -> None:
    """A Tune trial that replays the recorded learning curve of its config, one report per epoch."""
    from ray import tune

    curve = curves[point_key(config, dims)]
    for epoch in range(1, max_epochs + 1):
        tune.report({"val/mse": curve[epoch - 1], "epoch": epoch, "t": time.time()})


def make_searcher(method: str, space: dict[str, tuple], seed: int, args, study_dir: Path):
    """TPE as the product builds it (:func:`tuneae.search.searcher.make_searcher`), or the same searcher class with
    Optuna's seeded ``RandomSampler`` (no repeated configuration either; no seed recipe first)."""
    import optuna

    from tuneae.search.optuna_search import PruningOptunaSearch
    from tuneae.search.searcher import make_searcher as product_searcher

    if method == "tpe_asha":
        rungs = asha_rungs(args.grace_period, args.reduction_factor, args.max_epochs, below_max_t=True)
        return product_searcher("ae", space, args.max_epochs, num_samples=args.num_samples, max_concurrent=1,
                                seed=seed, study_file=study_dir / f"{method}-{seed}.db",
                                rungs=[float(r) for r in rungs])
    return PruningOptunaSearch(planned_epochs=args.max_epochs, sampler=optuna.samplers.RandomSampler(seed=seed),
                               study_name=f"{method}-{seed}")


def search(method: str, seed: int, curves: dict, space: dict[str, tuple], args, storage: Path) -> dict:
    """One searcher run over the curves (ASHA on ``epoch``, one trial at a time, ``args.num_samples`` trials).

    Returns:
        ``trace`` (:func:`trace_from_reports`), ``epochs`` spent, ``trials`` and ``best_val_mse``.
    """
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    scheduler = ASHAScheduler(time_attr="epoch", max_t=args.max_epochs, grace_period=args.grace_period,
                              reduction_factor=args.reduction_factor)
    tuner = tune.Tuner(
        tune.with_parameters(lookup_trial, curves=curves, dims=list(space), max_epochs=args.max_epochs),
        param_space={k: tune.choice(list(v)) for k, v in space.items()},
        tune_config=tune.TuneConfig(metric="val/mse", mode="min", search_alg=make_searcher(method, space, seed,
                                                                                          args, storage),
                                    scheduler=scheduler, num_samples=args.num_samples, max_concurrent_trials=1,
                                    reuse_actors=True),
        run_config=tune.RunConfig(name=f"{method}-{seed}", storage_path=str(storage), verbose=0))
    results = tuner.fit()
    reports = [(row["t"], r.path, row["val/mse"]) for r in results for row in r.metrics_dataframe.to_dict("records")]
    trace = trace_from_reports(reports)
    return {"trace": trace, "epochs": len(reports), "trials": len(results),
            "best_val_mse": trace[-1][1] if trace else math.inf}


# ------------------------------------------------------------------------------------------------ 5. output
def quantile(values: list[float], q: float) -> float:
    """The ``q``-quantile (linear interpolation, as ``numpy.quantile``) where ``inf`` stands for "never": a
    quantile that falls on or next to an ``inf`` is ``inf``."""
    v, pos = sorted(values), q * (len(values) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    if math.isinf(v[hi]):
        return math.inf
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def spread(values: list[float]) -> dict:
    """Median, quartiles and range of ``values`` over seeds (``inf`` = never, written as None)."""
    out = {"median": quantile(values, 0.5), "q25": quantile(values, 0.25), "q75": quantile(values, 0.75),
           "min": min(values), "max": max(values)}
    return {k: None if math.isinf(x) else round(x, 2) for k, x in out.items()}


def summarise_method(traces: dict[int, list[list[float]]], spent: dict[int, int], grid_best: float,
                     grid_epochs: int, gap_pct: float = GOAL["gap_pct"]) -> dict:
    """One method over seeds: per seed the budget to within ``gap_pct`` of the grid's best (epochs and % of the
    grid's ``grid_epochs``; None if never) and the final gap (%); over seeds their spread and the count found."""
    target = grid_best * (1 + gap_pct / 100)
    seeds, pct, gaps = {}, [], []
    for s, trace in traces.items():
        budget = budget_to_within(trace, target)
        final = trace[-1][1] if trace else math.inf
        gap = 100 * (final - grid_best) / grid_best
        seeds[s] = {"budget_epochs": budget,
                    "budget_pct": None if budget is None else round(100 * budget / grid_epochs, 2),
                    "final_gap_pct": round(gap, 3) if math.isfinite(gap) else None, "epochs": spent[s],
                    "epochs_pct": round(100 * spent[s] / grid_epochs, 2)}
        pct.append(math.inf if budget is None else 100 * budget / grid_epochs)
        gaps.append(gap)
    return {"seeds": seeds, "found": sum(math.isfinite(p) for p in pct), "of": len(pct),
            "budget_pct": spread(pct), "final_gap_pct": spread(gaps),
            "goal_met": all(map(math.isfinite, pct)) and quantile(pct, 0.5) <= GOAL["budget_pct"]}


def best_so_far(trace: list[list[float]], budget: np.ndarray) -> np.ndarray:
    """A trace's best value after each budget in ``budget`` (epochs); NaN before its first result."""
    spent = np.array([t[0] for t in trace] or [np.inf])
    best = np.array([t[1] for t in trace] or [np.nan])
    i = np.searchsorted(spent, budget, side="right") - 1
    return np.where(i >= 0, best[np.clip(i, 0, None)], np.nan)


def plot(g: dict, traces: dict[str, dict[int, list]], path: Path) -> None:
    """Gap to the grid's best (%) against budget (% of the grid's epochs): per method the median over seeds and
    the interquartile band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs = np.geomspace(1, g["epochs"], 400)
    for name, by_seed in traces.items():
        x = xs[xs <= max((t[-1][0] for t in by_seed.values() if t), default=1)]  # stops with the longest run
        gaps = 100 * (np.array([best_so_far(t, x) for t in by_seed.values()]) / g["best_val_mse"] - 1)
        gaps[~np.isfinite(gaps)] = np.nan  # before the first result, or a diverged best
        with warnings.catch_warnings():  # an all-NaN column: no seed has a result yet at that budget
            warnings.simplefilter("ignore", RuntimeWarning)
            mid, lo, hi = (np.nanquantile(gaps, q, axis=0) for q in (0.5, 0.25, 0.75))
        (line,) = ax.plot(100 * x / g["epochs"], mid, label=f"{name} (median of {len(by_seed)} seeds)")
        ax.fill_between(100 * x / g["epochs"], lo, hi, color=line.get_color(), alpha=0.15, lw=0)
    ax.axhline(GOAL["gap_pct"], color="k", lw=0.8, ls=":", label=f"{GOAL['gap_pct']:g}% of the grid's best")
    ax.axvline(GOAL["budget_pct"], color="grey", lw=0.8, ls=":")
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set(xlabel="budget spent (% of the full grid's epochs)", ylabel="best found: gap to the grid's best (%)",
           title=f"{g['points']}-point grid x {g['max_epochs']} epochs; band: interquartile range over seeds",
           xscale="log", ylim=(0, None))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (``--tiny``: phantoms, 24 images, :data:`TINY_SPACE`, 4 epochs, 2 seeds, 1 thread)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REAL_DATA) if REAL_DATA.is_dir() else "phantom")
    ap.add_argument("--size", type=int, default=32, help="image side in pixels")
    ap.add_argument("--train-images", type=int, default=512)
    ap.add_argument("--val-images", type=int, default=256)
    ap.add_argument("--max-epochs", type=int, default=9, help="every point's budget, ASHA's max_t (cpu preset: 9)")
    ap.add_argument("--latent-dim", type=int, default=FIXED["model.latent_dim"], help="the fixed code size")
    ap.add_argument("--lr", type=float, nargs="+", default=list(SPACE["train.lr"]))
    ap.add_argument("--batch-size", type=int, nargs="+", default=list(SPACE["train.batch_size"]))
    ap.add_argument("--lr-schedule", nargs="+", default=list(SPACE["train.lr_schedule"]),
                    choices=SPACE["train.lr_schedule"])
    ap.add_argument("--train-seed", type=int, default=0, help="seed of every point's weights and batches")
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(10)), help="searcher seeds (>= 5)")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--num-samples", type=int, default=0, help="trials per search (0: the grid's points)")
    ap.add_argument("--grace-period", type=int, default=1, help="ASHA (the cpu preset's)")
    ap.add_argument("--reduction-factor", type=float, default=3.0, help="ASHA (the cpu preset's)")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch threads for the curves (0: torch's default; 1 beside another busy job)")
    ap.add_argument("--out", default="results/hpo-efficiency")
    ap.add_argument("--cache-dir", default="runs/hpo-efficiency", help="learning curves and decoded images")
    ap.add_argument("--tiny", action="store_true", help="a check that it runs: phantoms, few images, 2 seeds")
    args = ap.parse_args(argv)
    args.space = {"train.lr": tuple(sorted(args.lr)), "train.batch_size": tuple(sorted(args.batch_size)),
                  "train.lr_schedule": tuple(args.lr_schedule)}
    args.num_samples = args.num_samples or math.prod(map(len, args.space.values()))
    if args.tiny:
        args.data, args.train_images, args.val_images, args.seeds, args.num_samples = "phantom", 16, 8, [0, 1], 8
        args.max_epochs, args.latent_dim, args.space, args.threads = 4, 16, dict(TINY_SPACE), args.threads or 1
    return args


def run_searches(args, curves: dict, space: dict[str, tuple]) -> dict[str, dict[int, dict]]:
    """Every method and seed of ``args`` over ``curves``, in one local Ray session (2 CPUs, no dashboard)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    runs: dict[str, dict[int, dict]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for method in args.methods:
                runs[method] = {}
                for s in args.seeds:
                    t0 = time.time()
                    runs[method][s] = search(method, s, curves, space, args, Path(tmp))
                    r = runs[method][s]
                    print(f"{method} seed {s}: {r['trials']} trials, {r['epochs']} epochs, best "
                          f"{r['best_val_mse']:.5f} ({time.time() - t0:.1f} s)", flush=True)
    finally:
        ray.shutdown()
    return runs


def main(argv: list[str] | None = None) -> dict:
    """Record the learning curves, check the grid's answer, run every searcher and seed, write the three outputs."""
    args = parse_args(argv)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    space, fixed = args.space, {**FIXED, "model.latent_dim": args.latent_dim}
    out, cache_dir = Path(args.out), Path(args.cache_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    train, val = subset(args.data, args.size, args.train_images, args.val_images, cache_dir / "decode")
    setup = json.dumps([Path(args.data).name, args.size, len(train), len(val), args.max_epochs, args.train_seed,
                        fixed, list(space)])
    cache = cache_dir / f"curves-{hashlib.sha1(setup.encode()).hexdigest()[:12]}.json"  # continues a stopped run
    t0 = time.time()
    curves = learning_curves(train, val, space, fixed, args.size, args.max_epochs, args.train_seed, cache)
    curves = {point_key(p, list(space)): curves[point_key(p, list(space))] for p in grid_points(space)}
    curve_s = time.time() - t0
    rungs = asha_rungs(args.grace_period, args.reduction_factor, args.max_epochs, below_max_t=True)
    g = grid_summary(curves, space, rungs=rungs)
    t0 = time.time()
    runs = run_searches(args, curves, space)
    search_s = time.time() - t0
    traces = {"grid": {s: grid_trace(curves, s) for s in args.seeds},
              **{m: {s: r["trace"] for s, r in by.items()} for m, by in runs.items()}}
    spent = {"grid": dict.fromkeys(args.seeds, g["epochs"]),
             **{m: {s: r["epochs"] for s, r in by.items()} for m, by in runs.items()}}
    methods = {m: summarise_method(traces[m], spent[m], g["best_val_mse"], g["epochs"]) for m in traces}
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "data", "cache_dir", "space")}
    settings.update(data=Path(args.data).name, space={k: list(v) for k, v in space.items()}, fixed=fixed,
                    rungs=list(rungs))  # never an absolute path in results
    summary = {"command": "python benchmarks/hpo_efficiency.py " + " ".join(sys.argv[1:] if argv is None else argv),
               "date": time.strftime("%Y-%m-%d"), "settings": settings, "goal": GOAL,
               "images": {"train": len(train), "val": len(val), "size": args.size},
               "learning_curves_s": round(curve_s, 1), "searches_s": round(search_s, 1), "grid": g,
               "methods": methods}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "curves.json").write_text(json.dumps({"learning_curves": curves, "traces": {
        m: {str(s): t for s, t in by.items()} for m, by in traces.items()}}) + "\n")
    plot(g, traces, out / "best_vs_budget.png")
    print(json.dumps({"grid's answer": {k: g[k] for k in ("best_point", "interior", "near_best", "spearman")},
                      **{m: {k: v[k] for k in ("found", "of", "budget_pct")} for m, v in methods.items()}}),
          f"\nwrote {out}")
    return summary


if __name__ == "__main__":
    main()
