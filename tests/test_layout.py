"""Tests of tuneae.layout: one run layout for search, trainable and report; committed paths relative and found again
after the folders moved."""
from __future__ import annotations

from pathlib import Path

from tuneae.config import SearchConfig
from tuneae.layout import RunLayout, portable, resolve_recorded


def test_layout_of_a_search(tmp_path):
    layout = RunLayout.of(SearchConfig(storage_path=str(tmp_path / "runs"), name="x",
                                       results_dir=str(tmp_path / "results")))
    assert layout.experiment == str(tmp_path / "runs" / "x") and layout.local and layout.name == "x"
    assert layout.kind_dir("ae") == f"{tmp_path}/runs/x/ae" and layout.train_dir == f"{tmp_path}/runs/x/train"
    assert layout.wandb_dir == tmp_path / "runs" / "x" / "wandb" and layout.cache_dir == tmp_path / "runs" / "cache"
    assert layout.summary_file == tmp_path / "results" / "x" / "summary.json"
    assert layout.report_dir == tmp_path / "results" / "x" / "report"
    assert layout.recorded_experiment() == "../../runs/x"
    remote = RunLayout.for_search("s3://bucket/tuneae/", "x", "results")
    assert remote.experiment == "s3://bucket/tuneae/x" and not remote.local
    assert remote.recorded_experiment() == "s3://bucket/tuneae/x" and remote.wandb_dir == Path("runs/x/wandb")


def test_checkpoints_are_recorded_relative_and_found_again(tmp_path):
    layout = RunLayout.for_search(str(tmp_path / "runs"), "x", tmp_path / "results")
    ckpt = f"{layout.train_dir}/trial-ab/checkpoint_1"
    assert layout.relative_checkpoint(ckpt) == "train/trial-ab/checkpoint_1"
    assert layout.relative_checkpoint("") == ""
    moved = RunLayout(str(tmp_path / "elsewhere"), layout.results)
    assert moved.relative_checkpoint(ckpt) == "train/trial-ab/checkpoint_1"  # reported before the folder moved
    assert moved.checkpoint("train/trial-ab/checkpoint_1") == tmp_path / "elsewhere" / "train/trial-ab/checkpoint_1"
    Path(ckpt).mkdir(parents=True)
    assert moved.checkpoint(ckpt) == Path(ckpt)  # an absolute path that exists is taken as it is
    assert layout.relative_checkpoint("/data/other/thing") == "/data/other/thing"


def test_recorded_paths_round_trip(tmp_path):
    base = tmp_path / "results" / "x"
    folder = str(tmp_path / "data" / "mri")
    rel = portable(folder, base)
    assert rel == "../../data/mri" and resolve_recorded(rel, base) == folder
    for value in ("phantom", "benschill/brain-tumor-collection", "s3://b/k", "folder (3 files)"):
        assert portable(value, base) == value  # not an absolute path: recorded as it is
    assert resolve_recorded("s3://b/k", base) == "s3://b/k" and resolve_recorded("/abs", base) == "/abs"


def test_layout_from_summary_after_moves(tmp_path):
    results = tmp_path / "results" / "x"
    summary = {"experiment_dir": "../../runs/x", "search": {"name": "x"}}
    (tmp_path / "runs" / "x").mkdir(parents=True)
    assert RunLayout.from_summary(results, summary).experiment == str(tmp_path / "runs" / "x")
    old = {"experiment_dir": "/no/such/machine/runs/x", "search": {"name": "x"}}  # an older, absolute summary
    assert RunLayout.from_summary(results, old).experiment == str(tmp_path / "runs" / "x")  # the default place
    explicit = RunLayout.from_summary(results, summary, tmp_path / "moved")
    assert explicit.experiment == str(tmp_path / "moved") and explicit.results == results
    bare = RunLayout.from_experiment(tmp_path / "runs" / "x")
    assert bare.results == Path("results/x") and bare.experiment == str(tmp_path / "runs" / "x")
