"""Tests of tuneae.results: trial rows from Tune results, the one best-trial rule, the per-kind summary, the table."""
from __future__ import annotations

import math
from types import SimpleNamespace

from tuneae.layout import RunLayout
from tuneae.results import best_of, format_table, kind_summary, trial_rows


def _result(trial_id, loss, epoch=3, planned=3, error=None, checkpoint="ckpt"):
    """A stand-in for ``ray.tune.Result``: config, last metrics, error, path."""
    metrics = {"trial_id": trial_id, "epoch": epoch, "val/loss": loss, "val/mse": loss, "val/psnr": 20.0,
               "checkpoint_path": checkpoint} if loss is not None else {}
    return SimpleNamespace(config={"train.epochs": planned, "train.lr": 1e-3}, metrics=metrics, error=error,
                           path=f"/x/trial_{trial_id}")


def test_rows_statuses_and_relative_checkpoints(tmp_path):
    layout = RunLayout.for_search(str(tmp_path / "runs"), "x", tmp_path / "results")
    grid = [_result("a", 0.5, checkpoint=f"{layout.train_dir}/trial-a/checkpoint_1"),
            _result("b", 0.4, epoch=1, planned=3),  # stopped by ASHA at its first rung
            _result("c", None, error=RuntimeError("wrapped\nFloatingPointError: loss is nan")),
            _result("d", 0.3)]
    rows = trial_rows("ae", grid, ["train.lr"], saved={"d": "RUNNING"}, layout=layout)
    by = {r["trial_id"]: r for r in rows}
    assert by["a"]["checkpoint_path"] == "train/trial-a/checkpoint_1" and by["a"]["train.lr"] == 1e-3
    assert by["b"]["stopped_early"] and not by["a"]["stopped_early"]
    assert by["c"]["status"] == "ERROR" and by["c"]["error"] == "FloatingPointError: loss is nan"
    assert by["d"]["status"] == "INTERRUPTED"


def test_best_trial_rule_skips_errors_nan_and_missing_checkpoints():
    rows = [{"trial_id": "a", "status": "TERMINATED", "val/mse": 0.5, "checkpoint_path": "c"},
            {"trial_id": "b", "status": "ERROR", "val/mse": 0.1, "checkpoint_path": "c"},
            {"trial_id": "c", "status": "TERMINATED", "val/mse": math.nan, "checkpoint_path": "c"},
            {"trial_id": "d", "status": "TERMINATED", "val/mse": 0.2, "checkpoint_path": ""},
            {"trial_id": "e", "status": "INTERRUPTED", "val/mse": 0.3, "checkpoint_path": "c"}]
    assert best_of(rows)["trial_id"] == "e"
    assert best_of(rows[1:4]) is None


def test_kind_summary_and_table():
    rows = trial_rows("ae", [_result("a", 0.5), _result("b", 0.4, epoch=1),
                             _result("c", None, error=ValueError("bad"))], ["train.lr"])
    s = kind_summary(rows, ["train.lr"])
    assert (s["trials"], s["completed"], s["stopped_early"], s["failed"]) == (3, 1, 1, 1)
    assert s["best_trial"] == "b" and s["best_config"] == {"train.lr": 1e-3} and s["best_metrics"]["epoch"] == 1
    assert s["failures"] == [{"trial_id": "c", "error": "bad"}]
    table = format_table({"ae": s, "vae": kind_summary([], ["train.lr"])})
    assert table.splitlines()[1].split()[:5] == ["ae", "3", "1", "1", "0.4000"]
    assert table.splitlines()[2].split()[1:5] == ["0", "0", "0", "-"]
