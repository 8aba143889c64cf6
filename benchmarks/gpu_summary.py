"""Gather the parts ``benchmarks/gpu.sh`` made into ``results/bench-gpu.json`` (no absolute paths in the output).

    python benchmarks/gpu_summary.py --work DIR --out-dir results/bench-gpu --out results/bench-gpu.json
                                     --shares 1 4 16 [--dry-run 0|1]

Per number of trials sharing the device: the GPU's busy fraction (mean ``utilization.gpu`` of nvidia-smi's samples,
over the whole search and over the span from the first to the last busy sample), the search's wall time, and the
training throughput in epochs per minute summed over the trials; the ``--gpus-per-trial`` with the highest
throughput is the suggestion for the gpu preset. Plus the speed table (``speed.json``) and the reduced search's
best trial per kind.
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
import time
from pathlib import Path


def smi_samples(path: Path) -> list[tuple[float, float]]:
    """(utilization.gpu in %, memory.used in MiB) per nvidia-smi sample; [] without a file."""
    if not path.is_file():
        return []
    out = []
    for row in csv.reader(path.read_text().splitlines()):
        try:
            out.append((float(row[1]), float(row[2])))
        except (IndexError, ValueError):
            continue  # a header or a cut line
    return out


def search_summary(work: Path, name: str) -> dict | None:
    """The parts of a search's summary.json that hold no path: wall time and, per kind, trials and best trial."""
    path = work / "results" / name / "summary.json"
    if not path.is_file():
        return None
    s = json.loads(path.read_text())
    models = {k: {key: m.get(key) for key in ("trials", "completed", "stopped_early", "failed", "best_config",
                                              "best_metrics")} for k, m in (s.get("models") or {}).items()}
    return {"wall_time_s": s.get("wall_time_s"), "interrupted": s.get("interrupted"), "models": models}


def trial_epochs(work: Path, name: str) -> int:
    """Epochs reported over all trials of a search (its trials.csv's ``last_epoch``), 0 when none."""
    path = work / "results" / name / "trials.csv"
    if not path.is_file():
        return 0
    with path.open() as f:
        return sum(int(float(r.get("last_epoch") or 0)) for r in csv.DictReader(f))


def share(work: Path, n: int) -> dict:
    """Busy fraction, wall time and throughput of the search in which ``n`` trials shared the device."""
    samples = smi_samples(work / f"smi-{n}.csv")
    util = [u for u, _ in samples]
    busy = [i for i, u in enumerate(util) if u > 0]
    start, end = (work / f"share-{n}.start"), (work / f"share-{n}.end")
    wall = float(end.read_text()) - float(start.read_text()) if start.is_file() and end.is_file() else None
    epochs = trial_epochs(work, f"share{n}")
    return {"trials": n, "gpus_per_trial": 1 / n, "wall_s": round(wall, 1) if wall else None,
            "samples": len(util),
            "busy_fraction": round(statistics.fmean(util) / 100, 3) if util else None,
            "busy_fraction_while_training": round(statistics.fmean(util[busy[0]:busy[-1] + 1]) / 100, 3)
            if busy else None,
            "peak_memory_MiB": max((m for _, m in samples), default=None),
            "epochs_done": epochs, "epochs_per_min": round(60 * epochs / wall, 1) if wall and epochs else None,
            "search": search_summary(work, f"share{n}")}


def main(argv: list[str] | None = None) -> dict:
    """Write the JSON file; returns it."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", required=True)
    ap.add_argument("--out-dir", default="results/bench-gpu")
    ap.add_argument("--out", default="results/bench-gpu.json")
    ap.add_argument("--shares", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--dry-run", type=int, default=0)
    args = ap.parse_args(argv)
    work = Path(args.work)
    speed_path = Path(args.out_dir) / "speed.json"
    shares = [share(work, n) for n in args.shares]
    best = max((s for s in shares if s["epochs_per_min"]), key=lambda s: s["epochs_per_min"], default=None)
    gpu = (work / "gpu.txt").read_text().strip() if (work / "gpu.txt").is_file() else "unknown"
    info = {"command": "bash benchmarks/gpu.sh" + (" --dry-run" if args.dry_run else ""),
            "dry_run": bool(args.dry_run), "gpu": gpu, "date": time.strftime("%Y-%m-%d"),
            "speed": json.loads(speed_path.read_text()) if speed_path.is_file() else None,
            "sharing": shares,
            "suggested_gpus_per_trial": best["gpus_per_trial"] if best else None,
            "reduced_gpu_search": search_summary(work, "reduced")}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(info, indent=2) + "\n")
    print(f"wrote {args.out}")
    return info


if __name__ == "__main__":
    main()
