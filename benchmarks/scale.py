"""How a search's cost grows with the number of trials: one search of many tiny trials, watched as it runs.

    python benchmarks/scale.py [--trials 200] [--epochs 2] [--max-concurrent 1] [--no-wandb] [--interval 2]
                               [--timeout 14400] [--keep] [--out results/bench-scale.json]
    python benchmarks/scale.py --reanalyse /tmp/scale-XXXX [--out ...]   (a folder kept by --keep)

Runs ONE real search through the product's entry point, in a subprocess that starts its own local Ray::

    python -m tuneae.search --preset smoke --model ae --num-samples N --name scale --storage-path <tmp>/runs
        --results-dir <tmp>/results --epochs E --max-concurrent C --lr <N / 16 learning rates> --wandb-mode offline

(the smoke data: 96 synthetic 32 px phantoms; the smoke space with as many learning rates, log-spaced over the smoke
preset's 1e-3 .. 3e-3, as make every trial a new configuration, so TPE never runs out of untried points; ASHA grace 1,
reduction factor 2, so about half the trials stop at epoch 1; W&B on and offline, as the product runs by default,
unless ``--no-wandb``). Everything it writes, Ray's session folder (``RAY_TMPDIR``) and ``HOME`` included, lies in one
temporary folder, removed at the end (``--keep`` keeps it).

While it runs, every ``--interval`` seconds this process records (through psutil):

- ``t_s``: seconds since the search was launched;
- ``driver_rss_kib`` / ``driver_pss_kib``: the search process's (Tune's driver) resident and proportional set size;
- ``total_pss_kib`` / ``total_rss_kib`` and ``processes``: summed over the search's process tree (a local Ray's
  GCS, raylet, dashboard and workers are its descendants), plus any process whose command line names the private
  Ray folder (an orphaned Ray process);
- ``folder_bytes``: the experiment folder's size (sum of file sizes: Tune state, Train checkpoints, W&B files,
  the Optuna study);
- ``trials_started``: trial folders Tune has made so far.

After it ends, from each trial's ``result.json`` and Tune's experiment state:

- per trial, in start order: ``start_s`` (Tune's start of the trial, seconds since launch), ``wall_s`` (start to its
  last report's ``timestamp``, whole seconds, so +-1 s), ``gap_s`` (start to the next trial's start: everything a
  trial costs the search, teardown and the searcher's next proposal included), epochs reported and status;
- ``finished`` for every sample: trials whose last report came at or before it;
- linear fits (``scipy.stats.linregress``; slopes per 100 trials) of ``gap_s`` against the trial index and of
  driver PSS, total PSS and folder size against finished trials (one point per finished count: the median of the
  samples taken at that count, from the first finished trial on);
- the verdicts: a quantity is **flat** when its fitted growth over 100 trials is below :data:`FLAT_FRACTION` of its
  median (a falling trend counts as flat); with fewer than :data:`MIN_POINTS` points the verdict is null.

Units: seconds, KiB (memory), bytes (folder). Writes ``--out`` (JSON) and the same name with
``.png`` (per-trial seconds against trial index; driver and total memory, and folder size, against finished trials).
No path of this machine is recorded. Each sample reads about 35 ``smaps_rollup`` files (about 0.1-0.2 s of CPU); the
JSON records this process's own CPU time. Run it on a quiet machine: every figure is a wall-clock time or a size
under whatever else runs (the load average at start and end is recorded).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import psutil

from tuneae.layout import portable_command  # importing tuneae also keeps matplotlib's cache out of $HOME

REPO = Path(__file__).resolve().parents[1]
NAME, KIND = "scale", "ae"
"""The search's ``--name`` and its one model kind."""
FLAT_FRACTION = 0.05
"""Flat: the fitted growth over 100 trials is below this fraction of the quantity's median."""
MIN_POINTS = 20
"""Fewest points (trials, or finished-trial counts) a fit needs for a verdict."""
CONFIGS_PER_LR = 16
"""Configurations of the smoke space for ``ae`` per learning rate (batch 2 x latent 2 x layout 2 x loss 2)."""


# ------------------------------------------------------------------------------------------------ processes
def _processes_with(marker: str) -> list[psutil.Process]:
    """Live processes whose command line holds ``marker``."""
    out = []
    for proc in psutil.process_iter(["cmdline"]):
        if marker in " ".join(proc.info["cmdline"] or ()):
            out.append(proc)
    return out


def process_tree(root: int, marker: str) -> dict[int, float]:
    """``root`` and its live descendants, plus every process whose command line holds ``marker`` (the private Ray
    folder: a Ray process whose parent died) and their descendants; pid -> start time (psutil's create_time)."""
    out: dict[int, float] = {}
    try:
        tops = [psutil.Process(root)]
    except psutil.NoSuchProcess:
        tops = []
    for top in tops + _processes_with(marker):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            for proc in (top, *top.children(recursive=True)):
                with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                    out.setdefault(proc.pid, proc.create_time())
    return out


def memory_kib(pid: int) -> tuple[int, int] | None:
    """(RSS, PSS) of a live process in KiB (psutil's ``memory_full_info``); None once it has gone."""
    try:
        info = psutil.Process(pid).memory_full_info()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return info.rss // 1024, info.pss // 1024


def _same(pid: int, started: float) -> psutil.Process | None:
    """The process ``pid`` if it is still the one that started at ``started`` (not a reused pid), else None."""
    try:
        proc = psutil.Process(pid)
        return proc if proc.create_time() == started else None
    except psutil.NoSuchProcess:
        return None


def alive(procs: dict[int, float]) -> dict[int, str]:
    """The processes of ``procs`` (pid -> start time) still running (same pid and start time), pid -> command."""
    out = {}
    for pid, started in procs.items():
        if (proc := _same(pid, started)) is not None:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                out[pid] = " ".join(proc.cmdline())
    return out


def kill(procs: dict[int, float]) -> dict[int, str]:
    """SIGKILL the processes of ``procs`` still running (by pid, checked against their start time); returns them."""
    left = alive(procs)
    for pid in left:
        if (proc := _same(pid, procs[pid])) is not None:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
    return left


# ------------------------------------------------------------------------------------------------ the folder
def folder_bytes(path: Path) -> int:
    """Sum of the sizes of the regular files under ``path`` (0 before it exists); files that vanish mid-walk are
    skipped (Tune and Ray replace theirs atomically)."""
    total, todo = 0, [str(path)]
    while todo:
        try:
            entries = list(os.scandir(todo.pop()))
        except OSError:
            continue
        for e in entries:
            try:
                if e.is_dir(follow_symlinks=False):
                    todo.append(e.path)
                elif e.is_file(follow_symlinks=False):
                    total += e.stat(follow_symlinks=False).st_size
            except OSError:
                pass
    return total


def trials_started(kind_dir: Path) -> int:
    """Trial folders Tune has made so far."""
    try:
        return sum(1 for e in os.scandir(kind_dir) if e.name.startswith("trial_") and e.is_dir())
    except OSError:
        return 0


# ------------------------------------------------------------------------------------------------ the search
def lr_choices(trials: int) -> list[float]:
    """Learning rates, log-spaced over the smoke preset's 1e-3 .. 3e-3, enough for ``trials`` distinct
    configurations (at least the preset's two)."""
    n = max(2, math.ceil(trials / CONFIGS_PER_LR))
    return sorted({float(f"{v:.4g}") for v in np.geomspace(1e-3, 3e-3, n)})


def search_args(args: argparse.Namespace, storage: str, results: str) -> list[str]:
    """The search's arguments (after ``python -m tuneae.search``)."""
    return ["--preset", "smoke", "--model", KIND, "--num-samples", str(args.trials), "--name", NAME,
            "--storage-path", storage, "--results-dir", results, "--epochs", str(args.epochs),
            "--max-concurrent", str(args.max_concurrent), "--lr", *(str(v) for v in lr_choices(args.trials)),
            *(["--no-wandb"] if args.no_wandb else ["--wandb-mode", "offline"])]


def run_search(args: argparse.Namespace, root: Path) -> dict:
    """Run the search in ``root`` and sample it every ``args.interval`` seconds until it exits.

    Returns:
        ``{"t0" (launch, epoch seconds), "wall_s", "returncode", "samples", "seen" (pid -> start time of every
        process seen in the tree), "sampling_cpu_s", "timed_out"}``.
    """
    ray_tmp = root / "ray"
    ray_tmp.mkdir()
    (root / "home").mkdir()
    env = {**os.environ, "HOME": str(root / "home"), "RAY_TMPDIR": str(ray_tmp), "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_AUTH_MODE": "disabled", "PYTHONPATH": os.pathsep.join(
               [str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])}
    for key in ("RAY_ADDRESS", "WANDB_API_KEY"):  # a local Ray of its own; W&B offline
        env.pop(key, None)
    cmd = [sys.executable, "-m", "tuneae.search", *search_args(args, str(root / "runs"), str(root / "results"))]
    experiment = root / "runs" / NAME
    samples, seen, timed_out = [], {}, False
    cpu0 = time.process_time()
    with (root / "search.log").open("w") as log:
        t0 = time.time()
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        while proc.poll() is None:
            tick = time.monotonic()
            tree = process_tree(proc.pid, str(ray_tmp))
            seen.update(tree)
            mem = {p: m for p in tree if (m := memory_kib(p)) is not None}
            driver = mem.get(proc.pid, (0, 0))
            samples.append({"t_s": round(time.time() - t0, 2), "driver_rss_kib": driver[0],
                            "driver_pss_kib": driver[1], "total_rss_kib": sum(m[0] for m in mem.values()),
                            "total_pss_kib": sum(m[1] for m in mem.values()), "processes": len(mem),
                            "folder_bytes": folder_bytes(experiment),
                            "trials_started": trials_started(experiment / KIND)})
            if time.time() - t0 > args.timeout:
                timed_out = True
                proc.send_signal(signal.SIGINT)  # the search's Ctrl-C: it stops Tune and shuts its Ray down
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    kill(seen)
                break
            time.sleep(max(0.0, args.interval - (time.monotonic() - tick)))
        proc.wait()
    except BaseException:
        seen.update(process_tree(proc.pid, str(ray_tmp)))
        kill(seen)
        raise
    wall = time.time() - t0
    return {"t0": t0, "wall_s": wall, "returncode": proc.returncode, "samples": samples, "seen": seen,
            "sampling_cpu_s": time.process_time() - cpu0, "timed_out": timed_out, "ray_tmp": str(ray_tmp)}


def end_leftovers(seen: dict[int, int], ray_tmp: str, wait_s: float = 15.0) -> dict[int, str]:
    """Wait up to ``wait_s`` for every process of the search (and any naming its Ray folder) to exit after the
    search did; kill by pid what remains and return it (pid -> command line; empty when Ray shut down cleanly)."""
    for proc in _processes_with(ray_tmp):
        with contextlib.suppress(psutil.NoSuchProcess):
            seen.setdefault(proc.pid, proc.create_time())
    deadline = time.monotonic() + wait_s
    while alive(seen) and time.monotonic() < deadline:
        time.sleep(0.5)
    return kill(seen)


# ------------------------------------------------------------------------------------------------ analysis
def _experiment_state(kind_dir: Path) -> dict[str, dict]:
    """Tune's last saved experiment state, trial id -> {"status", "start_time"} ({} when none is readable)."""
    states = sorted(kind_dir.glob("experiment_state-*.json"))
    if not states:
        return {}
    try:
        data = json.loads(states[-1].read_text())
    except (OSError, ValueError):
        return {}
    out = {}
    for meta, runtime in data.get("trial_data", []):
        meta, runtime = json.loads(meta), json.loads(runtime)
        out[meta["trial_id"]] = {"status": meta.get("status"), "start_time": runtime.get("start_time")}
    return out


def read_trials(kind_dir: Path, t0: float) -> list[dict]:
    """One row per trial, in start order: ``index`` (1-based), ``trial_id``, ``status``, ``epochs`` (reports),
    ``start_s`` (since launch), ``end_s`` (its last report), ``wall_s`` and ``gap_s`` (to the next trial's start;
    None for the last). Start: Tune's ``start_time`` (saved in its experiment state), else the first report's
    ``timestamp`` minus its ``time_this_iter_s``."""
    state = _experiment_state(kind_dir)
    rows = []
    for folder in kind_dir.glob("trial_*"):
        results = []
        with contextlib.suppress(OSError):
            results = [json.loads(line) for line in (folder / "result.json").read_text().splitlines() if line]
        tid = results[0]["trial_id"] if results else folder.name.removeprefix("trial_").split("_")[0]
        st = state.get(tid, {})
        start = st.get("start_time") or (results[0]["timestamp"] - results[0]["time_this_iter_s"] if results
                                         else None)
        if start is None:
            continue
        end = results[-1]["timestamp"] if results else None
        rows.append({"trial_id": tid, "status": st.get("status"), "epochs": len(results),
                     "start_s": round(start - t0, 2), "end_s": None if end is None else round(end - t0, 2),
                     "wall_s": None if end is None else round(end - start, 2)})
    rows.sort(key=lambda r: r["start_s"])
    for i, r in enumerate(rows):
        r["index"] = i + 1
        r["gap_s"] = round(rows[i + 1]["start_s"] - r["start_s"], 2) if i + 1 < len(rows) else None
    return [{k: r[k] for k in ("index", "trial_id", "status", "epochs", "start_s", "end_s", "wall_s", "gap_s")}
            for r in rows]


def add_finished(samples: list[dict], trials: list[dict]) -> None:
    """Set ``finished`` on every sample: trials whose last report came at or before it."""
    ends = sorted(r["end_s"] for r in trials if r["end_s"] is not None)
    for s in samples:
        s["finished"] = int(np.searchsorted(ends, s["t_s"], side="right"))


def by_finished(samples: list[dict], key: str, agg=statistics.median) -> tuple[list[int], list[float]]:
    """(finished counts, ``agg`` of ``key`` over the samples taken at each count), from the first trial's end to the
    last one's: the search's start-up and its shut-down (Ray gone) are left out."""
    last = max((s["finished"] for s in samples), default=0)
    groups: dict[int, list[float]] = {}
    for s in samples:
        if 1 <= s["finished"] < last and s[key]:
            groups.setdefault(s["finished"], []).append(s[key])
    counts = sorted(groups)
    return counts, [agg(groups[c]) for c in counts]


AGGREGATE = {"driver_pss_kib": statistics.median, "total_pss_kib": max, "folder_bytes": statistics.median}
"""How the samples at one finished count become one point: the driver's median; the peak of all processes (their
sum swings within a trial as its Train worker group starts and ends); the folder's median."""


def fit(x: list[float], y: list[float], unit: str, verdict: bool) -> dict:
    """Linear fit of ``y`` on ``x``: slope per 100 (x units), its standard error, intercept, r, median of ``y``,
    and (``verdict``) whether ``y`` is flat by :data:`FLAT_FRACTION` (null with fewer than :data:`MIN_POINTS`)."""
    out: dict = {"unit": unit, "points": len(x)}
    if len(x) < 3 or len(set(x)) < 2:
        return {**out, "slope_per_100": None, "flat": None} if verdict else {**out, "slope_per_100": None}
    from scipy.stats import linregress

    r = linregress(x, y)
    slope, med = float(r.slope), float(statistics.median(y))
    out.update({"slope_per_100": round(100 * slope, 4), "slope_per_100_stderr": round(100 * float(r.stderr), 4),
                "intercept": round(float(r.intercept), 4), "r": round(float(r.rvalue), 4), "median": round(med, 4),
                "growth_per_100_over_median": round(100 * slope / med, 4) if med else None})
    if verdict:
        out["flat"] = bool(100 * slope < FLAT_FRACTION * med) if len(x) >= MIN_POINTS else None
    return out


def analyse(samples: list[dict], trials: list[dict]) -> dict:
    """The fits and verdicts (see the module's docstring)."""
    gaps = [(r["index"], r["gap_s"]) for r in trials if r["gap_s"] is not None]
    walls = [(r["index"], r["wall_s"]) for r in trials if r["wall_s"] is not None]
    fits = {"gap_s_vs_trial": fit([i for i, _ in gaps], [g for _, g in gaps], "s per trial", True),
            "wall_s_vs_trial": fit([i for i, _ in walls], [w for _, w in walls], "s per trial", False)}
    for key, verdict in (("driver_pss_kib", True), ("total_pss_kib", False), ("folder_bytes", False)):
        x, y = by_finished(samples, key, AGGREGATE[key])
        fits[f"{key}_vs_finished"] = fit(x, y, "KiB" if key.endswith("kib") else "bytes", verdict)
    folder = fits["folder_bytes_vs_finished"]
    return {"fits": fits,
            "verdicts": {"per_trial_cost_flat": fits["gap_s_vs_trial"]["flat"],
                         "driver_memory_flat": fits["driver_pss_kib_vs_finished"]["flat"]},
            "folder_bytes_per_trial": None if folder["slope_per_100"] is None else round(folder["slope_per_100"]
                                                                                        / 100),
            "per_trial_s": {"gap_median": _median(g for _, g in gaps), "wall_median": _median(w for _, w in walls)}}


def _median(values) -> float | None:
    values = list(values)
    return round(statistics.median(values), 2) if values else None


def plot(samples: list[dict], trials: list[dict], result: dict) -> bytes:
    """The figure as PNG bytes: per-trial seconds against trial index; memory and folder size against finished
    trials (each sample a dot, the fits as lines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fits = result["fits"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))

    def line(ax, f, x, scale=1.0, **kw):
        if f.get("slope_per_100") is not None and x:
            xs = np.array([min(x), max(x)])
            ax.plot(xs, (f["intercept"] + f["slope_per_100"] / 100 * xs) * scale, **kw)

    ax = axes[0]
    for key, label, color in (("gap_s", "start to next start", "C0"), ("wall_s", "start to last report", "C1")):
        pts = [(r["index"], r[key]) for r in trials if r[key] is not None]
        ax.plot([i for i, _ in pts], [v for _, v in pts], ".", color=color, label=label, alpha=0.7)
        line(ax, fits[f"{key}_vs_trial"], [i for i, _ in pts], color=color, lw=1)
    ax.set(xlabel="trial (start order)", ylabel="seconds", title="per-trial time (lines: linear fits)")
    ax.legend()
    ax = axes[1]
    for key, label, color in (("driver_pss_kib", "driver PSS (median per count)", "C0"),
                              ("total_pss_kib", "all processes PSS (peak per count)", "C2")):
        ax.plot([s["finished"] for s in samples], [s[key] / 1024 for s in samples], ".", ms=2, color=color,
                alpha=0.3)
        x, y = by_finished(samples, key, AGGREGATE[key])
        ax.plot(x, [v / 1024 for v in y], "o", ms=3, color=color, label=label)
        line(ax, fits[f"{key}_vs_finished"], x, 1 / 1024, color=color, lw=1)
    ax.set(xlabel="finished trials", ylabel="MiB", title="memory (small dots: every sample)")
    ax.legend()
    ax = axes[2]
    ax.plot([s["finished"] for s in samples], [s["folder_bytes"] / 2**20 for s in samples], ".", ms=2, color="C0")
    line(ax, fits["folder_bytes_vs_finished"], by_finished(samples, "folder_bytes")[0], 1 / 2**20, color="C0",
         lw=1)
    ax.set(xlabel="finished trials", ylabel="MiB", title="experiment folder")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------ main
def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("ray", "torch", "optuna", "wandb", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.machine())
    mem = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal"))
    return {"cpu": model, "cpus": os.cpu_count(), "memory_kib": mem}


SAMPLE_COLUMNS = ("t_s", "driver_rss_kib", "driver_pss_kib", "total_rss_kib", "total_pss_kib", "processes",
                  "folder_bytes", "trials_started", "finished")
"""The columns of the JSON's ``samples`` rows (one short row per sample keeps a long run's file small)."""


def _dump(info: dict) -> str:
    """``info`` as indented JSON, with each trial and each sample row on one line."""
    parts = []
    for key, value in info.items():
        if key in ("trials", "samples"):
            rows = ",\n".join("  " + json.dumps(row) for row in value)
            parts.append(f" {json.dumps(key)}: [\n{rows}\n ]")
        else:
            parts.append(f" {json.dumps(key)}: " + json.dumps(value, indent=1).replace("\n", "\n "))
    return "{\n" + ",\n".join(parts) + "\n}\n"


def measure(args: argparse.Namespace, root: Path, info: dict) -> None:
    """Run the search in ``root`` and save what the analysis needs in ``root/run.json`` (``info`` included)."""
    run = run_search(args, root)
    leftovers = end_leftovers(run["seen"], run["ray_tmp"])
    info.update({"load_average_end": [round(v, 2) for v in os.getloadavg()],
                 "search": {"returncode": run["returncode"], "timed_out": run["timed_out"],
                            "wall_s": round(run["wall_s"], 1), "processes_seen": len(run["seen"]),
                            "left_running_and_killed": sorted(leftovers.values())},
                 "sampling": {"samples": len(run["samples"]), "this_process_cpu_s": round(run["sampling_cpu_s"], 1)}})
    (root / "run.json").write_text(json.dumps({"info": info, "t0": run["t0"], "samples": run["samples"]}))


def analyse_folder(root: Path, out: Path) -> dict:
    """Analyse the search kept in ``root`` (``run.json``, the experiment and results folders), write ``out`` (JSON)
    and its ``.png`` atomically; returns what it wrote."""
    saved = json.loads((root / "run.json").read_text())
    info, samples = saved["info"], saved["samples"]
    summary_file = root / "results" / NAME / "summary.json"
    if summary_file.is_file():
        summary = json.loads(summary_file.read_text())
        info["search"].update({"summary_wall_time_s": summary.get("wall_time_s"),
                               "trials": {k: v for k, v in summary["models"][KIND].items()
                                          if k in ("trials", "completed", "stopped_early", "failed")},
                               "wandb": summary.get("wandb") and {k: summary["wandb"].get(k)
                                                                  for k in ("mode", "runs_written", "status")}})
    trials = read_trials(root / "runs" / NAME / KIND, saved["t0"])
    add_finished(samples, trials)
    result = analyse(samples, trials)
    info.update({**result, "trials": trials, "sample_columns": list(SAMPLE_COLUMNS),
                 "samples": [[s[c] for c in SAMPLE_COLUMNS] for s in samples]})
    png = plot(samples, trials, result)
    from tuneae.files import atomic_write  # the project's one atomic writer (it imports torch: only now)

    atomic_write(out, _dump(info))
    atomic_write(out.with_suffix(".png"), png)
    v, p = info["verdicts"], info["per_trial_s"]
    print(f"[scale] wrote {out} and {out.with_suffix('.png').name}: {len(trials)} trials in "
          f"{info['search']['wall_s']} s, median {p['gap_median']} s per trial (start to start); per-trial cost "
          f"flat: {v['per_trial_cost_flat']}, driver memory flat: {v['driver_memory_flat']}; processes left "
          f"running: {len(info['search']['left_running_and_killed'])}", flush=True)
    return info


def main(argv: list[str] | None = None) -> dict:
    """Run the search (or take a kept one), analyse it, write the JSON and the figure; returns what it wrote."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=200, help="trials of the one search (its --num-samples)")
    ap.add_argument("--epochs", type=int, default=2,
                    help="epochs per trial (ASHA's grace period is 1: about half the trials stop at epoch 1)")
    ap.add_argument("--max-concurrent", type=int, default=1,
                    help="trials at once (1: each trial's cost is its own; 0: the product's rule, 2 here)")
    ap.add_argument("--no-wandb", action="store_true", help="search without W&B (on and offline by default)")
    ap.add_argument("--interval", type=float, default=2.0, help="seconds between samples")
    ap.add_argument("--timeout", type=float, default=4 * 3600.0,
                    help="seconds after which the search is interrupted (Ctrl-C) and the partial run analysed")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    ap.add_argument("--reanalyse", metavar="DIR", default="",
                    help="no search: analyse again a folder kept by --keep (or by a failed analysis)")
    ap.add_argument("--out", default="results/bench-scale.json")
    args = ap.parse_args(argv)
    if args.trials < 2 or args.epochs < 1 or args.interval <= 0:
        ap.error("--trials must be >= 2, --epochs >= 1 and --interval > 0")
    if args.reanalyse:
        return analyse_folder(Path(args.reanalyse), Path(args.out))
    info = {"command": portable_command("python benchmarks/scale.py", sys.argv[1:] if argv is None else argv),
            "search_command": "python -m tuneae.search " + " ".join(search_args(args, "<tmp>/runs",
                                                                                 "<tmp>/results")),
            "date": time.strftime("%Y-%m-%d"), "versions": _versions(), "machine": _machine(),
            "settings": {"trials": args.trials, "epochs": args.epochs, "max_concurrent": args.max_concurrent,
                         "wandb": not args.no_wandb, "interval_s": args.interval,
                         "data": "smoke preset: 96 synthetic phantoms, 32 px", "lr_choices": lr_choices(args.trials)},
            "flat_rule": f"flat: the fitted slope over 100 trials is below {FLAT_FRACTION:.0%} of the quantity's "
                         f"median (a falling trend counts as flat); null with fewer than {MIN_POINTS} points",
            "units": "seconds; memory in KiB (PSS: proportional set size, shared pages split among their users); "
                     "folder in bytes; slopes per 100 trials",
            "load_average_start": [round(v, 2) for v in os.getloadavg()]}
    root = Path(tempfile.mkdtemp(prefix="scale-", dir="/tmp"))
    print(f"[scale] {args.trials} trials; temporary folder {root}", flush=True)
    keep = args.keep
    try:
        measure(args, root, info)
        if info["search"]["returncode"] != 0:
            keep = True
            print(f"[scale] the search exited with {info['search']['returncode']}; its log: {root / 'search.log'}",
                  flush=True)
        return analyse_folder(root, Path(args.out))
    except BaseException:
        keep = True
        raise
    finally:
        if keep:
            print(f"[scale] kept {root} (analyse it again: --reanalyse {root})", flush=True)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
