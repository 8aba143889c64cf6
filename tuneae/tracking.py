"""W&B, the only module that imports ``wandb``: the environment, the search's Tune callback, the report's run.

W&B runs offline unless ``WANDB_API_KEY`` is set (or the user asks for a mode) and keeps every file it writes
(runs, config, cache, data, artifacts) in one folder of the experiment, never under ``$HOME``. W&B trouble only
warns: it never stops a search or a report.
"""
from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DEFAULT_PROJECT = "tuneae"
"""The W&B project when the user names none (``--wandb-project``)."""
EXCLUDED_METRICS = ["checkpoint_path", "node_id", "train_run"]
"""Reported values that are not metrics, kept out of W&B: the first two stay in trials.csv, the trial's Train run
folder in Tune's results (absolute, so not in the committed files)."""


def project_name_problem(project: str) -> str:
    """Why W&B refuses ``project`` as a project name, or "" when it takes it: W&B's own validator
    (``wandb.sdk.wandb_settings.Settings.validate_project``; in wandb 0.31 at most 128 characters and none of
    ``/ \\ # ? % :``), run here so a search refuses the name before Ray starts instead of logging nothing."""
    from wandb.errors import UsageError
    from wandb.sdk.wandb_settings import Settings

    try:
        Settings(project=project)
    except (UsageError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return ""


def written_runs(wandb_dir: str | os.PathLike, since: float) -> int:
    """How many W&B run folders (``offline-run-*`` / ``run-*`` in ``<wandb_dir>/wandb``) were written since
    ``since`` (a ``time.time()``; folder modification times): what a search logged, counted on disk rather than
    assumed (a refused project or a broken W&B install leaves none)."""
    runs = Path(wandb_dir) / "wandb"
    if not runs.is_dir():
        return 0
    return sum(1 for d in runs.iterdir() if d.is_dir() and d.name.startswith(("offline-run-", "run-"))
               and d.stat().st_mtime >= since - 1)


def logging_record(env: dict[str, str], project: str, written: int, trials_ran: bool | None) -> dict[str, Any]:
    """What ``summary.json`` says about W&B: what happened, never only what was asked for.

    Args:
        env: :func:`wandb_env`'s variables (the mode and folder asked for).
        project: the W&B project.
        written: :func:`written_runs` of this search.
        trials_ran: whether any trial trained in this search (False: a resumed search that was already finished;
            None: unknown, the experiment being remote).
    Returns:
        ``{"mode", "project", "runs_written", "status"}`` plus ``"reason"`` when it failed; ``status`` is
        ``logged`` (runs written), ``nothing to log`` (no trial trained), ``none written`` (no run written, and
        whether a trial trained is unknown) or ``failed`` (trials trained, no run written: see the warnings in the
        search's output).
    """
    if written:
        status = "logged"
    elif trials_ran is False:
        status = "nothing to log"
    elif trials_ran is None:
        status = "none written"
    else:
        status = "failed"
    out: dict[str, Any] = {"mode": env.get("WANDB_MODE"), "project": project, "runs_written": written,
                           "status": status}
    if status == "failed":
        out["reason"] = ("no W&B run folder was written although trials trained; see the W&B warnings in the "
                         "search's output")
    return out


def wandb_mode(mode: str | None = None) -> str:
    """``mode`` when given (``online`` / ``offline``), else ``online`` if ``WANDB_API_KEY`` is set, else ``offline``."""
    return mode or ("online" if os.environ.get("WANDB_API_KEY") else "offline")


def wandb_env(wandb_dir: str | os.PathLike, mode: str | None = None) -> dict[str, str]:
    """Environment for W&B: the mode (see :func:`wandb_mode`) and every W&B folder inside ``wandb_dir``.

    Ray's ``WandbLoggerCallback`` reads only the environment, so ``WANDB_MODE`` must be set before Ray starts
    (measured with Ray 2.60 / wandb 0.31).

    Args:
        wandb_dir: the folder for all W&B files (made absolute here).
        mode: ``online``, ``offline`` or None (decided by the API key).
    Returns:
        ``WANDB_MODE``, ``WANDB_DIR``, ``WANDB_CONFIG_DIR``, ``WANDB_CACHE_DIR``, ``WANDB_DATA_DIR``,
        ``WANDB_ARTIFACT_DIR`` and ``WANDB_SILENT`` as strings.
    """
    wdir = str(Path(wandb_dir).resolve())
    return {"WANDB_MODE": wandb_mode(mode), "WANDB_DIR": wdir, "WANDB_CONFIG_DIR": f"{wdir}/.config",
            "WANDB_CACHE_DIR": f"{wdir}/.cache", "WANDB_DATA_DIR": f"{wdir}/.data",
            "WANDB_ARTIFACT_DIR": f"{wdir}/.artifacts", "WANDB_SILENT": "true"}


@contextmanager
def _environment(env: dict[str, str]):
    """Set ``env`` in ``os.environ`` for the block, then restore what was there."""
    saved = {k: os.environ.get(k) for k in env}
    try:
        os.environ.update(env)
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def tune_callback(project: str, group: str):
    """Ray's W&B logger callback that closes its runs, or None (with a warning) when W&B cannot start.

    Each trial becomes one W&B run in ``group`` (upstream: ``ray.air.integrations.wandb.WandbLoggerCallback``,
    adapted by :func:`closing_wandb_logger_callback`). Reads ``WANDB_DIR`` from the environment (see
    :func:`wandb_env`, set before Ray starts).

    Args:
        project: the W&B project.
        group: the run group (the search's name and the model kind).
    Returns:
        The callback for ``ray.tune.RunConfig(callbacks=...)``, or None.
    """
    try:
        Path(os.environ["WANDB_DIR"]).mkdir(parents=True, exist_ok=True)
        return closing_wandb_logger_callback()(project=project, group=group, upload_timeout=60,
                                               excludes=EXCLUDED_METRICS)
    except Exception as exc:  # W&B trouble never stops a search: it only turns logging off
        warnings.warn(f"W&B logging disabled: {exc}", stacklevel=2)
        return None


def closing_wandb_logger_callback() -> type:
    """Ray's ``WandbLoggerCallback`` with two upstream behaviours worked around (Ray 2.60, wandb 0.31), through
    Ray's public ``LoggerCallback`` hooks only.

    1. On Ctrl-C Tune ends the experiment without ending the running trials; ``on_experiment_end`` then waits
       ``upload_timeout`` for runs never told to finish and kills them, leaving W&B runs without an exit record.
       Here every trial whose logging started (``log_trial_start``) and did not end (``log_trial_end``) is ended
       through ``log_trial_end`` before upstream's ``on_experiment_end`` waits for the uploads.
    2. Upstream's ``__del__`` calls ``ray.is_initialized()``, which raises when it runs at interpreter shutdown
       (modules torn down): a harmless but alarming traceback. Once the experiment ended (or when no trial ever
       logged) no run is open and upstream's ``__del__`` has nothing to do, so it is skipped.

    tests/test_tracking.py::test_upstream_wandb_callback_still_needs_the_workarounds fails when upstream changes
    either behaviour (then this function can go).
    """
    from ray.air.integrations.wandb import WandbLoggerCallback

    class ClosingWandbLoggerCallback(WandbLoggerCallback):
        """``WandbLoggerCallback`` that closes every trial's run at the end of the experiment, also after Ctrl-C."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._tuneae_open_trials: set = set()  # logging started, not ended
            self._tuneae_started = self._tuneae_ended = False

        def log_trial_start(self, trial):
            super().log_trial_start(trial)
            self._tuneae_open_trials.add(trial)
            self._tuneae_started = True

        def log_trial_end(self, trial, failed: bool = False):
            self._tuneae_open_trials.discard(trial)
            super().log_trial_end(trial, failed=failed)

        def on_experiment_end(self, trials, **info):
            for trial in list(self._tuneae_open_trials):  # 1.
                self.log_trial_end(trial)
            self._tuneae_ended = True
            super().on_experiment_end(trials, **info)

        def __del__(self):  # 2.: upstream's only work is closing runs of an experiment that never ended
            if getattr(self, "_tuneae_started", False) and not getattr(self, "_tuneae_ended", False):
                super().__del__()

    return ClosingWandbLoggerCallback


def log_report(wandb_dir: Path, metrics: dict, figures: dict[str, Path], tables: dict[str, list[dict]],
               project: str = DEFAULT_PROJECT, mode: str | None = None) -> None:
    """Log a report's figures, tables and headline numbers to one W&B run; any failure only warns.

    W&B keeps all its files under ``wandb_dir`` (see :func:`wandb_env`); the environment is restored afterwards.

    Args:
        wandb_dir: the folder for the W&B files (created).
        metrics: the report's ``metrics.json`` (``name``, ``run``, ``command``, ``data``, ``models`` with test
            ``mse`` / ``psnr`` (dB) / ``ssim`` means).
        figures: figure key -> PNG path.
        tables: table name -> rows (dicts).
        project: the W&B project (the search's ``--wandb-project``).
        mode: ``online`` / ``offline`` (the search's ``--wandb-mode``), None: decided by ``WANDB_API_KEY``.
    """
    try:
        with _environment(wandb_env(wandb_dir, mode)):
            wandb_dir.mkdir(parents=True, exist_ok=True)
            import wandb

            # console="off": the report runs in the caller's process (a shell, a notebook, pytest); W&B's console
            # capture would take over its stdout and stderr, and lose what they print after the run
            run = wandb.init(project=project, name=f"report-{metrics['name']}", job_type="report",
                             dir=str(wandb_dir), mode=wandb_mode(mode), settings=wandb.Settings(console="off"),
                             config={"run": metrics["run"], "command": metrics["command"],
                                     **{k: v for k, v in metrics["data"].items() if k != "test_indices"}})
            run.log({f"report/{k}": wandb.Image(str(p)) for k, p in figures.items()})
            for key, rows in tables.items():
                if not rows:  # e.g. no bottleneck model, so no PCA comparison
                    continue
                cols = list(dict.fromkeys(c for r in rows for c in r))
                run.log({f"table/{key}": wandb.Table(columns=cols, data=[[r.get(c) for c in cols] for r in rows])})
            run.summary.update(_headline(metrics))
            run.finish()
    except Exception as exc:  # W&B never fails the report
        warnings.warn(f"W&B logging of the report failed: {type(exc).__name__}: {exc}", stacklevel=2)


def _headline(metrics: dict[str, Any]) -> dict[str, float]:
    """``test/<kind>/<mse|psnr|ssim>`` -> mean over the test images."""
    return {f"test/{k}/{q}": v["test"][q]["mean"] for k, v in metrics["models"].items()
            for q in ("mse", "psnr", "ssim")}
