"""Tests of tuneae.tracking: the W&B environment keeps every file in one folder and honours the mode."""
from __future__ import annotations

import os

from tuneae import tracking


def test_wandb_env_folders_and_mode(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    env = tracking.wandb_env(tmp_path / "w")
    assert env["WANDB_MODE"] == "offline" and env["WANDB_DIR"] == str(tmp_path / "w")
    assert all(env[k].startswith(str(tmp_path / "w")) for k in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR",
                                                                  "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"))
    assert tracking.wandb_env(tmp_path, "online")["WANDB_MODE"] == "online"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert tracking.wandb_env(tmp_path)["WANDB_MODE"] == "online"
    assert tracking.wandb_env(tmp_path, "offline")["WANDB_MODE"] == "offline"  # the user's --wandb-mode wins


def test_report_logging_failure_only_warns_and_restores_the_environment(tmp_path, monkeypatch, recwarn):
    monkeypatch.delenv("WANDB_DIR", raising=False)
    tracking.log_report(tmp_path / "w", {"name": "x"}, {}, {})  # metrics lack keys: W&B setup fails
    assert any("W&B logging of the report failed" in str(w.message) for w in recwarn)
    assert "WANDB_DIR" not in os.environ


def test_closing_callback_ends_open_runs_at_experiment_end(monkeypatch):
    """Trials whose logging started and never ended (Ctrl-C) are ended through ``log_trial_end`` before upstream's
    ``on_experiment_end``; upstream's ``__del__`` runs only for an experiment that logged and never ended."""
    from ray.air.integrations.wandb import WandbLoggerCallback

    calls = []
    for hook in ("log_trial_start", "log_trial_end", "on_experiment_end", "__del__"):
        monkeypatch.setattr(WandbLoggerCallback, hook,
                            lambda self, *a, _hook=hook, **k: calls.append((_hook, *a)))
    cls = tracking.closing_wandb_logger_callback()
    cb = cls(project="p")
    cb.log_trial_start("t1")
    cb.log_trial_start("t2")
    cb.log_trial_end("t1")
    cb.on_experiment_end(["t1", "t2"])
    assert calls[2:] == [("log_trial_end", "t1"), ("log_trial_end", "t2"), ("on_experiment_end", ["t1", "t2"])]
    calls.clear()
    cb.__del__()
    cls(project="p").__del__()  # no trial ever logged
    assert calls == []
    interrupted = cls(project="p")
    interrupted.log_trial_start("t3")
    interrupted.__del__()
    assert calls[-1] == ("__del__",)


def test_upstream_wandb_callback_still_needs_the_workarounds():
    """The Ray 2.60 behaviours ``tracking.closing_wandb_logger_callback`` works around, read from Ray's source:
    ``on_experiment_end`` only waits for the runs (it tells none to finish) and ``__del__`` calls
    ``ray.is_initialized()``. When this fails, Ray changed: re-check the workarounds and drop what is no longer
    needed."""
    import inspect

    from ray.air.integrations.wandb import WandbLoggerCallback

    end = inspect.getsource(WandbLoggerCallback.on_experiment_end)
    assert "_cleanup_logging_actors" in end and "stop" not in end.split('"""')[-1]
    assert "ray.is_initialized()" in inspect.getsource(WandbLoggerCallback.__del__)


def test_wandb_is_imported_only_by_tracking():
    """W&B stays behind one module: no other module of tuneae imports ``wandb``."""
    import re
    from pathlib import Path

    import tuneae

    root = Path(tuneae.__file__).parent
    importers = [str(p.relative_to(root)) for p in root.rglob("*.py")
                 if re.search(r"^\s*(import wandb|from wandb\b)", p.read_text(), re.M)]
    assert importers == ["tracking.py"]
