"""What a trial costs besides training: Ray's fixed cost per trial, its per-epoch overhead, checkpoint traffic.

    python benchmarks/overhead.py [--quick] [--cpus 2] [--trials 4] [--variants product preimport side-by-side]
                                  [--full-images 300] [--full-epochs 4] [--skip-fixed] [--skip-full]
                                  [--search-epochs [--epoch-data DIR] [--epoch-env KEY=VALUE ...] [--compete 0.25]
                                   [--epoch-no-wandb]] [--floor [--floor-repeats 5]] [--out results/bench-overhead.json]

Four measurements, each against the same training in plain PyTorch (:func:`tuneae.train.fit`):

1. **Fixed cost of one trial**: ``--trials`` trials of the product's trial function (:func:`tuneae.trainable.run_trial`:
   a Ray Tune function that launches a Ray Train ``TorchTrainer``) under a plain Tune experiment, one at a time,
   each one epoch on a few dozen 32 px phantoms, minus the same epoch in plain PyTorch. Broken down from
   timestamps written by the trial function and the Train worker (an event log beside the run): Ray start (once
   per search), Tune's launch of the trial (actor start, imports), Ray Train's setup (controller, placement group,
   worker start, imports), the first epoch, the first report (checkpoint upload) and the teardown.
   Variants: ``product`` (the search as it is: Ray Train's controller polls every
   :data:`tuneae.search.session.TRAIN_POLL_S` s), ``upstream-poll`` (the product at Ray Train's default poll
   interval, 2 s: each report, the decision a worker waits for at a rung and the trial's end reach Tune at a poll),
   ``preimport`` (every Ray worker imports torch and tuneae when it
   starts, :data:`tuneae.trainable.WORKER_SETUP_HOOK`), ``side-by-side`` (one trial more at once than the CPUs
   hold: the next trial's launch overlaps the running trial's training while its workers wait for CPUs).
   Not a variant: Tune's ``reuse_actors``. A trial stopped by ASHA is still inside ``TorchTrainer.fit`` when Tune
   tries to reset its actor for the next trial; the reset waits 2 s for the trial's thread, fails, and Tune marks
   the *next* trial as errored ("Trainable runner reuse requires reset_config() ... return True", seen in
   tests/test_faults.py with Ray 2.60), so every trial needs a fresh Tune actor.
2. **Per-epoch ratio at full size**: one trial at 128 px on ``--full-images`` phantoms for ``--full-epochs`` epochs,
   seconds per epoch (median of epochs >= 2, report to report) over plain PyTorch's.
3. **Checkpoint traffic**: bytes written and seconds spent writing per trial, with checkpoints only where used
   (rungs, end, every ``checkpoint_every``; the product) against every epoch with the optimizer state (the
   every-epoch rule, ``checkpoint_every=1``; ``before`` in the output's keys), measured
   at full size and projected for the cpu and gpu presets' schedules.

4. **Per-epoch ratio in the real search** (``--search-epochs``): the seed project's AE recipe (latent 512, batch 16)
   for ``--epoch-epochs`` epochs on the real data at 128 px, once through ``python -m tuneae.search --preset cpu``
   (one trial, W&B on, Tune's ``time_this_iter_s`` per epoch) and once in plain PyTorch in its own process on the
   same split, both with the environment ``--epoch-env`` (e.g. ``OMP_WAIT_POLICY=PASSIVE``) and, with
   ``--compete``, next to a process that keeps that share of one core busy (contention). ``--ladder`` adds the
   rungs between the two (:data:`LADDER`: Ray started beside the fit, the fit in a Ray task, in Ray Train alone; then
   the search without W&B), each ratio to plain in ``ladder_ratio``: where the per-epoch overhead comes from.

5. **The floor** (``--floor``): a fresh interpreter's start and imports, and an actor's start in a started Ray, bare
   and importing what a Train worker imports: the part of the fixed cost that Ray's fresh processes per trial set.

Writes ``--out`` (JSON). Run it on a quiet machine: every figure is a wall-clock time.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from tuneae.checkpoint import asha_rungs, checkpoint_kind, save_checkpoint
from tuneae.config import DataConfig, ModelConfig, TrainConfig, to_flat
from tuneae.data import phantom_images
from tuneae.search.session import TRAIN_POLL_ENV, ray_env
from tuneae.train import fit, make_optimizer, seeded_model

GOALS = {"fixed_cost_s": 2.0, "epoch_ratio": 1.05}
"""The goals: at most 2 s of fixed cost per trial, a Ray epoch at most 5% slower than plain PyTorch."""
REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "brain-tumor-mri"
"""This project's MRI folder beside the checkout (section 4's data when it exists)."""
VARIANTS = ("product", "upstream-poll", "preimport", "side-by-side")
"""Ways of running the same trials (see the module's docstring)."""
LOG_KEY, TRIAL_KEY = "bench.log", "bench.trial"
"""Trial-config keys of the event log's path and the trial id (``from_flat`` ignores the ``bench`` section)."""


# ------------------------------------------------------------------------------------------- the event log
def log_event(path: str, event: str, **data) -> None:
    """Append ``{"event", "t" (wall clock, s), **data}`` as one line to ``path`` (appends of a line are atomic)."""
    with open(path, "a") as f:
        f.write(json.dumps({"event": event, "t": time.time(), **data}) + "\n")


def timed_loop(config: dict) -> dict | None:
    """The product's Train worker loop, with its process start, entry and every report logged."""
    import psutil
    import ray.train

    from tuneae.trainable import train_loop_per_worker

    path, trial = config[LOG_KEY], config[TRIAL_KEY]
    log_event(path, "worker_proc", trial=trial, at=psutil.Process().create_time())
    log_event(path, "worker_start", trial=trial)
    real = ray.train.report

    def report(metrics, checkpoint=None, **kw):
        log_event(path, "report_call", trial=trial, epoch=metrics["epoch"])
        real(metrics, checkpoint=checkpoint, **kw)
        log_event(path, "report_done", trial=trial, epoch=metrics["epoch"], ckpt=checkpoint is not None)

    ray.train.report = report  # this worker process only
    return train_loop_per_worker(config)


def timed_trial(config: dict, **kwargs) -> None:
    """The product's Tune trial function (:func:`tuneae.trainable.run_trial`) with its start and end logged."""
    import psutil
    import ray.tune

    import tuneae.trainable as trainable

    trial = ray.tune.get_context().get_trial_id()
    log_event(config[LOG_KEY], "trial_proc", trial=trial, at=psutil.Process().create_time())
    log_event(config[LOG_KEY], "trial_start", trial=trial)
    trainable.train_loop_per_worker = timed_loop  # run_trial launches the worker loop by this name
    trainable.run_trial({**config, TRIAL_KEY: trial}, **kwargs)
    log_event(config[LOG_KEY], "trial_end", trial=trial)


# ------------------------------------------------------------------------------------------------ running
def start_ray(cpus: int, preimport: bool, poll_s: str | None = None) -> float:
    """Start a local Ray as the search does (:func:`tuneae.search.session.start_local_ray`, its workers'
    environment from :func:`tuneae.search.session.ray_env`), with Ray Train's poll interval ``poll_s`` instead of
    the product's when given; returns its seconds."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    from tuneae.search.session import _free_port
    from tuneae.trainable import WORKER_SETUP_HOOK

    t = time.perf_counter()
    port = _free_port()
    os.environ["RAY_API_SERVER_ADDRESS"] = api = f"http://127.0.0.1:{port}"
    env = {"env_vars": {**ray_env(), "RAY_API_SERVER_ADDRESS": api, **({TRAIN_POLL_ENV: poll_s} if poll_s else {})}}
    if preimport:
        env["worker_process_setup_hook"] = WORKER_SETUP_HOOK
    ray.init(num_cpus=cpus, include_dashboard=True, dashboard_port=port, runtime_env=env, log_to_driver=False)
    return time.perf_counter() - t


def run_trials(arrays: dict, config: dict, n: int, cpus: int, max_concurrent: int, storage: Path) -> dict:
    """``n`` trials of ``config`` under one Tune experiment; returns wall time, events and every trial's results."""
    import ray
    from ray import tune

    from tuneae.trainable import TrialResources

    log = str(storage / "events.jsonl")
    trainable = tune.with_parameters(timed_trial, data_box={"ref": ray.put(arrays)},
                                     resources=TrialResources(1, float(cpus), 0.0),
                                     train_storage=str(storage / "train"))
    trainable = tune.with_resources(trainable, {"CPU": 0, "node:__internal_head__": 0.001})  # as the search
    tuner = tune.Tuner(trainable, param_space={**config, LOG_KEY: log},
                       tune_config=tune.TuneConfig(num_samples=n, max_concurrent_trials=max_concurrent),
                       run_config=tune.RunConfig(name="bench", storage_path=str(storage), verbose=0))
    t0 = time.time()
    grid = tuner.fit()
    t1 = time.time()
    errors = [str(r.error) for r in grid if r.error]
    if errors:
        raise RuntimeError(f"benchmark trial failed: {errors[0][-2000:]}")
    events = [json.loads(line) for line in Path(log).read_text().splitlines()]
    rows = {r.metrics["trial_id"]: r.metrics_dataframe.to_dict("records") for r in grid}
    pgs = [p["stats"]["end_to_end_creation_latency_ms"] / 1000 for p in ray.util.placement_group_table().values()
           if p.get("stats")]
    return {"t0": t0, "t1": t1, "events": events, "rows": rows, "placement_group_s": pgs}


def plain(train: np.ndarray, val: np.ndarray, model_cfg: ModelConfig, cfg: TrainConfig, cpus: int) -> dict:
    """The same training in this process with ``cpus`` torch threads: seconds of the first (cold) and a second
    (warm) fit, and the seconds of each epoch of the warm one (``on_epoch`` to ``on_epoch``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(cpus)
    try:
        out = {}
        for label in ("cold", "warm"):
            stamps = [time.perf_counter()]
            fit(seeded_model(model_cfg, cfg), train, val, cfg,
                on_epoch=lambda e, m, stamps=stamps: stamps.append(time.perf_counter()))
            out[f"{label}_fit_s"] = stamps[-1] - stamps[0]
            out["epoch_s"] = list(np.diff(stamps))
        return out
    finally:
        torch.set_num_threads(threads)


# ------------------------------------------------------------------------------------------------ analysis
def breakdown(run: dict, plain_fit_s: float) -> list[dict]:
    """Per trial (in start order): where its wall time went, in seconds; ``fixed_cost_s`` = total - plain fit."""
    by: dict[str, dict] = {}
    for e in run["events"]:
        d = by.setdefault(e["trial"], {"reports": []})
        if e["event"] in ("report_call", "report_done"):
            d["reports"].append(e)
        else:
            d[e["event"]] = e.get("at", e["t"])
    out, prev = [], run["t0"]
    for trial, d in sorted(by.items(), key=lambda kv: kv[1]["trial_start"]):
        calls = [e["t"] for e in d["reports"] if e["event"] == "report_call"]
        dones = [e["t"] for e in d["reports"] if e["event"] == "report_done"]
        start = max(prev, d["trial_proc"])
        row = {"trial": trial,
               "tune_launch_s": d["trial_start"] - prev,
               "tune_actor_imports_s": d["trial_start"] - start,
               "train_setup_s": d["worker_start"] - d["trial_start"],
               "worker_imports_s": d["worker_start"] - max(d["worker_proc"], d["trial_start"]),
               "first_epoch_s": calls[0] - d["worker_start"],
               "first_report_s": dones[0] - calls[0],
               "teardown_s": d["trial_end"] - dones[-1],
               "total_s": d["trial_end"] - prev}
        row["fixed_cost_s"] = row["total_s"] - plain_fit_s
        out.append({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()})
        prev = d["trial_end"]
    return out


def checkpoint_traffic(run: dict) -> dict:
    """Bytes and seconds a trial spent on checkpoints: ``checkpoint/save_s`` plus the extra time of a report that
    carries a checkpoint (its upload to storage) over the median report without one."""
    (rows,) = run["rows"].values()
    reports: dict[int, dict] = {}
    for e in (e for e in run["events"] if e["event"] in ("report_call", "report_done")):
        reports.setdefault(e["epoch"], {})[e["event"]] = e if e["event"] == "report_done" else e["t"]
    durations = {ep: (r["report_done"]["t"] - r["report_call"], r["report_done"]["ckpt"]) for ep, r in reports.items()
                 if "report_done" in r}
    plain_reports = [s for s, ck in durations.values() if not ck]
    base = statistics.median(plain_reports) if plain_reports else 0.0
    upload = sum(max(s - base, 0.0) for s, ck in durations.values() if ck)
    return {"checkpoints": sum(1 for r in rows if r.get("checkpoint/bytes")),
            "bytes": int(sum(r.get("checkpoint/bytes", 0) for r in rows)),
            "save_s": round(sum(r.get("checkpoint/save_s", 0.0) for r in rows), 3),
            "upload_s": round(upload, 3)}


def projection(model_cfg: ModelConfig, schedules: dict[str, tuple[int, float, int]], every: int) -> dict:
    """Bytes per trial by the schedule alone, for one model: a trial that runs to max_t and one stopped at the
    first rung, checkpointing only where used (``now``: :func:`tuneae.checkpoint.checkpoint_kind`) and every epoch
    with weights and optimizer (``before``). Sizes from writing that model's checkpoint once."""
    model = seeded_model(model_cfg, TrainConfig())
    opt = make_optimizer(model, TrainConfig(), "cpu")
    model(torch.rand(2, 1, model_cfg.image_size, model_cfg.image_size)).mean().backward()
    opt.step()  # Adam's state exists only after a step
    with tempfile.TemporaryDirectory() as tmp:
        save_checkpoint(tmp, model, DataConfig(), TrainConfig(), 1, {}, opt)
        weights, optim = (Path(tmp) / "model.pt").stat().st_size, (Path(tmp) / "optimizer.pt").stat().st_size
    size = {"weights": weights, "resume": weights + optim, "": 0}
    out = {"model": asdict(model_cfg), "weights_bytes": weights, "optimizer_bytes": optim}
    for name, (grace, rf, max_t) in schedules.items():
        rungs = asha_rungs(grace, rf, max_t)
        for label, last in (("to_end", max_t), ("stopped_at_first_rung", rungs[0])):
            now = sum(size[checkpoint_kind(e, max_t, every, rungs)] for e in range(1, last + 1))
            out[f"{name}_{label}"] = {"epochs": last, "before_bytes": last * (weights + optim), "now_bytes": now}
    return out


# ---------------------------------------------------------------------------------------------- sections
def fixed_cost(args, variants: list[str]) -> dict:
    """Section 1: per variant, Ray's start and the breakdown of each trial against the plain fit."""
    import ray

    size, n_img = 32, 48
    imgs, _, _ = phantom_images(n_img, size, seed=0)
    arrays = {"train": imgs[:40], "val": imgs[40:]}
    data_cfg = DataConfig(source="phantom", image_size=size)
    model_cfg = ModelConfig(kind="ae", image_size=size, latent_dim=32, base_channels=8)
    cfg = TrainConfig(epochs=1, batch_size=16)
    base = plain(arrays["train"], arrays["val"], model_cfg, cfg, args.cpus)
    config = {**to_flat(data_cfg, model_cfg, cfg)}
    out = {"data": {"images": n_img, "size": size, "epochs": 1, "model": asdict(model_cfg)}, "plain": base}
    for variant in variants:
        ray_start = start_ray(args.cpus, preimport=variant == "preimport",
                              poll_s="2.0" if variant == "upstream-poll" else None)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                run = run_trials(arrays, config, args.trials, args.cpus, 2 if variant == "side-by-side" else 1,
                                 Path(tmp))
        finally:
            ray.shutdown()
        trials = breakdown(run, base["warm_fit_s"]) if variant != "side-by-side" else []
        per_trial = (run["t1"] - run["t0"]) / args.trials
        out[variant] = {"ray_start_s": round(ray_start, 2), "wall_per_trial_s": round(per_trial, 2),
                        "fixed_cost_per_trial_s": round(per_trial - base["warm_fit_s"], 2),
                        "placement_group_s": [round(s, 3) for s in run["placement_group_s"]], "trials": trials}
        if trials:  # the first trial also pays Tune's experiment start: the later ones show the steady state
            steady = trials[1:] or trials
            out[variant]["steady_state_median_s"] = {k: round(statistics.median(t[k] for t in steady), 3)
                                                     for k in trials[0] if k != "trial"}
        print(variant, json.dumps(out[variant].get("steady_state_median_s", out[variant])), flush=True)
    return out


def full_size(args) -> dict:
    """Sections 2 and 3: one trial at 128 px (checkpoints only where used) and one checkpointing every epoch, against
    plain PyTorch."""
    import ray

    imgs, _, _ = phantom_images(args.full_images, args.full_size, seed=0)
    n_val = max(len(imgs) // 10, 2)
    arrays = {"train": imgs[n_val:], "val": imgs[:n_val]}
    data_cfg = DataConfig(source="phantom", image_size=args.full_size)
    model_cfg = ModelConfig(kind="ae", image_size=args.full_size, latent_dim=1024,
                            depth=5 if args.full_size >= 32 else 3)
    now = TrainConfig(epochs=args.full_epochs, batch_size=32)
    base = plain(arrays["train"], arrays["val"], model_cfg, now, args.cpus)
    from tuneae.trainable import asha_config

    schedule = asha_config(1, 3.0, args.full_epochs)  # the cpu preset's ASHA: rungs at 1, 3, 9, ...
    out = {"data": {"images": len(imgs), "size": args.full_size, "epochs": args.full_epochs,
                    "model": asdict(model_cfg)}, "plain_epoch_s": [round(s, 3) for s in base["epoch_s"]]}
    start_ray(args.cpus, preimport=False)
    try:
        for label, cfg in (("now", now), ("before", replace(now, checkpoint_every=1))):
            with tempfile.TemporaryDirectory() as tmp:
                run = run_trials(arrays, {**to_flat(data_cfg, model_cfg, cfg), **schedule}, 1, args.cpus, 1,
                                 Path(tmp))
            dones = sorted(e["t"] for e in run["events"] if e["event"] == "report_done")
            out[f"ray_epoch_s_{label}"] = [round(s, 3) for s in np.diff(dones)]
            out[f"checkpoints_{label}"] = checkpoint_traffic(run)
    finally:
        ray.shutdown()
    ray_epoch = statistics.median(out["ray_epoch_s_now"]) if out["ray_epoch_s_now"] else float("nan")
    out["epoch_ratio"] = round(ray_epoch / statistics.median(base["epoch_s"][1:] or base["epoch_s"]), 3)
    return out


# --------------------------------------------------------------------- 5. the floor of Ray's process-per-actor model
def _wall(code: str, env: dict[str, str], repeats: int) -> float:
    """Median wall seconds of ``python -c code`` in a fresh process (the interpreter's own start included)."""
    walls = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
        walls.append(time.perf_counter() - t)
    return statistics.median(walls)


def floor(args) -> dict:
    """Section 5 (``--floor``): what one trial costs at least while Ray runs each trial as fresh processes. A trial
    is three new actor processes one after the other (Tune's trial actor, which imports the trainable; Ray Train's
    controller; the Train worker, which imports torch and tuneae before the loop starts), so its floor is three
    actor starts plus those imports. Measured: a fresh interpreter and its imports (``python -c``), and in a
    started Ray (as the search starts it) an actor's creation to its first reply, bare and importing what the
    Train worker imports. Medians of ``--floor-repeats``."""
    import ray

    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    n = args.floor_repeats
    base = _wall("pass", env, n)
    out = {"repeats": n, "python_start_s": round(base, 3),
           "import_s": {mod: round(_wall(f"import {mod}", env, n) - base, 3)
                        for mod in ("torch", "ray", "ray.train.torch", "tuneae.trainable")}}
    start_ray(args.cpus, preimport=False)
    try:
        @ray.remote(num_cpus=0)
        class Probe:
            def ping(self, imports: bool) -> int:
                if imports:
                    import ray.train.torch  # noqa: F401  (what the Train worker imports besides tuneae)

                    import tuneae.trainable  # noqa: F401
                return os.getpid()

        for label, imports in (("actor_bare_s", False), ("actor_with_worker_imports_s", True)):
            walls = []
            for _ in range(n):
                t = time.perf_counter()
                a = Probe.remote()
                ray.get(a.ping.remote(imports))
                walls.append(time.perf_counter() - t)
                ray.kill(a)
            out[label] = round(statistics.median(walls), 3)
    finally:
        ray.shutdown()
    out["three_actors_s"] = round(2 * out["actor_bare_s"] + out["actor_with_worker_imports_s"]
                                  + out["import_s"]["tuneae.trainable"], 3)
    out["note"] = ("three_actors_s: two bare actor starts (the trial actor, the Train controller) plus one that "
                   "imports what the worker imports, plus the trial actor's import of the trainable: the part of a "
                   "trial's fixed cost that comes from Ray starting fresh processes for every trial")
    return out


# ------------------------------------------------------------------------- 4. per-epoch ratio in the real search
PLAIN_CHILD = """
import json, sys, time
import torch
from tuneae.config import DataConfig, ModelConfig, TrainConfig
from tuneae.data import load_splits
from tuneae.train import fit, seeded_model
source, size, epochs, cache, threads, mode = sys.argv[1:7]
size, epochs, threads = int(size), int(epochs), int(threads)
s = load_splits(DataConfig(source=source, image_size=size, cache_dir=cache))
cfg = TrainConfig(epochs=epochs)

def run(train, val, wrap=None):
    torch.set_num_threads(threads)
    stamps = [time.perf_counter()]
    fit(seeded_model(ModelConfig(image_size=size), cfg), train, val, cfg,
        on_epoch=lambda e, m: stamps.append(time.perf_counter()), wrap=wrap)
    return [b - a for a, b in zip(stamps, stamps[1:])]

if mode == "plain":
    out = run(s.train, s.val)
else:
    import ray
    from tuneae.search.session import start_local_ray
    start_local_ray(num_cpus=threads)
    if mode == "ray":  # Ray started, the fit still in this process
        out = run(s.train, s.val)
    elif mode == "task":  # in a plain Ray task holding the CPUs, arrays through the object store
        ref = ray.put({"train": s.train, "val": s.val})
        fitter = ray.remote(num_cpus=threads)(lambda box: run(ray.get(box["ref"])["train"], ray.get(box["ref"])["val"]))
        out = ray.get(fitter.remote({"ref": ref}))
    else:  # "train": a Ray Train TorchTrainer as the product builds it (1 worker, prepare_model), no Tune
        import tempfile
        import ray.train
        import ray.train.torch
        from ray.train.torch import TorchTrainer
        ref = ray.put({"train": s.train, "val": s.val})
        def loop(config):
            arrays = ray.get(config["box"]["ref"])
            return run(arrays["train"], arrays["val"], ray.train.torch.prepare_model)  # rank 0's: fit's return_value
        with tempfile.TemporaryDirectory() as tmp:
            res = TorchTrainer(loop, train_loop_config={"box": {"ref": ref}},
                               scaling_config=ray.train.ScalingConfig(num_workers=1,
                                                                      resources_per_worker={"CPU": threads}),
                               run_config=ray.train.RunConfig(storage_path=tmp, name="ladder")).fit()
            out = res.return_value
    ray.shutdown()
print("EPOCHS " + json.dumps(out))
"""
"""The non-search rungs of section 4, each in its own process (so an environment variant applies to it as to the
search): the seed project's recipe (the dataclass defaults: AE, latent 512, batch 16) on the same split with the
torch threads given, run ``plain`` (no Ray), ``ray`` (a local Ray started, the fit still in the driver), ``task``
(in a Ray task holding the CPUs, the arrays through the object store) or ``train`` (in a Ray Train ``TorchTrainer``
as the product builds one, no Tune)."""
LADDER = ("plain", "ray", "task", "train")
"""Section 4's rungs outside the search, from plain PyTorch to Ray Train; the search itself (W&B off, then on) follows
with ``--ladder``."""
COMPETITOR = ("import time\nwhile True:\n    t = time.perf_counter()\n"
              "    while time.perf_counter() - t < {busy}: pass\n    time.sleep({idle})\n")
"""A competing process: busy for ``duty`` of every 100 ms, asleep for the rest (one core's share)."""


def _env(pairs: list[str]) -> dict[str, str]:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--epoch-env {pair!r}: expected KEY=VALUE")
        env[key] = value
    return env


def _median_after_first(values: list[float]) -> float:
    return statistics.median(values[1:] or values) if values else float("nan")


def _search_run(cmd: list[str], env: dict[str, str], root: Path) -> tuple[list[float], float]:
    """Run one section-4 search under ``root``; its epochs' seconds (Tune's ``time_this_iter_s``) and wall time."""
    root.mkdir(parents=True)
    t = time.perf_counter()
    run = subprocess.run([*cmd, "--storage-path", str(root / "runs"), "--results-dir", str(root / "results")],
                         env={**env, "HOME": str(root)}, cwd=root, capture_output=True, text=True, check=False)
    if run.returncode:
        raise RuntimeError(f"section 4's search failed (exit {run.returncode}):\n{(run.stdout + run.stderr)[-3000:]}")
    wall = time.perf_counter() - t
    (progress,) = (root / "runs" / "epochs" / "ae").glob("trial_*/progress.csv")
    return [float(r["time_this_iter_s"]) for r in csv.DictReader(progress.open())], wall


def search_epochs(args) -> dict:
    """Section 4: seconds per epoch of the seed project's AE recipe in the real search (``python -m tuneae.search
    --preset cpu``, one trial, W&B on unless ``--epoch-no-wandb``) and in plain PyTorch on the
    same split, each in its own process with the same environment (``--epoch-env``), optionally next to a competing
    process (``--compete``: the share of one core it keeps busy). Ratio = median of epochs >= 2, search over plain."""
    source = args.epoch_data
    out: dict = {"data": Path(source).name if source != "phantom" else "phantom", "size": args.epoch_size,
                 "epochs": args.epoch_epochs, "env": args.epoch_env, "compete": args.compete,
                 "wandb": not args.epoch_no_wandb}
    env = _env(args.epoch_env)
    competitor = None
    with tempfile.TemporaryDirectory() as tmp:
        cache = str(Path(tmp) / "runs" / "cache")
        if args.compete > 0:
            busy = 0.1 * args.compete
            competitor = subprocess.Popen([sys.executable, "-c", COMPETITOR.format(busy=busy, idle=0.1 - busy)])
        try:
            rungs = {}
            for mode in LADDER if args.ladder else ("plain",):
                run = subprocess.run([sys.executable, "-c", PLAIN_CHILD, source, str(args.epoch_size),
                                      str(args.epoch_epochs), cache, str(args.cpus), mode],
                                     env={**env, "HOME": tmp}, capture_output=True, text=True, check=False)
                if run.returncode or "EPOCHS " not in run.stdout:
                    raise RuntimeError(f"section 4, rung {mode!r} failed:\n{run.stderr[-3000:]}")
                rungs[mode] = json.loads(run.stdout.split("EPOCHS ", 1)[1])
            plain_s = rungs["plain"]
            cmd = [sys.executable, "-m", "tuneae.search", "--preset", "cpu", "--model", "ae", "--num-samples", "1",
                   "--epochs", str(args.epoch_epochs), "--image-size", str(args.epoch_size), "--data", source,
                   "--cpus-per-trial", str(args.cpus), "--name", "epochs",
                   *(["--no-wandb"] if args.epoch_no_wandb else [])]
            if args.ladder and not args.epoch_no_wandb:  # the search without W&B first
                rungs["search_no_wandb"] = _search_run([*cmd, "--no-wandb"], env, Path(tmp) / "nowandb")[0]
            search_s, wall = _search_run(cmd, env, Path(tmp) / "search")
        finally:
            if competitor is not None:
                competitor.kill()
                competitor.wait()
    out.update(ladder={k: [round(x, 2) for x in v] for k, v in rungs.items()},
               ladder_ratio={k: round(_median_after_first(v) / _median_after_first(plain_s), 3)
                             for k, v in rungs.items()},
               plain_epoch_s=[round(x, 2) for x in plain_s], search_epoch_s=[round(x, 2) for x in search_s],
               search_wall_s=round(wall, 1),
               epoch_ratio=round(_median_after_first(search_s) / _median_after_first(plain_s), 3))
    print("search epochs", json.dumps(out), flush=True)
    return out


def main(argv: list[str] | None = None) -> dict:
    """Run the sections asked for and write the JSON file; returns what it wrote."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpus", type=int, default=min(os.cpu_count() or 1, 2), help="CPUs of Ray and of each trial")
    ap.add_argument("--trials", type=int, default=4, help="trials per variant (the first also starts the experiment)")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument("--full-images", type=int, default=300)
    ap.add_argument("--full-size", type=int, default=128)
    ap.add_argument("--full-epochs", type=int, default=4)
    ap.add_argument("--skip-full", action="store_true", help="only the fixed cost")
    ap.add_argument("--search-epochs", action="store_true",
                    help="section 4: the per-epoch ratio in the real search (python -m tuneae.search) on --epoch-data")
    ap.add_argument("--epoch-data", default=str(REAL_DATA) if REAL_DATA.is_dir() else "phantom",
                    help="data of section 4 (default: this project's MRI folder beside the checkout)")
    ap.add_argument("--epoch-size", type=int, default=128)
    ap.add_argument("--epoch-epochs", type=int, default=3)
    ap.add_argument("--epoch-env", nargs="*", default=[], metavar="KEY=VALUE",
                    help="environment of both sides of section 4, e.g. OMP_WAIT_POLICY=PASSIVE")
    ap.add_argument("--compete", type=float, default=0.0,
                    help="section 4 next to a process that keeps this share of one core busy (0: none)")
    ap.add_argument("--epoch-no-wandb", action="store_true", help="section 4's search without W&B")
    ap.add_argument("--ladder", action="store_true",
                    help="section 4 also in a process with Ray started, in a Ray task, in Ray Train alone and in "
                         "the search without W&B: where the per-epoch overhead comes from")
    ap.add_argument("--skip-fixed", action="store_true", help="skip section 1 (the fixed cost)")
    ap.add_argument("--floor", action="store_true",
                    help="section 5: fresh-process and actor-start costs, the floor of a trial under Ray")
    ap.add_argument("--floor-repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true",
                    help="a check that it runs: 2 trials, the product variant, 32 px full size")
    ap.add_argument("--out", default="results/bench-overhead.json")
    args = ap.parse_args(argv)
    if args.quick:
        args.trials, args.variants, args.full_images, args.full_size, args.full_epochs = 2, ["product"], 40, 32, 3
    info = {"command": "python benchmarks/overhead.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "machine": {"cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                        "ray_cpus": args.cpus, "torch_threads_plain": args.cpus},
            "versions": {"torch": torch.__version__, "ray": __import__("ray").__version__},
            "ray_train_poll_s": float(ray_env()[TRAIN_POLL_ENV]),
            "date": time.strftime("%Y-%m-%d"), "goals": GOALS}
    if not args.skip_fixed:
        info["fixed_cost"] = fixed_cost(args, args.variants)
    if not args.skip_full:
        info["full_size"] = full_size(args)
    if args.search_epochs:
        info["search_epochs"] = search_epochs(args)
    if args.floor:
        info["floor"] = floor(args)
    info["checkpoint_projection"] = {
        f"ae_latent_{latent}": projection(ModelConfig(kind="ae", image_size=128, latent_dim=latent),
                                          {"cpu_preset": (1, 3.0, 9), "gpu_preset": (5, 2.0, 40)},
                                          TrainConfig().checkpoint_every)
        for latent in (1024, 2048)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(info, indent=2) + "\n")
    print(f"wrote {args.out}")
    return info


if __name__ == "__main__":
    main()
