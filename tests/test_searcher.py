"""The Optuna searcher without Ray: the ``PruningOptunaSearch`` is driven directly through Tune's searcher hooks
(``set_search_properties`` / ``suggest`` / ``on_trial_result`` / ``on_trial_complete``, as ``TuneController`` calls
them) on toy objectives, and its study read back from the SQLite file."""
from __future__ import annotations

import pickle

import optuna
import pytest
from ray import tune

from tuneae.checkpoint import asha_rungs
from tuneae.layout import RunLayout
from tuneae.search import kind_space, main, resolve
from tuneae.search.optuna_search import PruningOptunaSearch
from tuneae.search.searcher import (
    config_key,
    make_searcher,
    nearest_choice,
    nearest_unseen,
    seed_point,
    startup_trials,
)
from tuneae.search.study import check_resume, read_study

METRIC = "val/loss"
TOY_SPACE = {"model.x": tuple(range(20)), "model.y": ("a", "b", "c")}
"""A toy space: 60 configurations, the best one x = 13, y = "b"."""


def toy(cfg: dict) -> float:
    return (cfg["model.x"] - 13) ** 2 + 30.0 * (cfg["model.y"] != "b")


def good(cfg: dict) -> bool:
    """The good region of :func:`toy`: 7 of its 60 configurations."""
    return abs(cfg["model.x"] - 13) <= 3 and cfg["model.y"] == "b"


def searcher_for(tmp_path, space, *, num_samples=8, seed=0, max_concurrent=1, epochs=1, kind="ae", name="a"):
    """A fresh searcher (``make_searcher``) with Tune's search properties set, as ``Tuner.fit`` does."""
    s = make_searcher(kind, space, epochs, num_samples=num_samples, max_concurrent=max_concurrent,
                      seed=seed, study_file=tmp_path / name / "optuna.db", rungs=[1.0])
    assert s.set_search_properties(METRIC, "min", {k: tune.choice(list(v)) for k, v in space.items()})
    return s


def run_trial(s, trial_id: str, objective, epochs: int = 1, stop_at: int | None = None) -> dict:
    """One trial as Tune drives it: results each epoch to ``on_trial_result`` except the last one, which (stopped by
    the scheduler or at its end) goes only to ``on_trial_complete``."""
    cfg = s.suggest(trial_id)
    epochs = cfg.get("train.epochs", epochs)
    last = stop_at or epochs
    for epoch in range(1, last):
        s.on_trial_result(trial_id, {METRIC: objective(cfg) + 1.0 / epoch, "epoch": epoch})
    s.on_trial_complete(trial_id, result={METRIC: objective(cfg) + 1.0 / last - (last == epochs), "epoch": last})
    return cfg


def test_startup_rule_and_rungs():
    assert [startup_trials(n) for n in (1, 4, 8, 27, 100)] == [2, 2, 2, 6, 25]
    assert list(asha_rungs(1, 3.0, 9, below_max_t=True)) == [1, 3]  # cpu preset: ASHA stops at epochs 1 and 3
    assert list(asha_rungs(5, 2.0, 40, below_max_t=True)) == [5, 10, 20]  # gpu preset


def test_nearest_choice():
    assert nearest_choice(5e-4, (1e-3, 1e-4)) == 1e-3  # log scale: x2 is nearer than /5
    assert nearest_choice(5, (3, 4)) == 4 and nearest_choice(32, (8, 16)) == 16
    assert nearest_choice("batch", ("group", "batch")) == "batch"
    assert nearest_choice("batch", ("group", "none")) == "group"


def test_early_stopped_trial_is_pruned_with_its_epoch_values(tmp_path):
    s = searcher_for(tmp_path, {"train.lr": (1e-3, 5e-4), "train.epochs": (4,)}, epochs=4)
    vals = {1: 0.9, 2: 0.5, 3: 0.4}
    s.suggest("stopped")
    for e in (1, 2):
        s.on_trial_result("stopped", {METRIC: vals[e], "epoch": e})
    s.on_trial_complete("stopped", result={METRIC: vals[3], "epoch": 3})  # ASHA's STOP result
    s.suggest("full")
    for e in (1, 2, 3):
        s.on_trial_result("full", {METRIC: 0.3, "epoch": e})
    s.on_trial_complete("full", result={METRIC: 0.2, "epoch": 4})
    s.on_trial_complete("full", result={METRIC: 0.2, "epoch": 4})  # told twice: ignored
    s.suggest("broken")
    s.on_trial_result("broken", {METRIC: 0.8, "epoch": 1})
    s.on_trial_complete("broken", error=True)
    s.suggest("nan")
    s.on_trial_complete("nan", result={METRIC: float("nan"), "epoch": 4})

    study = read_study(tmp_path / "a" / "optuna.db")["ae"]  # read back from the file
    by_id = {t["tune_trial_id"]: t for t in study["trials"]}
    assert by_id["stopped"]["state"] == "PRUNED"
    assert by_id["stopped"]["intermediate"] == [[1, 0.9], [2, 0.5], [3, 0.4]]
    assert by_id["stopped"]["value"] == 0.4  # Optuna keeps a pruned trial's last value
    assert by_id["full"]["state"] == "COMPLETE" and by_id["full"]["value"] == 0.2
    assert [s for s, _ in by_id["full"]["intermediate"]] == [1, 2, 3, 4]
    assert by_id["broken"]["state"] == "FAIL" and by_id["nan"]["state"] == "FAIL"
    counts = {k: study["counts"][k] for k in ("completed", "pruned", "failed", "running")}
    assert counts == {"completed": 1, "pruned": 1, "failed": 2, "running": 0}
    assert study["importances"] is None and "1 completed" in study["importance_note"]
    assert study["attrs"]["rungs"] == [1.0]


SEED_RECIPE_TRAINING = {"train.optimizer": "adam", "train.weight_decay": 0.0, "train.lr_schedule": "constant"}
"""The cpu preset's recipe choices at the seed recipe's values."""


@pytest.mark.parametrize("kind, expected", [
    ("ae", {"train.lr": 5e-4, "train.epochs": 9, "train.batch_size": 16, "model.latent_dim": 512,
            "model.latent_layout": "dense", "model.recon_loss": "mse", "model.base_channels": 32, "model.depth": 5,
            "model.residual": False, "model.norm": "batch", **SEED_RECIPE_TRAINING}),
    ("dunet", {"train.lr": 5e-4, "train.epochs": 8, "train.batch_size": 16, "model.base_channels": 16,
               "model.depth": 4, "model.norm": "batch", "model.input_norm": "none", "model.recon_loss": "mse",
               **SEED_RECIPE_TRAINING}),
])
def test_first_trial_is_the_seed_recipe(tmp_path, kind, expected):
    cfg, _ = resolve(["--preset", "cpu", "--storage-path", str(tmp_path)])
    space = kind_space(cfg.search, kind)
    assert seed_point(space) == expected
    s = searcher_for(tmp_path, space, kind=kind, epochs=cfg.train.epochs)
    assert s.suggest("first") == expected
    assert s.suggest("second") != expected or len(space) == 0  # the recipe is enqueued once
    study = read_study(tmp_path / "a" / "optuna.db")[kind]
    assert study["trials"][0]["origin"] == "seed recipe"


def _configs(s, n: int) -> list[dict]:
    return [run_trial(s, f"t{i}", toy) for i in range(n)]


def test_tpe_concentrates_on_the_good_region_after_startup(tmp_path):
    n = 24
    tpe = searcher_for(tmp_path, TOY_SPACE, num_samples=n, name="tpe")
    searcher_for(tmp_path, TOY_SPACE, num_samples=n, name="random")  # the study, its seed recipe enqueued
    random = PruningOptunaSearch(sampler=optuna.samplers.RandomSampler(seed=0), study_name="ae", planned_epochs=1,
                                 storage=f"sqlite:///{tmp_path / 'random' / 'optuna.db'}")
    assert random.set_search_properties(METRIC, "min", {k: tune.choice(list(v)) for k, v in TOY_SPACE.items()})
    start = startup_trials(n)
    modelled, baseline = _configs(tpe, n)[start:], _configs(random, n)[start:]
    # random search lands in the 7-of-60 good region ~12% of the time (2 of these 18 trials); TPE must find most
    # of the region after its start-up, and no configuration twice
    assert sum(map(good, modelled)) >= max(2 * sum(map(good, baseline)), 5)
    assert sum(map(toy, modelled)) < 0.6 * sum(map(toy, baseline))
    study = read_study(tmp_path / "tpe" / "optuna.db")["ae"]
    assert study["counts"]["completed"] == n and len(study["trials"]) == n
    assert len({repr(sorted(t["params"].items())) for t in study["trials"]}) == n
    assert set(study["importances"]) == {"model.x", "model.y"}
    assert sum(study["importances"].values()) == pytest.approx(1.0)


def test_nearest_unseen():
    choices = {"lr": [1e-3, 5e-4, 1e-4], "norm": ["batch", "group"]}
    proposal = {"lr": 1e-3, "norm": "batch"}
    seen = {config_key(proposal)}
    assert nearest_unseen(proposal, choices, seen) in ({"lr": 5e-4, "norm": "batch"}, {"lr": 1e-3, "norm": "group"})
    seen |= {config_key({"lr": 5e-4, "norm": "batch"}), config_key({"lr": 1e-3, "norm": "group"})}
    assert nearest_unseen(proposal, choices, seen) in ({"lr": 1e-4, "norm": "batch"}, {"lr": 5e-4, "norm": "group"})
    everything = {config_key({"lr": a, "norm": b}) for a in choices["lr"] for b in choices["norm"]}
    assert nearest_unseen(proposal, choices, everything) is None


def test_no_configuration_runs_twice(tmp_path):
    """TPE repeats the best configuration often in a small space (here the 27 of the seed project's grid at cpu epochs);
    each repeat is replaced by the nearest untried configuration, so 12 trials try 12 configurations."""
    space = {"train.lr": (1e-3, 5e-4, 1e-4), "train.epochs": (3, 6, 9), "train.batch_size": (16, 32, 64),
             "model.latent_dim": (512, 1024, 2048)}
    s = searcher_for(tmp_path, space, num_samples=12, epochs=9)

    def smooth(c):  # best at lr 1e-4, latent 1024, batch 16
        return (abs(c["train.lr"] - 1e-4) * 1e3 + abs(c["model.latent_dim"] - 1024) / 1024
                + c["train.batch_size"] / 64 - c["train.epochs"] / 9)

    configs = [run_trial(s, f"t{i}", smooth) for i in range(12)]
    assert len({repr(sorted(c.items())) for c in configs}) == 12
    study = read_study(tmp_path / "a" / "optuna.db")["ae"]
    assert len(study["trials"]) == 12 and study["counts"]["repeats_replaced"] >= 1
    assert any(t["origin"].startswith("nearest unseen") for t in study["trials"])


def test_seeded_one_at_a_time_runs_propose_the_same_configs(tmp_path):
    first = _configs(searcher_for(tmp_path, TOY_SPACE, num_samples=12, seed=3, name="one"), 12)
    again = _configs(searcher_for(tmp_path, TOY_SPACE, num_samples=12, seed=3, name="two"), 12)
    other = _configs(searcher_for(tmp_path, TOY_SPACE, num_samples=12, seed=4, name="three"), 12)
    assert first == again
    assert first != other  # the seed matters


def test_parallel_trials_use_the_constant_liar(tmp_path):
    s = searcher_for(tmp_path, TOY_SPACE, num_samples=8, max_concurrent=4)
    assert isinstance(s.sampler, optuna.samplers.TPESampler)
    assert read_study(tmp_path / "a" / "optuna.db")["ae"]["attrs"]["constant_liar"]
    searcher_for(tmp_path, TOY_SPACE, name="b")
    assert not read_study(tmp_path / "b" / "optuna.db")["ae"]["attrs"]["constant_liar"]


def test_save_restore_keeps_the_study(tmp_path):
    """As ``Tuner.restore`` does: the searcher pickled before the run (tuner.pkl), its search properties set again,
    then its saved state loaded (``restore_from_dir``)."""
    space = {**TOY_SPACE, "train.epochs": (3,)}
    s = make_searcher("ae", space, 3, num_samples=6, max_concurrent=1, seed=0,
                      study_file=tmp_path / "optuna.db")
    blank = pickle.dumps(s)
    props = (METRIC, "min", {k: tune.choice(list(v)) for k, v in space.items()})
    s.set_search_properties(*props)
    for i in range(3):
        run_trial(s, f"t{i}", toy, epochs=3)
    s.suggest("running")
    s.on_trial_result("running", {METRIC: 5.0, "epoch": 1})
    s.save_to_dir(str(tmp_path), session_str="x")
    s.suggest("zombie")  # asked after the last save, then the driver died

    restored = pickle.loads(blank)
    restored.set_search_properties(*props)
    restored.restore_from_dir(str(tmp_path))
    restored.on_trial_result("running", {METRIC: 4.0, "epoch": 2})
    restored.on_trial_complete("running", result={METRIC: 3.0, "epoch": 3})
    run_trial(restored, "t4", toy, epochs=3)

    study = read_study(tmp_path / "optuna.db")["ae"]
    states = {t["tune_trial_id"]: t["state"] for t in study["trials"]}
    assert states == {"t0": "COMPLETE", "t1": "COMPLETE", "t2": "COMPLETE", "running": "COMPLETE",
                      "zombie": "FAIL", "t4": "COMPLETE"}
    assert [t["origin"] for t in study["trials"]].count("seed recipe") == 1  # not enqueued again on restore
    running = next(t for t in study["trials"] if t["tune_trial_id"] == "running")
    assert running["intermediate"] == [[1, 5.0], [2, 4.0], [3, 3.0]]
    check_resume(tmp_path / "optuna.db", "ae", 6, space)  # same budget and space: passes
    with pytest.raises(ValueError, match=r"--num-samples 8: .* started with 6"):
        check_resume(tmp_path / "optuna.db", "ae", 8, space)
    with pytest.raises(ValueError, match=r"model.x saved \[0, 1"):
        check_resume(tmp_path / "optuna.db", "ae", 6, {**space, "model.x": (1, 2)})
    check_resume(tmp_path / "optuna.db", "vae", 8, space)  # a kind not started yet passes


def test_resume_with_more_samples_is_refused_before_ray(tmp_path, capsys):
    """``--resume`` with a larger ``--num-samples`` is refused (exit 2) before Ray starts."""
    args = ["--preset", "smoke", "--model", "ae", "--storage-path", str(tmp_path / "runs"), "--results-dir",
            str(tmp_path / "results"), "--name", "x", "--no-wandb"]
    search = resolve([*args, "--num-samples", "2"])[0].search
    make_searcher("ae", kind_space(search, "ae"), 1, num_samples=2, max_concurrent=1, seed=0,
                  study_file=RunLayout.of(search).study_file)
    assert main([*args, "--num-samples", "4", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "--num-samples 4" in err and "--num-samples 2" in err
    assert not (tmp_path / "results").exists()


def test_search_section_draws_every_kind(tmp_path):
    """The report's Search section from a saved study: curves, metric per hyperparameter, importances, table."""
    from tuneae.report.search_plots import search_section

    space = {**TOY_SPACE, "train.epochs": (2, 4)}
    s = searcher_for(tmp_path, space, num_samples=10, epochs=4)
    for i in range(10):  # every third trial stopped by "ASHA" at epoch 1
        run_trial(s, f"t{i}", toy, epochs=4, stop_at=1 if i % 3 == 2 else None)
    studies = read_study(tmp_path / "a" / "optuna.db")
    assert studies["ae"]["counts"]["pruned"] >= 1 and studies["ae"]["importances"]
    lines, figures = search_section(studies, tmp_path / "report", dashboard="runs/x/optuna.db")
    assert set(figures) == {"search_ae_curves", "search_ae_params", "search_ae_importance"}
    for name in figures.values():
        assert (tmp_path / "report" / name).stat().st_size > 1000
        assert f"]({name})" in "\n".join(lines)
    text = "\n".join(lines)
    assert "optuna-dashboard sqlite:///runs/x/optuna.db" in text and "stopped early by ASHA" in text
    assert sum(line.startswith("| ") for line in lines) == 1 + 10  # header + one row per trial


def test_upstream_storage_still_pickles_its_absolute_url(tmp_path):
    """The upstream behaviour ``MovableStorage`` works around (Optuna 5.1): a plain ``RDBStorage`` unpickles onto
    the absolute SQLite URL it was made with, so once its file moved it cannot open. When this test fails, Optuna
    follows a moved file by itself and the workaround block in tuneae/search/optuna_search.py can go."""
    import sqlalchemy

    (tmp_path / "old").mkdir()
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'old' / 'optuna.db'}")
    optuna.create_study(storage=storage, study_name="s")
    saved = pickle.dumps(storage)
    (tmp_path / "old").rename(tmp_path / "new")
    with pytest.raises(sqlalchemy.exc.OperationalError):
        pickle.loads(saved)


def test_a_pickled_searcher_follows_its_moved_experiment_folder(tmp_path):
    """Tune pickles the searcher (its study storage included) into the experiment's state; after the experiment
    folder moved, unpickling inside ``study_file_now`` reconnects to the study's new place (``--resume`` from a
    moved folder); outside it, the old path is gone and the storage cannot open."""
    import sqlalchemy

    from tuneae.search.optuna_search import study_file_now

    s = searcher_for(tmp_path, TOY_SPACE, name="old")
    run_trial(s, "t0", toy)
    saved = pickle.dumps(s)
    (tmp_path / "old").rename(tmp_path / "new")
    with pytest.raises(sqlalchemy.exc.OperationalError):
        pickle.loads(saved)
    with study_file_now(tmp_path / "new" / "optuna.db"):
        restored = pickle.loads(saved)
    assert not (tmp_path / "old").exists()
    [trial] = restored.study.get_trials()
    assert trial.state == optuna.trial.TrialState.COMPLETE and trial.user_attrs["tune_trial_id"] == "t0"
    run_trial(restored, "t1", toy)  # the study goes on at its new place
    assert len(optuna.load_study(study_name="ae", storage=f"sqlite:///{tmp_path / 'new' / 'optuna.db'}")
               .get_trials()) == 2


def test_study_states_agree_with_tuneae_counts(tmp_path):
    """A repeated proposal never becomes a trial: the study's states (as optuna-dashboard reads them) count
    exactly the trials Tune ran, FAIL only for the one that errored, PRUNED only for the one ASHA stopped."""
    space = {"train.lr": (1e-3, 1e-4), "model.latent_dim": (512, 1024), "train.epochs": (3,)}  # 4 configurations
    s = searcher_for(tmp_path, space, num_samples=4, epochs=3)
    ran = [run_trial(s, "t0", toy_small, epochs=3), run_trial(s, "t1", toy_small, epochs=3, stop_at=1)]
    s.suggest("t2")
    s.on_trial_complete("t2", error=True)
    ran.append(run_trial(s, "t3", toy_small, epochs=3))
    study = optuna.load_study(study_name="ae", storage=f"sqlite:///{tmp_path / 'a' / 'optuna.db'}")
    states = [t.state.name for t in study.get_trials()]
    assert states == ["COMPLETE", "PRUNED", "FAIL", "COMPLETE"]  # one trial per Tune trial, nothing else
    assert [t.user_attrs["tune_trial_id"] for t in study.get_trials()] == ["t0", "t1", "t2", "t3"]
    counts = read_study(tmp_path / "a" / "optuna.db")["ae"]["counts"]
    assert {k: counts[k] for k in ("completed", "pruned", "failed", "running")} == {
        "completed": states.count("COMPLETE"), "pruned": states.count("PRUNED"), "failed": states.count("FAIL"),
        "running": 0}
    origins = [t.user_attrs.get("origin", "sampler") for t in study.get_trials()]
    assert counts["repeats_replaced"] == sum(o.startswith("nearest unseen") for o in origins)
    assert len({repr(sorted(c.items())) for c in ran}) == len(ran)


def toy_small(cfg: dict) -> float:
    return cfg["train.lr"] * 1e3 + cfg["model.latent_dim"] / 1024


def test_repeats_replaced_without_a_failed_trial(tmp_path):
    """TPE repeats in a small space; every repeat is replaced before it becomes a trial, so the study has no FAIL
    or PRUNED trial when none errored or stopped early, and as many trials as Tune ran."""
    space = {"train.lr": (1e-3, 5e-4, 1e-4), "model.latent_dim": (512, 1024, 2048)}
    s = searcher_for(tmp_path, space, num_samples=9)
    configs = [run_trial(s, f"t{i}", toy_small) for i in range(9)]
    assert len({repr(sorted(c.items())) for c in configs}) == 9  # the whole grid, once each
    trials = s.study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 9
    assert read_study(tmp_path / "a" / "optuna.db")["ae"]["counts"]["repeats_replaced"] >= 1


def test_the_study_reads_as_optuna_dashboard_reads_it(tmp_path):
    """optuna-dashboard opens the SQLite file with ``RDBStorage`` and reads studies, trial states and
    intermediate values through the storage API: every trial Tune ran is there with its per-epoch values."""
    space = {**TOY_SPACE, "train.epochs": (3,)}
    s = searcher_for(tmp_path, space, num_samples=4, epochs=3)
    for i in range(4):
        run_trial(s, f"t{i}", toy, epochs=3, stop_at=1 if i == 1 else None)
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'a' / 'optuna.db'}")
    [summary] = storage.get_all_studies()
    assert summary.study_name == "ae" and summary.directions == [optuna.study.StudyDirection.MINIMIZE]
    trials = storage.get_all_trials(storage.get_study_id_from_name("ae"))
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED,
                                         optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.COMPLETE]
    assert [sorted(t.intermediate_values) for t in trials] == [[1, 2, 3], [1], [1, 2, 3], [1, 2, 3]]
    assert trials[1].value == trials[1].intermediate_values[1]  # a pruned trial's value: its last epoch's
    assert all(t.value == t.intermediate_values[3] for t in trials if t.state.name == "COMPLETE")
    assert trials[0].user_attrs["origin"] == "seed recipe"


def test_no_private_attribute_of_ray_or_optuna_is_used():
    """The searcher uses Ray Tune's public ``Searcher`` interface and Optuna's public API: it no longer subclasses
    ``ray.tune.search.optuna.OptunaSearch`` nor reads its private fields, and touches no private attribute of
    another object (``x._name`` with ``x`` other than ``self``)."""
    import inspect
    import re

    from ray.tune.search import Searcher

    from tuneae.search import optuna_search

    source = inspect.getsource(optuna_search)
    assert "self._ot_" not in source and "_completed_trials" not in source
    assert "ray.tune.search.optuna" not in source
    assert re.findall(r"(?<![\w])(?!self\b)\w+\._[a-z]\w*", source) == []
    assert issubclass(PruningOptunaSearch, Searcher)
    assert not any(c.__module__.startswith("ray.tune.search.optuna") for c in PruningOptunaSearch.__mro__)
