"""The search through its real entry point (smoke preset, subprocess) and its pieces: config merging,
concurrency, bad input rejected before Ray starts."""
from __future__ import annotations

import csv
import itertools
import json
import math
import os
import subprocess
import sys

import pytest
import torch

from tuneae.checkpoint import configs_of, load_checkpoint
from tuneae.config import SearchConfig
from tuneae.data import load_splits
from tuneae.search.cli import ConfigError, resolve
from tuneae.search.run import main
from tuneae.search.space import kind_space
from tuneae.search.tune import derive_max_concurrent
from tuneae.train import eval_batch_size, evaluate, make_loader

from .conftest import SMOKE_KINDS, best_checkpoint


def _overlapping(kind_dir) -> bool:
    """Whether two trials of one Tune experiment trained at the same time (from each trial's result.json: the first
    row's timestamp minus its epoch time, to the last row's timestamp)."""
    spans = []
    for result in kind_dir.glob("trial_*/result.json"):
        rows = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        if rows:
            spans.append((rows[0]["timestamp"] - rows[0]["time_this_iter_s"], rows[-1]["timestamp"]))
    spans.sort()
    return any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans))


def test_smoke_search_end_to_end(smoke_run):
    s = smoke_run["summary"]
    assert set(s["models"]) == set(SMOKE_KINDS)
    for kind, m in s["models"].items():
        assert m["trials"] == 4 and m["failed"] == 0, (kind, m)
        assert m["best_checkpoint"] and best_checkpoint(smoke_run, kind).is_dir()
        assert math.isfinite(m["best_metrics"]["val/psnr"])
    assert sum(m["stopped_early"] for m in s["models"].values()) >= 1, "ASHA stopped no trial"
    assert s["data"]["test"] > 0 and s["data"]["train"] > 0 and s["wall_time_s"] > 0
    # as many trials at once as the CPUs Ray found hold (1 CPU each), whatever this machine has: a driver that held
    # a CPU would leave one trial's worker without one
    cluster = s["search"]["cluster"]
    assert cluster["CPU"] >= 1 and s["search"]["max_concurrent_used"] == int(cluster["CPU"])
    if cluster["CPU"] >= 2:  # and they did run at once
        assert any(_overlapping(smoke_run["storage"] / "smoke" / kind) for kind in SMOKE_KINDS)
    assert s["command"].startswith("python -m tuneae.search --preset smoke")
    rows = list(csv.DictReader((smoke_run["results"] / "trials.csv").open()))
    assert len(rows) == 4 * len(SMOKE_KINDS)
    assert {"train.lr", "train.epochs", "val/loss", "val/psnr", "stopped_early", "last_epoch"} <= set(rows[0])
    stopped = [r for r in rows if r["stopped_early"] == "True"]
    assert all(int(r["last_epoch"]) < int(r["train.epochs"]) for r in stopped)
    assert "val/psnr" in smoke_run["stdout"]  # the end-of-search table
    # checkpoints stay in the experiment folder, never in results/
    assert not list(smoke_run["results"].rglob("*.pt"))


def test_stopped_trials_write_nothing_past_their_rung(smoke_run):
    """A trial ASHA stops at a rung ends there: no checkpoint of a later epoch is on disk (without the decision board
    the workers trained and checkpointed the next rung and the last epoch before Ray ended them)."""
    from pathlib import Path

    rows = list(csv.DictReader((smoke_run["results"] / "trials.csv").open()))
    stopped = [r for r in rows if r["stopped_early"] == "True"]
    assert stopped, "ASHA stopped no trial"
    train = smoke_run["storage"] / "smoke" / "train"
    for r in stopped:
        written = [load_checkpoint(Path(p).parent)[1]["epoch"] for p in (train / f"trial-{r['trial_id']}").glob(
            "checkpoint_*/model.pt")]
        assert written and max(written) <= int(r["last_epoch"]), (r["trial_id"], r["last_epoch"], written)


def test_ray_public_api_reaches_every_checkpoint(smoke_run):
    """Ray's own API alone finds each trial's checkpoints and the same best trial and checkpoint as summary.json:
    ``ExperimentAnalysis`` picks the trial, its ``train_run`` result opens with ``ray.train.Result.from_path``."""
    from pathlib import Path

    import ray.train
    from ray.tune import ExperimentAnalysis

    for kind in SMOKE_KINDS:
        analysis = ExperimentAnalysis(str(smoke_run["storage"] / "smoke" / kind))
        assert len(analysis.trials) == 4
        for trial in analysis.trials:
            run = ray.train.Result.from_path(trial.last_result["train_run"])
            assert run.checkpoint is not None and run.best_checkpoints, trial.trial_id
        best = analysis.get_best_trial("val/mse", "min", scope="last")
        assert best.trial_id == smoke_run["summary"]["models"][kind]["best_trial"]
        checkpoint = ray.train.Result.from_path(best.last_result["train_run"]).checkpoint
        assert Path(checkpoint.path).resolve() == best_checkpoint(smoke_run, kind).resolve()


def test_wandb_offline_runs_written(smoke_run):
    runs = list((smoke_run["storage"] / "smoke" / "wandb").rglob("offline-run-*/run-*.wandb"))
    # an offline run for every trial (the report, if it ran first, adds its own run beside them)
    logged = {p.name.removeprefix("run-").removesuffix(".wandb") for p in runs}
    trials = {r["trial_id"] for r in csv.DictReader((smoke_run["results"] / "trials.csv").open())}
    assert len(trials) == 4 * len(SMOKE_KINDS) and trials <= logged
    assert not (smoke_run["root"] / "home" / ".config" / "wandb").exists()  # nothing under $HOME


@pytest.mark.parametrize("kind", SMOKE_KINDS)
def test_best_checkpoint_reloads_alone_and_reproduces_val_loss(smoke_run, kind):
    m = smoke_run["summary"]["models"][kind]
    model, payload = load_checkpoint(best_checkpoint(smoke_run, kind))
    data_cfg, model_cfg, train_cfg = configs_of(payload)
    assert model_cfg.kind == kind and payload["epoch"] == m["best_metrics"]["epoch"]
    splits = load_splits(data_cfg)
    loader = make_loader(splits.val, eval_batch_size(train_cfg.batch_size), shuffle=False)  # as the trainable's
    again = evaluate(model, loader, torch.device("cpu"), train_cfg)
    assert again["val/loss"] == pytest.approx(m["best_metrics"]["val/loss"], rel=1e-4)


@pytest.mark.parametrize("args, message", [
    (["--data", "/no/such/folder"], "/no/such/folder"),
    (["--image-size", "100"], "100"),
    (["--num-samples", "0"], "--num-samples 0"),
    (["--epochs", "0"], "train.epochs choice 0"),
])
def test_bad_input_fails_before_ray(tmp_path, args, message):
    """As a user runs it (a subprocess); no Ray session is created in its private RAY_TMPDIR."""
    ray_tmp = tmp_path / "ray"
    proc = subprocess.run([sys.executable, "-m", "tuneae.search", "--preset", "smoke", "--storage-path",
                           str(tmp_path / "runs"), *args], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          check=False, env={**os.environ, "RAY_TMPDIR": str(ray_tmp), "HOME": str(tmp_path)})
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Started a local Ray instance" not in proc.stdout + proc.stderr
    assert not list(ray_tmp.glob("*/session_*")) and not list(ray_tmp.glob("session_*"))


def test_help_states_presets_and_flags():
    out = subprocess.run([sys.executable, "-m", "tuneae.search", "--help"], capture_output=True, text=True,
                         check=False).stdout
    for flag in ["--data", "--model", "--preset", "--num-samples", "--max-concurrent", "--cpus-per-trial",
                 "--gpus-per-trial", "--workers-per-trial", "--storage-path", "--name", "--seed", "--no-wandb"]:
        assert flag in out
    assert "9 epochs for the bottleneck models" in out  # the cpu preset's reduced budget is stated


def test_config_file_then_flags_override(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[search]\nnum_samples = 7\n[space]\n"train.lr" = [0.01]\n[data]\nval_fraction = 0.2\n')
    resolved, _ = resolve(["--preset", "smoke", "--config", str(cfg), "--num-samples", "3"])
    search, data = resolved.search, resolved.data
    assert search.num_samples == 3 and search.space["train.lr"] == (0.01,) and data.val_fraction == 0.2
    bad = tmp_path / "bad.toml"
    bad.write_text("[search]\nnum_sample = 7\n")
    with pytest.raises(ConfigError, match="num_sample"):
        resolve(["--config", str(bad)])
    typed = tmp_path / "typed.toml"
    typed.write_text('[model]\nbase_channels = "eight"\n')
    with pytest.raises(ConfigError, match="base_channels = 'eight': expected int"):
        resolve(["--config", str(typed)])


def test_spatial_code_that_does_not_tile_is_refused_before_ray(tmp_path, capsys):
    cfg = tmp_path / "spatial.toml"
    cfg.write_text('[model]\ndepth = 2\n[space]\n"model.latent_layout" = ["dense", "spatial"]\n'
                   '"model.latent_dim" = [20]\n')
    assert main(["--preset", "smoke", "--model", "ae", "--config", str(cfg), "--no-wandb",
                 "--storage-path", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err
    assert "model.latent_dim=20" in err and "model.depth=2" in err and "latent_layout='spatial'" in err


def test_main_rejects_bad_config_file(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nlearning_rate = 0.1\n")
    assert main(["--config", str(bad)]) == 2  # fails in config resolution: no data read, no Ray started
    err = capsys.readouterr().err
    assert str(bad) in err and "learning_rate" in err and "[train]" in err
    flat = tmp_path / "flat.toml"
    flat.write_text("search = 5\n")
    assert main(["--config", str(flat)]) == 2 and "['search'] must be tables" in capsys.readouterr().err


def test_each_kind_searches_only_what_it_uses():
    search = resolve(["--preset", "gpu", "--model", "ae", "dunet"])[0].search
    ae, dunet = kind_space(search, "ae"), kind_space(search, "dunet")
    assert "model.latent_dim" in ae and "model.latent_dim" not in dunet  # U-Nets have no bottleneck vector
    assert "train.noise_sigma_max" not in ae
    assert {"model.base_channels", "model.kernel_size", "model.norm", "model.input_norm"} <= set(ae) & set(dunet)
    assert dunet["model.depth"] == (3, 4, 5)
    assert {"model.latent_layout", "model.residual", "model.recon_loss"} <= set(ae)  # the architecture options
    assert "model.latent_layout" not in dunet and "model.residual" not in dunet and "model.recon_loss" in dunet
    assert "model.recon_loss" not in kind_space(search, "vae")  # the VAE's loss is its negative ELBO
    search = resolve(["--preset", "gpu", "--model", "dunet", "--epochs", "2"])[0].search
    assert kind_space(search, "dunet")["train.epochs"] == (2,)  # a flag overrides every kind


def test_derive_max_concurrent_never_oversubscribes():
    two_cpu = {"CPU": 2.0}
    assert derive_max_concurrent(two_cpu, SearchConfig(cpus_per_trial=2)) == 1
    assert derive_max_concurrent(two_cpu, SearchConfig(cpus_per_trial=1)) == 2
    assert derive_max_concurrent(two_cpu, SearchConfig(cpus_per_trial=1, workers_per_trial=2)) == 1
    gpu = {"CPU": 16.0, "GPU": 1.0}
    assert derive_max_concurrent(gpu, SearchConfig(cpus_per_trial=2, gpus_per_trial=0.25)) == 4
    assert derive_max_concurrent({"CPU": 4.0}, SearchConfig(cpus_per_trial=1, gpus_per_trial=1)) == 1
    assert derive_max_concurrent(two_cpu, SearchConfig(max_concurrent=8)) == 8  # explicit: autoscaler adds nodes


def test_committed_results_hold_no_absolute_path(smoke_run):
    root = str(smoke_run["root"])
    for name in ("summary.json", "trials.csv"):
        text = (smoke_run["results"] / name).read_text()
        assert root not in text, f"{name} holds an absolute path of this machine"
    s = smoke_run["summary"]
    assert (smoke_run["results"] / s["experiment_dir"]).resolve() == (smoke_run["storage"] / "smoke").resolve()
    assert s["wandb"]["dir"] == "../../runs/smoke/wandb"
