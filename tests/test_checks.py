"""Bad input refused before Ray starts, through the real entry point ``tuneae.search.main``.

Every test here runs ``main`` in this process with the data loading and the Ray start replaced by a failure, so a
check that let the input through fails the test instead of spending compute; each asserts exit 2 and that the
message names the flag, file, key or value at fault. The runs that do start Ray are in ``test_faults.py``.
"""
from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from tuneae.config import Config, DataConfig, ModelConfig, SearchConfig, TrainConfig
from tuneae.layout import RunLayout, user_path
from tuneae.models import build_model
from tuneae.search import run
from tuneae.search.checks import check_project_name, validate
from tuneae.search.cli import resolve
from tuneae.search.names import FINISHED, FREE, UNFINISHED, claim_name, clear_run, run_state
from tuneae.search.resources import check_session, shortfall
from tuneae.tracking import logging_record, written_runs


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    """``call(*flags, wandb=False) -> (exit code, stderr)``: ``main`` with the smoke preset and this test's folders;
    loading data or starting Ray fails the test (everything here must be refused before)."""
    def forbidden(*_args, **_kwargs):
        raise AssertionError("the input got past the checks: data loading or Ray start reached")

    monkeypatch.setattr(run, "_load_data", forbidden)
    monkeypatch.setattr(run, "open_session", forbidden)
    monkeypatch.chdir(tmp_path)

    def call(*flags: str, wandb: bool = False) -> tuple[int, str]:
        argv = ["--preset", "smoke", "--storage-path", str(tmp_path / "runs"), "--results-dir",
                str(tmp_path / "results"), "--name", "x", *([] if wandb else ["--no-wandb"]), *flags]
        code = run.main(argv)
        return code, capsys.readouterr().err

    return call


# ------------------------------------------------------------------------------------------- batch size 1
def test_batch_of_one_with_batchnorm_is_refused(cli):
    code, err = cli("--batch-size", "1")
    assert code == 2
    assert "train.batch_size choice 1" in err and "--batch-size" in err and "model.norm 'batch'" in err
    assert "1x1" in err and "group" in err  # why, and what to change


@pytest.mark.parametrize("kind, extra, image_size, crop, batch", [
    ("ae", {}, 32, 0, 1), ("ae", {}, 32, 0, 2), ("ae", {}, 64, 0, 1),
    ("ae", {"residual": True}, 32, 0, 1), ("ae", {"residual": True}, 64, 0, 1),
    ("ae", {"latent_layout": "spatial"}, 32, 0, 1),
    ("unet", {}, 32, 0, 1), ("unet", {}, 64, 0, 1),
    ("unet", {}, 64, 32, 1), ("unet", {}, 64, 64, 1),  # random crops: BatchNorm sees the crop, not the image
])
def test_batchnorm_rule_is_pytorchs(kind, extra, image_size, crop, batch):
    """The check refuses exactly the batches that PyTorch's BatchNorm cannot train on: a real training-mode forward
    pass of the model (depth 5) on a batch of the training input's size (the crop when cropping)."""
    model_cfg = ModelConfig(kind=kind, image_size=image_size, depth=5, base_channels=4, latent_dim=8, **extra)
    side = crop or image_size
    try:
        build_model(model_cfg).train()(torch.rand(batch, 1, side, side))
        trains = True
    except ValueError as exc:
        assert "Expected more than 1 value per channel" in str(exc)
        trains = False
    space = {"train.batch_size": (batch,), "train.epochs": (3,), "train.crop_size": (crop,)}
    try:
        validate(Config(SearchConfig(models=(kind,), wandb=False, space=space), DataConfig(image_size=image_size),
                        model_cfg))
        accepted = True
    except ValueError as exc:
        assert f"train.batch_size choice {batch}" in str(exc), exc
        accepted = False
    assert accepted == trains == (batch * (side // 32) ** 2 >= 2)


def test_batch_of_one_is_accepted_with_group_norm(tmp_path):
    cfg = tmp_path / "group.toml"
    cfg.write_text('[model]\nnorm = "group"\n')
    resolved, _ = resolve(["--preset", "smoke", "--config", str(cfg), "--batch-size", "1", "--no-wandb"])
    validate(resolved)  # GroupNorm trains on one image


# -------------------------------------------------------------------------------- impossible resources
def test_more_cpus_per_trial_than_the_machine_has_is_refused(cli):
    n = os.cpu_count()
    code, err = cli("--cpus-per-trial", str(n + 1))
    assert code == 2 and f"--cpus-per-trial {n + 1}" in err and f"this machine has {n} CPU" in err
    code, err = cli("--cpus-per-trial", "1", "--workers-per-trial", str(n + 1))  # each fits, all at once do not
    assert code == 2 and f"--workers-per-trial {n + 1}" in err and f"{n} CPU" in err


def test_gpus_the_machine_lacks_are_refused(cli, monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)  # a laptop trying the gpu preset
    code, err = cli("--gpus-per-trial", "0.25")
    assert code == 2 and "--gpus-per-trial 0.25" in err and "no GPU" in err and "--gpus-per-trial 0" in err
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    code, err = cli("--gpus-per-trial", "2")
    assert code == 2 and "--gpus-per-trial 2" in err and "1 GPU" in err
    code, err = cli("--gpus-per-trial", "1.5")
    assert code == 2 and "--gpus-per-trial 1.5" in err and "whole number" in err


def test_resources_against_the_nodes_ray_sees(monkeypatch, capsys):
    """After Ray started: a local Ray that counts fewer CPUs (a container limit) is an error; a cluster only warns,
    since an autoscaler may add a node that fits."""
    import ray

    monkeypatch.setattr(ray, "nodes", lambda: [{"Alive": True, "Resources": {"CPU": 2.0}},
                                               {"Alive": False, "Resources": {"CPU": 64.0}}])  # a dead node
    with pytest.raises(ValueError, match=r"--cpus-per-trial 4: this machine \(as Ray counts it\) has 2 CPU"):
        check_session(SearchConfig(cpus_per_trial=4))
    check_session(SearchConfig(cpus_per_trial=4, address="auto"))
    err = capsys.readouterr().err
    assert "warning: --cpus-per-trial 4: the cluster has 2 CPU" in err and "Ctrl-C" in err
    check_session(SearchConfig(cpus_per_trial=2))  # fits: silent
    assert capsys.readouterr().err == ""
    two_nodes = [{"CPU": 1.0}, {"CPU": 1.0}]
    assert shortfall(SearchConfig(cpus_per_trial=1, workers_per_trial=2), two_nodes, "c") == ""  # one per node
    assert shortfall(SearchConfig(cpus_per_trial=2, gpus_per_trial=0.25), [{"CPU": 16.0, "GPU": 1.0}], "m") == ""


# ------------------------------------------------------------------------------ types in a config file
@pytest.mark.parametrize("text, named", [
    ('[space]\n"train.lr" = ["1e-3", "3e-3"]\n', "[space] 'train.lr' choice '1e-3': expected float"),
    ('[space]\n"train.batch_size" = [16.5]\n', "[space] 'train.batch_size' choice 16.5: expected int"),
    ('[space]\n"train.epochs" = [true]\n', "[space] 'train.epochs' choice True: expected int"),
    ('[space]\n"model.norm" = [1]\n', "[space] 'model.norm' choice 1: expected str"),
    ('[space]\n"train.lr" = []\n', "[space] 'train.lr' = []: expected a non-empty list"),
    ('[space]\n"train.lr" = 0.001\n', "[space] 'train.lr' = 0.001: expected a non-empty list"),
    ('[space]\n"train.learning_rate" = [0.1]\n', "[space] 'train.learning_rate' cannot be searched"),
    ('[space]\n"data.image_size" = [32, 64]\n', "[space] 'data.image_size': data settings cannot be searched"),
    ('[space]\n"model.kind" = ["ae"]\n', "[space] 'model.kind' cannot be searched"),
    ('[space]\n"train.lr" = [1e-3, 0.001]\n', "[space] 'train.lr' lists [0.001] more than once"),
    ('[space.foo]\n"train.lr" = [1e-3]\n', "[space.foo] names no model kind"),
    ('[space.ae]\n"train.batch_size" = ["16"]\n', "[space.ae] 'train.batch_size' choice '16': expected int"),
    ('[train]\nlr = "fast"\n', "[train] lr = 'fast': expected float"),
    ('[train]\nepochs = 2.5\n', "[train] epochs = 2.5: expected int"),
    ('[train]\nlr = nan\n', "[train] lr = nan: expected a finite number"),
    ('[search]\nmodels = ["ae", 1]\n', "[search] models = 1: expected str"),
    ('[search]\nwandb = "yes"\n', "[search] wandb = 'yes': expected bool"),
    ('[search.space]\n"train.lr" = [0.1]\n', "unknown field(s) ['space']"),
])
def test_badly_typed_config_values_are_refused(cli, tmp_path, text, named):
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    code, err = cli("--config", str(cfg))
    assert code == 2 and str(cfg) in err and named in err, err


@pytest.mark.parametrize("text, named", [
    ('[space]\n"train.lr" = [-1e-3]\n', "train.lr choice -0.001"),
    ('[space]\n"train.batch_size" = [0, 16]\n', "train.batch_size choice 0"),
    ('[space]\n"model.norm" = ["layer"]\n', "model.norm='layer'"),
    ('[train]\nnoise_sigma_min = 0.5\n', "[train] noise_sigma_min = 0.5 exceeds [train] noise_sigma_max = 0.3"),
    ('[search]\nwandb_mode = "cloud"\n', "wandb_mode = 'cloud'"),
    ('[train]\nnoise_protocol = "gauss"\n', "[train] noise_protocol = 'gauss': choose one of awgn"),
    ('[space]\n"train.noise_protocol" = ["awgn", "poisson"]\n', "train.noise_protocol choice 'poisson'"),
    ('[train]\nprecision = "fp16"\n', "[train] precision = 'fp16': choose one of auto, fp32, bf16"),
    ('[space]\n"train.memory_format" = ["nhwc"]\n', "train.memory_format choice 'nhwc'"),
    ('[train]\ncheckpoint_every = -1\n', "[train] checkpoint_every = -1: must be >= 0"),
    ('[search]\nmodels = ["ae", "gan"]\n', "unknown kind(s) ['gan']"),
])
def test_out_of_range_config_values_are_refused(cli, tmp_path, text, named):
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    code, err = cli("--config", str(cfg), "--model", "ae") if "models" not in text else cli("--config", str(cfg))
    assert code == 2 and named in err, err


# --------------------------------------------------------------------------------- W&B project names
@pytest.mark.parametrize("project", ["mri/ae", "mri\\ae", "mri#1", "mri?", "50%", "mri:ae", "m" * 129, ""])
def test_wandb_project_names_wandb_refuses_are_refused(cli, project):
    code, err = cli("--wandb-project", project, wandb=True)
    assert code == 2 and f"--wandb-project {project!r}" in err and "W&B refuses it" in err


def test_wandb_project_names_wandb_takes_pass():
    for project in ("tuneae", "mri-ae_v2.1", "m" * 128):
        check_project_name(project)


def test_summary_records_the_wandb_runs_written_not_the_mode(tmp_path):
    env = {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path)}
    assert written_runs(tmp_path, 0) == 0
    assert logging_record(env, "p", 0, trials_ran=True)["status"] == "failed"  # asked for, nothing written
    assert "reason" in logging_record(env, "p", 0, trials_ran=True)
    assert logging_record(env, "p", 0, trials_ran=False)["status"] == "nothing to log"  # a finished resume
    old = tmp_path / "wandb" / "offline-run-20250101_000000-old"
    old.mkdir(parents=True)
    os.utime(old, (0, 0))  # an earlier search's run
    (tmp_path / "wandb" / "offline-run-20250102_000000-new").mkdir()
    (tmp_path / "wandb" / "latest-run").mkdir()  # not a run folder
    assert written_runs(tmp_path, 1000) == 1
    assert logging_record(env, "p", 1, trials_ran=True) == {"mode": "offline", "project": "p", "runs_written": 1,
                                                            "status": "logged"}


# ------------------------------------------------------------------------------------------ ~ and $VAR
def test_home_and_variables_are_expanded_in_every_user_path(tmp_path, monkeypatch):
    home, data = tmp_path / "home", tmp_path / "d"
    (home / "mri").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TUNEAE_TEST_DATA", str(data))
    monkeypatch.chdir(tmp_path)
    (home / "c.toml").write_text('[search]\nresults_dir = "~/res"\n[data]\nsource = "~/mri"\n'
                                 'cache_dir = "${TUNEAE_TEST_DATA}/cache"\n')
    cfg, _ = resolve(["--config", "~/c.toml", "--storage-path=~/runs"])  # the shell leaves =~ as it is
    search, d = cfg.search, cfg.data  # the shell leaves =~ as it is
    assert search.storage_path == str(home / "runs") and search.results_dir == str(home / "res")
    assert d.source == str(home / "mri") and d.cache_dir == str(data / "cache")
    assert RunLayout.of(search).experiment == str(home / "runs" / "cpu")
    cfg, _ = resolve(["--data", "$TUNEAE_TEST_DATA/x", "--results-dir=~/r", "--storage-path", "$HOME/s"])
    search, d = cfg.search, cfg.data
    assert d.source == str(data / "x") and search.results_dir == str(home / "r")
    assert d.cache_dir == str(home / "s" / "cache")
    assert not (tmp_path / "~").exists() and not (tmp_path / "$HOME").exists()
    for unchanged in ("s3://bucket/~x", "benschill/brain-tumor-collection", "phantom", ""):
        assert user_path(unchanged) == unchanged


def test_the_report_and_the_data_command_expand_their_paths_too(tmp_path, monkeypatch, capsys):
    from tuneae import report
    from tuneae.data.__main__ import main as data_main

    monkeypatch.setenv("HOME", str(tmp_path))
    assert report.main(["~/results/none", "--no-wandb"]) == 2
    assert f"run folder {tmp_path / 'results' / 'none'} does not exist" in capsys.readouterr().err
    assert data_main(["~/none", "--out", "~/res"]) == 2
    assert f"data source '{tmp_path / 'none'}': no such folder" in capsys.readouterr().err


# ------------------------------------------------------------------------------- relations between flags
@pytest.mark.parametrize("flags, named", [
    (["--grace-period", "5"], "--grace-period 5 exceeds the largest epochs of ae"),
    (["--grace-period", "0"], "--grace-period 0"),
    (["--reduction-factor", "1.5"], "--reduction-factor 1.5"),
    (["--num-samples", "0"], "--num-samples 0"),
    (["--epochs", "0"], "train.epochs choice 0"),
    (["--max-concurrent", "-1"], "--max-concurrent -1"),
    (["--workers-per-trial", "0"], "--workers-per-trial 0"),
    (["--cpus-per-trial", "0"], "--cpus-per-trial 0"),
    (["--lr", "0"], "train.lr choice 0.0"),
    (["--lr", "nan"], "(--lr) 'train.lr' choice nan"),
    (["--name", "a/b"], "--name 'a/b'"),
    (["--name", "cache"], "--name 'cache'"),
])
def test_impossible_flags_are_refused(cli, flags, named):
    code, err = cli("--model", "ae", *flags)
    assert code == 2 and named in err, err


@pytest.mark.parametrize("value", ["fast", "0", "-1", ""])
def test_a_bad_train_poll_interval_in_the_environment_is_refused(cli, monkeypatch, value):
    from tuneae.search.session import TRAIN_POLL_ENV

    monkeypatch.setenv(TRAIN_POLL_ENV, value)
    code, err = cli()
    assert code == 2 and TRAIN_POLL_ENV in err and repr(value) in err


def test_harmless_relations_only_warn():
    cfg, _ = resolve(["--preset", "smoke", "--no-wandb", "--num-samples", "2", "--max-concurrent", "8",
                      "--grace-period", "3"])
    with pytest.warns(UserWarning) as record:
        validate(cfg)
    messages = " ".join(str(w.message) for w in record)
    assert "--max-concurrent 8 exceeds --num-samples 2" in messages
    assert "ASHA will stop no trial early" in messages


# ----------------------------------------------------------------------- never another run's results
def _write_summary(results: Path, name: str, interrupted: str | None = None) -> Path:
    (results / name).mkdir(parents=True, exist_ok=True)
    path = results / name / "summary.json"
    path.write_text(json.dumps({"interrupted": interrupted, "models": {}}))
    return path


def test_a_finished_name_gets_the_next_free_name(tmp_path, capsys):
    search = SearchConfig(name="cpu", storage_path=str(tmp_path / "runs"), results_dir=str(tmp_path / "results"))
    # finished results without their experiment folder (a fresh clone)
    committed = _write_summary(tmp_path / "results", "cpu")
    _write_summary(tmp_path / "results", "cpu-2")
    assert run_state(RunLayout.of(search))[0] == FINISHED
    claimed = claim_name(search, resume=False, overwrite=False)
    assert claimed.name == "cpu-3" and run_state(RunLayout.of(claimed))[0] == FREE
    out = capsys.readouterr().out
    assert "'cpu' belongs to a finished run" in out and str(committed) in out and "'cpu-3'" in out
    assert claim_name(search, resume=False, overwrite=True).name == "cpu"  # explicit


def test_an_unfinished_name_is_refused_without_resume_or_overwrite(cli, tmp_path):
    (tmp_path / "runs" / "x").mkdir(parents=True)  # killed before it wrote results
    code, err = cli()
    assert code == 2 and "'x' is unfinished" in err and "without results" in err
    assert "--resume" in err and "--overwrite" in err
    summary = _write_summary(tmp_path / "results", "x", interrupted="ae")  # Ctrl-C: summary says interrupted
    code, err = cli()
    assert code == 2 and "interrupted during ae" in err and str(summary) in err
    assert json.loads(summary.read_text())["interrupted"] == "ae"  # untouched


def test_resume_refuses_results_without_their_experiment(cli, tmp_path):
    _write_summary(tmp_path / "results", "x")  # e.g. committed results, or the experiment folder moved
    code, err = cli("--resume")
    assert code == 2 and "no experiment folder" in err and "--storage-path" in err
    code, err = cli("--resume", "--overwrite")
    assert code == 2 and "exclude each other" in err


def test_overwrite_removes_the_named_run_only(tmp_path):
    search = SearchConfig(name="x", storage_path=str(tmp_path / "runs"), results_dir=str(tmp_path / "results"))
    (tmp_path / "runs" / "x" / "ae").mkdir(parents=True)
    (tmp_path / "runs" / "cache").mkdir()
    _write_summary(tmp_path / "results", "x", interrupted="ae")
    _write_summary(tmp_path / "results", "y")
    assert run_state(RunLayout.of(search))[0] == UNFINISHED
    clear_run(claim_name(search, resume=False, overwrite=True))
    assert run_state(RunLayout.of(search))[0] == FREE
    assert (tmp_path / "runs" / "cache").is_dir() and (tmp_path / "results" / "y" / "summary.json").is_file()
    remote = replace(search, storage_path="s3://bucket/tuneae")
    _write_summary(tmp_path / "results", "x")
    with pytest.raises(ValueError, match="--overwrite removes only a local experiment folder"):
        claim_name(remote, resume=False, overwrite=True)


def test_train_config_default_is_checked_too():
    search = SearchConfig(models=("ae",), wandb=False, space={"train.lr": (1e-3,)})
    with pytest.raises(ValueError, match=r"\[train\] epochs = 0"):
        validate(Config(search, DataConfig(image_size=32), ModelConfig(image_size=32, depth=3), TrainConfig(epochs=0)))


# -------------------------------------------------------------------------------- one source for each setting
def test_every_flag_is_a_documented_config_field():
    from tuneae.config import SECTIONS, field_docs
    from tuneae.search.cli import build_parser, flag_name, flagged_fields

    flags = {flag_name(section, f): (section, f) for section, f in flagged_fields()}
    assert {"--num-samples", "--max-concurrent", "--cpus-per-trial", "--gpus-per-trial", "--workers-per-trial",
            "--storage-path", "--results-dir", "--name", "--seed", "--grace-period", "--reduction-factor",
            "--address", "--wandb-mode", "--wandb-project", "--no-wandb", "--model", "--data", "--image-size",
            "--split", "--skip-unreadable", "--lr", "--epochs", "--batch-size", "--latent-dim"} <= set(flags)
    for section, f in flags.values():
        assert field_docs(SECTIONS[section])[f.name]  # the help text
    text = build_parser().format_help()
    assert "Trials per model kind" in text and "Adam learning rate" in text


def test_one_default_recipe():
    from tuneae.config import SEED_SPACE, seed_recipe
    from tuneae.presets import preset
    from tuneae.search.searcher import seed_point
    from tuneae.search.space import kind_space

    recipe = seed_recipe()
    assert recipe["train.lr"] == 5e-4 and recipe["train.batch_size"] == 16 and recipe["model.latent_dim"] == 512
    assert all(recipe[k] in choices for k, choices in SEED_SPACE.items() if k != "train.epochs")
    gpu = kind_space(preset("gpu").search, "ae")
    point = seed_point(gpu)  # the gpu preset searches every architecture field: its first trial is the recipe
    searched = [k for k in point if k != "train.epochs"]
    assert {k: point[k] for k in searched} == {k: recipe[k] for k in searched}


@pytest.mark.parametrize("kind", ["ae", "vae", "dae"])
def test_cpu_preset_searches_the_bottleneck_architecture(kind):
    import itertools

    from tuneae.config import seed_recipe
    from tuneae.presets import preset
    from tuneae.search.searcher import seed_point
    from tuneae.search.space import kind_space

    cfg = preset("cpu")
    validate(replace(cfg, search=replace(cfg.search, models=(kind,))))  # every combination of the space builds
    space = kind_space(cfg.search, kind)
    arch = ("model.base_channels", "model.depth", "model.residual", "model.norm")
    assert all(len(space[k]) >= 2 for k in arch)  # width, depth, residual blocks and normalization are searched
    recipe, point = seed_recipe(), seed_point(space)
    assert all(point[k] == recipe[k] for k in arch)  # the first trial is still the seed project's stack
    for i, combo in enumerate(itertools.product(*(space[k] for k in arch))):  # each trains: shape, backward, finite
        torch.manual_seed(i)  # at 64 px (the same layers as at the preset's 128, a quarter of the time)
        model = build_model(replace(cfg.model, kind=kind, image_size=64, latent_dim=512,
                                    latent_layout=("dense", "spatial")[i % 2],
                                    **{k[6:]: v for k, v in zip(arch, combo, strict=True)}))
        x = torch.rand(2, 1, 64, 64)
        loss, out = model.objective(x, x)
        loss.backward()
        assert out.shape == x.shape and torch.isfinite(loss), combo
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None), combo


def test_root_config_round_trips_through_the_flat_dict():
    from tuneae.config import Config, from_flat

    cfg = Config(data=DataConfig(image_size=64), model=ModelConfig(kind="vae", depth=4), train=TrainConfig(lr=1e-3))
    assert cfg.model.image_size == 64  # follows the data
    assert from_flat({**cfg.flat(), "asha.max_t": 9}) == cfg
    with pytest.raises(ValueError, match=r"train\.learning_rate"):
        from_flat({"train.learning_rate": 1e-3})


@pytest.mark.parametrize("field, value", [("lr", 0.0), ("epochs", 0), ("batch_size", 0), ("precision", "fp16"),
                                          ("noise_protocol", "gauss"), ("checkpoint_every", -1)])
def test_search_and_training_refuse_the_same_values(field, value):
    from tuneae.rules import TRAIN_RULES, check_train_config

    need = TRAIN_RULES[field][1]
    with pytest.raises(ValueError, match=rf"train\.{field}") as trained:
        check_train_config(TrainConfig(**{field: value}), ModelConfig(image_size=32, depth=3))
    search = SearchConfig(models=("ae",), wandb=False, space={f"train.{field}": (value,)})
    with pytest.raises(ValueError) as searched:
        validate(Config(search, DataConfig(image_size=32), ModelConfig(image_size=32, depth=3)))
    assert need in str(trained.value) and need in str(searched.value)
