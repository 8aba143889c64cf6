"""Tests of the run layer (tuneae.run): trial rows, the best rules, the typed results files, the table."""
from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from tuneae.layout import RunLayout
from tuneae.run import (
    FinalFits,
    RunError,
    Seed,
    Summary,
    best_by,
    best_seed,
    best_study_trial,
    best_trial,
    format_table,
    kind_summary,
    read_finalfit,
    read_summary,
    trial_rows,
)

COMMITTED = Path(__file__).resolve().parent.parent / "results" / "cpu-tpe"
"""A committed results folder: its summary.json and finalfit.json must keep loading."""


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
    assert best_trial(rows)["trial_id"] == "e"
    assert best_trial(rows[1:4]) is None


def test_kind_summary_and_table():
    rows = trial_rows("ae", [_result("a", 0.5), _result("b", 0.4, epoch=1),
                             _result("c", None, error=ValueError("bad"))], ["train.lr"])
    s = kind_summary(rows, ["train.lr"])
    assert (s.trials, s.completed, s.stopped_early, s.failed) == (3, 1, 1, 1)
    assert s.best_trial == "b" and s.best_config == {"train.lr": 1e-3} and s.best_metrics["epoch"] == 1
    assert s.to_json()["failures"] == [{"trial_id": "c", "error": "bad"}]
    table = format_table({"ae": s, "vae": kind_summary([], ["train.lr"])})
    assert table.splitlines()[1].split()[:5] == ["ae", "3", "1", "1", "0.4000"]
    assert table.splitlines()[2].split()[1:5] == ["0", "0", "0", "-"]


def test_committed_results_files_load_and_round_trip():
    summary, raw = read_summary(COMMITTED / "summary.json")
    assert summary.to_json() == raw and Summary.from_json(summary.to_json()) == summary
    assert summary.name == "cpu-tpe" and summary.models["ae"].best_trial and summary.space("ae")["train.epochs"]
    raw_fit = json.loads((COMMITTED / "finalfit.json").read_text())
    fits = read_finalfit(COMMITTED / "finalfit.json", "cpu-tpe")
    assert fits.to_json() == raw_fit and FinalFits.from_json(fits.to_json()) == fits
    for fit in fits.every().values():  # the recorded best seed is the one rule's
        assert best_seed(fit.seeds).seed == fit.best_seed == fit.best.seed


def test_from_json_names_the_file_and_field():
    with pytest.raises(RunError, match=r"s\.json: field 'models' is missing"):
        Summary.from_json({"search": {}}, "s.json")
    with pytest.raises(RunError, match=r"s\.json: models\.ae: field 'trials' should be int"):
        Summary.from_json({"models": {"ae": {"trials": "8"}}}, "s.json")
    entry = {"kind": "ae", "train_config": {"epochs": 2}, "best_seed": 3, "seeds": [],
             "over_seeds": {"val/psnr": {}, "val/mse": {}}}
    with pytest.raises(RunError, match=r"f\.json: kinds\.ae: field 'best_seed' 3 is not among its seeds"):
        FinalFits.from_json({"kinds": {"ae": entry}}, "f.json")
    with pytest.raises(RunError, match=r"f\.json: kinds\.ae\.seeds\[0\]: field 'checkpoint' is missing"):
        FinalFits.from_json({"kinds": {"ae": {**entry, "seeds": [{"seed": 3, "metrics": {}}]}}}, "f.json")
    with pytest.raises(RunError, match="expected a JSON object"):
        FinalFits.from_json(["a list"], "f.json")


def test_one_rule_for_the_best_seed_and_study_trial():
    seeds = [Seed(1, {"val/mse": 0.2}, "a"), Seed(2, {"val/mse": 0.1}, "b"), Seed(3, {"val/mse": 0.1}, "c"),
             Seed(4, {"val/mse": math.nan}, "d")]
    assert best_seed(seeds).seed == 2 and best_seed(seeds[3:]) is None  # ties to the first; NaN never best
    trials = [{"state": "PRUNED", "value": 0.01}, {"state": "COMPLETE", "value": 0.3},
              {"state": "COMPLETE", "value": 0.2}]
    study = {"direction": "minimize", "trials": trials}
    assert best_study_trial(study)["value"] == 0.2
    assert best_study_trial({**study, "direction": "maximize"})["value"] == 0.3
    assert best_by(["a", "b"], {"a": None, "b": 1.0}.get, "max") == "b"


def _imports(path: Path) -> set[str]:
    """Every module a Python file imports, lazy imports inside functions included."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_finalfit_report_and_search_import_none_of_each_other():
    root = Path(__file__).resolve().parent.parent / "tuneae"
    floors = {"tuneae.finalfit": [root / "finalfit.py"], "tuneae.report": sorted((root / "report").glob("*.py")),
              "tuneae.search": sorted((root / "search").glob("*.py")),
              "tuneae.run": sorted((root / "run").glob("*.py"))}
    for floor, files in floors.items():
        others = [f for f in ("tuneae.finalfit", "tuneae.report", "tuneae.search") if f != floor]
        for f in files:
            bad = sorted(m for m in _imports(f) if any(m == o or m.startswith(o + ".") for o in others))
            assert not bad, f"{f} imports {bad}"
            assert "ray" not in {m.split(".")[0] for m in _imports(f)} or floor == "tuneae.search", f


def test_search_report_flag_runs_the_report_as_its_own_command(monkeypatch, tmp_path):
    import subprocess
    import sys

    from tuneae.search import run

    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, check: calls.append(cmd) or SimpleNamespace(returncode=2))
    assert run.run_report(tmp_path, wandb=False) == 2
    assert calls == [[sys.executable, "-m", "tuneae.report", str(tmp_path), "--no-wandb"]]
