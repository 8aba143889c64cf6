"""``main`` of ``python -m tuneae.search``: check the input, load the data, search every kind, write the results."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from tuneae import tracking
from tuneae.config import Config, DataConfig, SearchConfig
from tuneae.data import DataError, Splits, check_source, load_splits, write_manifest
from tuneae.layout import RunLayout, portable, portable_command
from tuneae.run.best import METRIC, MODE
from tuneae.run.summary import (
    FINAL_STATUSES,
    KindResult,
    Summary,
    format_table,
    kind_summary,
    trial_rows,
    versions,
    write_results,
)
from tuneae.search.checks import ConfigError, validate
from tuneae.search.cli import resolve
from tuneae.search.names import claim_name, clear_run
from tuneae.search.resources import check_machine, check_session
from tuneae.search.session import open_session, ray_env
from tuneae.search.space import kind_space
from tuneae.search.study import check_resume, read_study, study_record
from tuneae.search.tune import derive_max_concurrent, run_one, saved_statuses


def _load_data(data: DataConfig) -> Splits:
    """The splits, with the counts printed (the search never uses the test split)."""
    print(f"[tuneae] loading data from {data.source} at {data.image_size}x{data.image_size}", flush=True)
    splits = load_splits(data)
    print(f"[tuneae] train {len(splits.train)} / val {len(splits.val)} / test {len(splits.test)} images "
          f"(classes {', '.join(splits.classes)}; test never used by the search)", flush=True)
    return splits


def search_all(cfg: Config, splits: Splits, resume: bool) -> dict[str, Any]:
    """Run one Tune experiment per kind in ``search.models`` on the running Ray session; stop at an interruption.

    Returns:
        ``{"rows": every trial's row (:func:`tuneae.run.summary.trial_rows`), "models": kind ->
        :class:`tuneae.run.summary.KindResult`, "interrupted": the kind interrupted or "", "max_concurrent": trials
        run at once, "cluster": {"CPU", "GPU"} counts}``.
    """
    import ray

    search = cfg.search
    cluster = ray.cluster_resources()
    max_concurrent = derive_max_concurrent(cluster, search)
    print(f"[tuneae] cluster {cluster.get('CPU', 0):g} CPU / {cluster.get('GPU', 0):g} GPU -> {max_concurrent} "
          f"concurrent trial(s)", flush=True)
    data_box = {"ref": ray.put({"train": splits.train, "val": splits.val})}
    layout = RunLayout.of(search)
    out: dict[str, Any] = {"rows": [], "models": {}, "interrupted": "", "max_concurrent": max_concurrent,
                           "cluster": {"CPU": cluster.get("CPU", 0.0), "GPU": cluster.get("GPU", 0.0)}}
    for kind in search.models:
        try:
            grid = run_one(kind, cfg, data_box, max_concurrent, resume)
        except KeyboardInterrupt:  # a second Ctrl-C skips Tune's last save; the periodic one remains
            out["interrupted"] = kind
            print(f"[tuneae] interrupted during {kind}; resume with --resume", flush=True)
            break
        saved = saved_statuses(layout.kind_dir(kind))
        if len(saved) < search.num_samples or set(saved.values()) - FINAL_STATUSES:  # Ctrl-C
            out["interrupted"] = kind
        rows = trial_rows(kind, grid, kind_space(search, kind), saved, layout)
        out["rows"] += rows
        result = kind_summary(rows, kind_space(search, kind))
        if layout.study_file.is_file():  # the searcher's own account: pruned / failed counts, importances
            result = replace(result, study=study_record(read_study(layout.study_file, [kind])[kind]))
        out["models"][kind] = result
        if out["interrupted"]:
            print(f"[tuneae] interrupted during {kind}; resume with: python -m tuneae.search "
                  f"--name {search.name} --resume (and the same flags)", flush=True)
            break
    return out


def _trials_ran(layout: RunLayout, kinds: tuple[str, ...], since: float) -> bool | None:
    """Whether any trial of ``kinds`` wrote to its Tune folder since ``since`` (None: remote experiment)."""
    if not layout.local:
        return None
    return any(p.stat().st_mtime >= since - 1 for kind in kinds
               for p in Path(layout.kind_dir(kind)).glob("trial_*/*") if p.is_file())


def _wandb_record(search: SearchConfig, env: dict[str, str], started: float, layout: RunLayout) -> dict[str, Any]:
    """summary.json's ``wandb`` entry: the W&B runs this search wrote, counted on disk (:mod:`tuneae.tracking`)."""
    written = tracking.written_runs(env["WANDB_DIR"], started)
    record = tracking.logging_record(env, search.wandb_project, written,
                                     _trials_ran(layout, search.models, started))
    return {**record, "dir": portable(env["WANDB_DIR"], layout.results)}


def make_summary(argv: list[str] | None, preset: str, started: float, cfg: Config, splits: Splits,
                 env: dict[str, str], outcome: dict[str, Any]) -> Summary:
    """The search's ``summary.json``: command, versions, wall time, settings, data counts, per-kind results.

    No absolute path of this machine: the experiment folder, the W&B folder and a local data folder are recorded
    relative to the results folder, checkpoints relative to the experiment folder (:mod:`tuneae.layout`).

    Args:
        argv: the command-line arguments (None: ``sys.argv[1:]``), recorded as the command.
        preset: the preset's name.
        started: the search's start, seconds since the epoch.
        cfg: the resolved settings.
        splits: the data splits (their counts are recorded).
        env: the W&B environment (:func:`tuneae.tracking.wandb_env`), {} without W&B.
        outcome: :func:`search_all`'s result.
    Returns:
        The summary.
    """
    search, data, train = cfg.search, cfg.data, cfg.train
    layout = RunLayout.of(search)
    return Summary(
        command=portable_command("python -m tuneae.search", list(argv or sys.argv[1:])),
        preset=preset,
        versions=versions(),
        started=time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        wall_time_s=round(time.time() - started, 1),
        paths="experiment_dir, wandb.dir and a local data.source are relative to this folder; every checkpoint "
              "is relative to experiment_dir; command, search.storage_path and search.results_dir are relative to "
              "the folder the search was started in",
        experiment_dir=layout.recorded_experiment(),
        wandb=_wandb_record(search, env, started, layout) if env else None,
        search={"metric": METRIC, "mode": MODE, "scheduler": "ASHA",
                "searcher": "PruningOptunaSearch(TPESampler), study in optuna.db (experiment folder)",
                **{k: v for k, v in asdict(search).items() if k not in ("space", "space_by_kind")},
                # as given, an absolute folder relative to the working directory (as in "command")
                **{k: portable(getattr(search, k), os.getcwd()) for k in ("storage_path", "results_dir")},
                "space": {kind: {k: list(v) for k, v in kind_space(search, kind).items()}
                          for kind in search.models},
                "max_concurrent_used": outcome["max_concurrent"], "cluster": outcome["cluster"]},
        data={**splits.counts, "source": portable(data.source, layout.results),
              "source_description": portable(splits.counts["source"], layout.results),
              "image_size": data.image_size, "val_fraction": data.val_fraction, "classes": list(splits.classes)},
        models=outcome["models"],
        interrupted=outcome["interrupted"] or None,
        comparison_note="val/mse and val/psnr are computed the same way for every kind (deterministic "
                        f"reconstruction; denoising kinds see sigma={train.val_noise_sigma:.2f} noise); val/loss is "
                        "each kind's own objective and does not compare across kinds.",
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m tuneae.search``.

    Args:
        argv: command-line arguments without the program name; None reads ``sys.argv[1:]``.
    Returns:
        The exit status: 0 every kind has a best trial, 1 some kind has none, 2 bad input (config file, invalid
        settings or search space, data source, resources no trial can fit on this machine, an unfinished run's
        name without ``--resume`` or ``--overwrite``; one ``error:`` line on stderr, before Ray starts, or for
        resources that Ray counts lower than the machine, right after), 130 interrupted, or the report's non-zero
        status with ``--report``. A finished run's name is never reused: the run takes ``<name>-2`` (printed).
    Raises:
        SystemExit: bad command-line flags or ``--help`` (argparse; status 2 for bad flags).
    """
    started = time.time()
    try:
        cfg, args = resolve(argv)
        validate(cfg)
        ray_env()  # the environment's Ray Train settings, before any data is read
        search, data = cfg.search, cfg.data
        check_source(data)
        if not search.address:  # a local Ray has no autoscaler: a trial that cannot fit would wait forever
            check_machine(search)
        search = claim_name(search, args.resume, args.overwrite)
        cfg = replace(cfg, search=search)
        layout = RunLayout.of(search)
        if args.resume:  # Tune's restore keeps the saved budget and space: refuse a change now, not loop later
            for kind in search.models:
                check_resume(layout.study_file, kind, search.num_samples, kind_space(search, kind))
        splits = _load_data(data)
    except (ConfigError, ValueError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.overwrite:
        clear_run(search)

    env = tracking.wandb_env(layout.wandb_dir, search.wandb_mode or None) if search.wandb else {}
    open_session(search.address, env)
    import ray

    try:
        check_session(search)
    except ValueError as exc:  # this machine, as Ray counts it (container limits), cannot hold one trial
        ray.shutdown()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        outcome = search_all(cfg, splits, args.resume)
    finally:
        ray.shutdown()

    write_results(layout.results, make_summary(argv, args.preset, started, cfg, splits, env, outcome),
                  outcome["rows"])
    write_manifest(splits, layout.manifest_file)
    print("\n" + format_table(outcome["models"]))
    print(f"\n[tuneae] wrote {layout.summary_file}, {layout.trials_file} and {layout.manifest_file.name}; "
          f"checkpoints in {layout.experiment}")
    if args.report:
        code = run_report(layout.results, search.wandb)
        if code:
            return code
    if outcome["interrupted"]:
        return 130
    models: dict[str, KindResult] = outcome["models"]
    return 0 if all(m.best_trial for m in models.values()) else 1


def run_report(results: Path, wandb: bool = True) -> int:
    """Run the report of a finished search as the next step of the same command: ``python -m tuneae.report``
    in a child process (the search imports nothing of the report).

    Args:
        results: the search's results folder.
        wandb: also log the report to W&B (else ``--no-wandb``).
    Returns:
        The report's exit status (0, or 2 with its ``error:`` line on stderr).
    """
    cmd = [sys.executable, "-m", "tuneae.report", str(results), *([] if wandb else ["--no-wandb"])]
    print(f"[tuneae] report: {' '.join(cmd[1:])}", flush=True)
    return subprocess.run(cmd, check=False).returncode
