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
