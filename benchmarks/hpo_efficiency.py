"""How close do the searchers come to the exhaustive grid, and for how many epochs?

    python benchmarks/hpo_efficiency.py [--data FOLDER|phantom] [--size 32] [--train-images 512] [--val-images 256]
                                        [--epochs 1 2 4] [--seeds 0 1 2 3 4] [--num-samples 27] [--max-concurrent 2]
                                        [--out results/hpo-efficiency] [--tiny]

1. **Learning curves**: every (lr, batch size, latent dimension) of the seed project's grid is trained once by the
   product's loop (:func:`tuneae.train.fit`, the seed project's AE, a fixed subset at ``--size`` px) for the
   largest epoch count, recording ``val/loss`` after each epoch. A grid point (lr, epochs, batch, latent) is that
   curve at its epochs: with the one seeding rule (per-epoch streams, no schedule tied to the planned length)
   training for 10 epochs passes through the same states as the first 10 of 40, so the 81-point grid costs 27
   runs. The seed project's epochs {10, 20, 40} are scaled down (``--epochs``, default 1 2 4).
2. **The grid** trained to the end: its best val/loss and its cost, the sum of every point's epochs.
3. **The searchers** on those curves (a tabular benchmark, as HPOBench, Eggensperger et al. 2021): real Ray Tune
   runs whose trial function reports the recorded curve epoch by epoch, so Tune, Optuna's TPE and ASHA decide as
   they would in a search: TPE + ASHA (the product: ``OptunaSearch(TPESampler(seed))``, ``ASHAScheduler`` on
   ``epoch``), random search + ASHA, and the seed project's method, sequential TPE without early stopping; ``--seeds``
   each. Cost = epochs reported; best = lowest val/loss reported so far.

Writes ``curves.json`` (the learning curves and every run's trace), ``summary.json`` (per method and seed: the
best val/loss found, the epochs spent, the gap to the grid's best in %, the same at 20% of the grid's epochs) and
``best_vs_epochs.png`` (best val/loss against cumulative epochs as a share of the grid's).
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tuneae.config import SEED_SPACE, DataConfig, ModelConfig, TrainConfig
from tuneae.data import load_splits, phantom_images

GOAL = {"gap_pct": 2.0, "epochs_pct": 20.0}
"""The goal: TPE + ASHA within 2% of the grid's best validation loss on at most 20% of the grid's epochs."""
METHODS = ("tpe_asha", "random_asha", "tpe_sequential")
"""The searchers compared with the grid."""
REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "brain-tumor-mri"
"""This project's MRI folder beside the checkout (used when it exists and ``--data`` is not given)."""


# ---------------------------------------------------------------------------------------- 1. learning curves
def subset(source: str, size: int, n_train: int, n_val: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n_train`` training and ``n_val`` validation images of ``source`` (phantoms: seed 0)."""
    if source == "phantom":
        imgs, _, _ = phantom_images(n_train + n_val, size, seed=0)
        return imgs[:n_train], imgs[n_train:]
    splits = load_splits(DataConfig(source=source, image_size=size))
    return splits.train[:n_train], splits.val[:n_val]


def learning_curves(train: np.ndarray, val: np.ndarray, size: int, max_epochs: int, seed: int,
                    cache: Path) -> dict[str, list[float]]:
    """val/loss after each epoch for every (lr, batch, latent) of the seed project's grid, keyed ``"lr|batch|latent"``;
    written to ``cache`` after each run and read back from it, so an interrupted run continues."""
    from tuneae.train import fit, seeded_model

    curves = json.loads(cache.read_text()) if cache.is_file() else {}
    for lr, batch, latent in itertools.product(SEED_SPACE["train.lr"], SEED_SPACE["train.batch_size"],
                                               SEED_SPACE["model.latent_dim"]):
        key = f"{lr}|{batch}|{latent}"
        if len(curves.get(key, [])) >= max_epochs:
            continue
        cfg = TrainConfig(lr=lr, epochs=max_epochs, batch_size=batch, seed=seed)
        losses: list[float] = []
        try:
            fit(seeded_model(ModelConfig(kind="ae", image_size=size, latent_dim=latent), cfg), train, val, cfg,
                on_epoch=lambda e, m, losses=losses: losses.append(m["val/loss"]))
        except FloatingPointError:  # a diverged run: every later epoch is as bad as it gets
            losses += [float("inf")] * (max_epochs - len(losses))
        curves[key] = losses
        cache.write_text(json.dumps(curves))
        print(f"curve {key}: {[round(v, 5) for v in losses]}", flush=True)
    return curves


def grid(curves: dict[str, list[float]], epochs: list[int], seed: int = 0) -> dict:
    """The 81-point grid trained to the end: best val/loss, total epochs, and the anytime trace in a seeded order."""
    points = [(k, e) for k in curves for e in epochs]
    order = np.random.default_rng(seed).permutation(len(points))
    trace, spent, best = [], 0, float("inf")
    for i in order:
        key, e = points[i]
        for epoch in range(1, e + 1):
            spent += 1
            best = min(best, curves[key][epoch - 1])
            trace.append([spent, best])
    finals = {f"{k}|{e}": curves[k][e - 1] for k, e in points}
    best_point = min(finals, key=finals.get)
    return {"points": len(points), "epochs": sum(e for _, e in points), "best_val_loss": finals[best_point],
            "best_point": best_point, "trace": trace}


# ------------------------------------------------------------------------------------------- 3. searchers
def lookup_trial(config: dict, curves: dict, epoch_s: float) -> None:
    """A Tune trial that replays the recorded learning curve of its config, one report per epoch."""
    from ray import tune

    curve = curves[f"{config['train.lr']}|{config['train.batch_size']}|{config['model.latent_dim']}"]
    for epoch in range(1, int(config["train.epochs"]) + 1):
        time.sleep(epoch_s)  # a trial of more epochs takes longer, as in a real search
        tune.report({"val/loss": curve[epoch - 1], "epoch": epoch, "t": time.time()})


def search(method: str, seed: int, curves: dict, epochs: list[int], args, storage: Path) -> dict:
    """One searcher run over the curves; returns its trace [[epochs spent, best so far], ...] and final best."""
    import optuna
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator
    from ray.tune.search.optuna import OptunaSearch

    space = {"train.lr": tune.choice(list(SEED_SPACE["train.lr"])), "train.epochs": tune.choice(epochs),
             "train.batch_size": tune.choice(list(SEED_SPACE["train.batch_size"])),
             "model.latent_dim": tune.choice(list(SEED_SPACE["model.latent_dim"]))}
    tpe = method.startswith("tpe")
    searcher = (OptunaSearch(sampler=optuna.samplers.TPESampler(seed=seed), seed=seed) if tpe
                else BasicVariantGenerator(random_state=seed))
    scheduler = (ASHAScheduler(time_attr="epoch", max_t=max(epochs), grace_period=args.grace_period,
                               reduction_factor=args.reduction_factor) if method.endswith("asha")
                 else FIFOScheduler())
    tuner = tune.Tuner(
        tune.with_parameters(lookup_trial, curves=curves, epoch_s=args.sim_epoch_s), param_space=space,
        tune_config=tune.TuneConfig(metric="val/loss", mode="min", search_alg=searcher, scheduler=scheduler,
                                    num_samples=args.num_samples,
                                    max_concurrent_trials=1 if method == "tpe_sequential" else args.max_concurrent),
        run_config=tune.RunConfig(name=f"{method}-{seed}", storage_path=str(storage), verbose=0))
    results = tuner.fit()
    reports = sorted((row["t"], row["val/loss"]) for r in results for row in r.metrics_dataframe.to_dict("records"))
    trace, best = [], float("inf")
    for spent, (_, loss) in enumerate(reports, 1):
        best = min(best, loss)
        trace.append([spent, best])
    last = [r.metrics["val/loss"] for r in results if r.metrics and r.error is None]
    return {"trace": trace, "epochs": len(reports), "trials": len(results),
            "best_val_loss": best, "best_last_val_loss": min(last) if last else None}


def best_at(trace: list[list[float]], budget: float) -> float:
    """The best val/loss a trace had found after spending at most ``budget`` epochs (inf before any)."""
    found = [b for spent, b in trace if spent <= budget]
    return found[-1] if found else float("inf")


# ------------------------------------------------------------------------------------------------ output
def summarise(g: dict, runs: dict[str, dict[int, dict]]) -> dict:
    """Per method and seed: final best, epochs, gaps to the grid in % (final and at 20% of the grid's epochs)."""
    budget = g["epochs"] * GOAL["epochs_pct"] / 100
    gap = lambda v: 100 * (v - g["best_val_loss"]) / g["best_val_loss"]  # noqa: E731
    out = {}
    for method, by_seed in runs.items():
        rows = {s: {"best_val_loss": r["best_val_loss"], "epochs": r["epochs"],
                    "epochs_pct_of_grid": round(100 * r["epochs"] / g["epochs"], 1),
                    "gap_pct": round(gap(r["best_val_loss"]), 2),
                    "gap_pct_at_20pct_of_grid_epochs": round(gap(best_at(r["trace"], budget)), 2)}
                for s, r in by_seed.items()}
        at20 = [r["gap_pct_at_20pct_of_grid_epochs"] for r in rows.values()]
        out[method] = {"seeds": rows, "median_gap_pct": statistics.median(r["gap_pct"] for r in rows.values()),
                       "median_gap_pct_at_20pct": statistics.median(at20),
                       "median_epochs_pct_of_grid": statistics.median(r["epochs_pct_of_grid"] for r in rows.values()),
                       "goal_met_in_seeds": sum(g_ <= GOAL["gap_pct"] for g_ in at20)}
    return out


def plot(g: dict, runs: dict[str, dict[int, dict]], path: Path) -> None:
    """Best val/loss against cumulative epochs (% of the grid's): per method the median over seeds, min-max band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs = np.linspace(1, g["epochs"], 400)
    for name, traces in [("grid (random order)", [g["trace"]])] + [(m, [r["trace"] for r in by.values()])
                                                                  for m, by in runs.items()]:
        end = max(t[-1][0] for t in traces if t)  # a method's line stops where its longest run stopped
        x = xs[xs <= end]
        ys = np.array([[best_at(t, v) for v in x] for t in traces])  # (seeds, points)
        ys[~np.isfinite(ys)] = np.nan
        pct = 100 * x / g["epochs"]
        (line,) = ax.plot(pct, np.nanmedian(ys, 0), label=f"{name} (median of {len(traces)})" if len(traces) > 1
                          else name)
        if len(traces) > 1:
            ax.fill_between(pct, np.nanmin(ys, 0), np.nanmax(ys, 0), color=line.get_color(), alpha=0.15, lw=0)
    ax.axhline(g["best_val_loss"], color="k", lw=0.8, ls="--", label="grid's best")
    ax.axhline(g["best_val_loss"] * (1 + GOAL["gap_pct"] / 100), color="k", lw=0.8, ls=":", label="+2%")
    ax.axvline(GOAL["epochs_pct"], color="grey", lw=0.8, ls=":")
    ax.set(xlabel="epochs spent (% of the full grid's)", ylabel="best validation loss found (MSE)",
           title="Search efficiency on the seed project's 81-point grid (reduced size)")
    ax.set_xscale("log")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    """Make the learning curves, run every searcher and seed over them, write the three outputs."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REAL_DATA) if REAL_DATA.is_dir() else "phantom")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--train-images", type=int, default=512)
    ap.add_argument("--val-images", type=int, default=256)
    ap.add_argument("--epochs", type=int, nargs=3, default=[1, 2, 4], help="the seed project's {10, 20, 40}, scaled")
    ap.add_argument("--train-seed", type=int, default=0)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="searcher seeds")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--num-samples", type=int, default=27, help="trials per search (the gpu preset's)")
    ap.add_argument("--max-concurrent", type=int, default=2)
    ap.add_argument("--grace-period", type=int, default=1)
    ap.add_argument("--reduction-factor", type=float, default=2.0)
    ap.add_argument("--sim-epoch-s", type=float, default=0.05, help="wall seconds per replayed epoch")
    ap.add_argument("--out", default="results/hpo-efficiency")
    ap.add_argument("--cache-dir", default="runs/hpo-efficiency", help="learning curves, kept between runs")
    ap.add_argument("--tiny", action="store_true", help="a check that it runs: phantoms, few images, 2 seeds")
    args = ap.parse_args(argv)
    if args.tiny:
        args.data, args.train_images, args.val_images, args.seeds, args.num_samples = "phantom", 16, 8, [0, 1], 8
        args.epochs, args.sim_epoch_s = [1, 2, 3], 0.01
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train, val = subset(args.data, args.size, args.train_images, args.val_images)
    t0 = time.time()
    key = f"{Path(args.data).name}-{args.size}px-{len(train)}-{len(val)}-{max(args.epochs)}ep-seed{args.train_seed}"
    cache = Path(args.cache_dir) / f"curves-{key}.json"  # outside results/: an interrupted run continues from it
    cache.parent.mkdir(parents=True, exist_ok=True)
    curves = learning_curves(train, val, args.size, max(args.epochs), args.train_seed, cache)
    curve_s = time.time() - t0
    g = grid(curves, args.epochs)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    ray.init(num_cpus=args.max_concurrent + 1, include_dashboard=False, log_to_driver=False)
    runs: dict[str, dict[int, dict]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for method in args.methods:
                runs[method] = {s: search(method, s, curves, args.epochs, args, Path(tmp)) for s in args.seeds}
                print(method, {s: (r["epochs"], round(r["best_val_loss"], 5)) for s, r in runs[method].items()},
                      flush=True)
    finally:
        ray.shutdown()
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "data", "cache_dir")}
    settings["data"] = Path(args.data).name  # never an absolute path in results
    summary = {"command": "python benchmarks/hpo_efficiency.py " + " ".join(sys.argv[1:] if argv is None else argv),
               "date": time.strftime("%Y-%m-%d"), "settings": settings, "goal": GOAL,
               "images": {"train": len(train), "val": len(val), "size": args.size},
               "learning_curves_s": round(curve_s, 1),
               "grid": {k: v for k, v in g.items() if k != "trace"}, "methods": summarise(g, runs)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "curves.json").write_text(json.dumps({"learning_curves": curves, "grid_trace": g["trace"],
                                                 "traces": {m: {str(s): r["trace"] for s, r in by.items()}
                                                            for m, by in runs.items()}}) + "\n")
    plot(g, runs, out / "best_vs_epochs.png")
    print(json.dumps(summary["methods"], indent=1)[:3000], f"\nwrote {out}")
    return summary


if __name__ == "__main__":
    main()
