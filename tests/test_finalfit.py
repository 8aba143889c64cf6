"""Final fit: the best configuration of each kind trained again with several seeds; spread, resume, bad input."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from tuneae import finalfit
from tuneae.checkpoint import save_checkpoint
from tuneae.config import DataConfig, ModelConfig, TrainConfig
from tuneae.layout import RunLayout
from tuneae.models import build_model

MODELS = {"ae": ModelConfig(kind="ae", image_size=32, depth=3, base_channels=4, latent_dim=32,
                            latent_layout="spatial"),
          "dunet": ModelConfig(kind="dunet", image_size=32, depth=2, base_channels=4)}


def _search(tmp_path: Path, name: str = "ff") -> RunLayout:
    """A finished search's results folder: one best checkpoint per kind and a summary.json naming them."""
    layout = RunLayout.for_search(str(tmp_path / "runs"), name, tmp_path / "results")
    data = DataConfig(source="phantom", image_size=32, phantom_count=24, cache_dir=str(tmp_path / "cache"))
    models = {}
    for kind, cfg in MODELS.items():
        ckpt = Path(layout.experiment) / "train" / f"trial-{kind}" / "checkpoint_000000"
        train = TrainConfig(epochs=1, batch_size=8, lr=1e-3, crop_size=16 if kind == "dunet" else 0)
        save_checkpoint(ckpt, build_model(cfg), data, train, 1, {"val/mse": 0.1})
        models[kind] = {"best_trial": kind, "best_checkpoint": layout.relative_checkpoint(str(ckpt)),
                        "best_metrics": {"val/mse": 0.1}}
    summary = {"search": {"name": name, "space": {"ae": {"train.epochs": [1, 2]}}},
               "experiment_dir": layout.recorded_experiment(), "models": models}
    layout.results.mkdir(parents=True)
    (layout.results / "summary.json").write_text(json.dumps(summary))
    # another ae trial (a dense code), a baseline to fit with the same seeds
    ckpt = Path(layout.experiment) / "train" / "trial-base" / "checkpoint_000000"
    save_checkpoint(ckpt, build_model(replace(MODELS["ae"], latent_layout="dense")), data,
                    TrainConfig(epochs=1, batch_size=8, lr=1e-3), 1, {"val/mse": 0.2})
    rows = [(kind, kind, m["best_checkpoint"]) for kind, m in models.items()]
    (layout.results / "trials.csv").write_text("model,trial_id,checkpoint_path\n" + "".join(
        f"{k},{t},{c}\n" for k, t, c in [*rows, ("ae", "base", layout.relative_checkpoint(str(ckpt))),
                                         ("ae", "stopped", "")]))
    return layout


def test_final_fit_gives_spread_over_seeds_and_relative_paths(tmp_path, monkeypatch):
    layout = _search(tmp_path)
    monkeypatch.chdir(tmp_path)  # the recorded command is relative to the working directory
    assert finalfit.main([str(layout.results), "--seeds", "2", "--device", "cpu"]) == 0
    text = (layout.results / finalfit.RESULT_FILE).read_text()
    assert str(tmp_path) not in text  # committed files hold no absolute path
    assert json.loads(text)["command"] == "python -m tuneae.finalfit results/ff --seeds 2 --device cpu"
    kinds = json.loads(text)["kinds"]
    assert kinds["ae"]["train_config"]["epochs"] == 2  # the largest epochs the search allowed ae
    assert kinds["dunet"]["train_config"]["epochs"] == 1  # no space recorded: the trial's own
    for k in kinds.values():
        psnr = [s["metrics"]["val/psnr"] for s in k["seeds"]]
        assert [s["seed"] for s in k["seeds"]] == [1, 2] and psnr[0] != psnr[1]  # not the search's seed 0
        assert k["over_seeds"]["val/psnr"]["n"] == 2 and k["over_seeds"]["val/psnr"]["sd"] > 0
        assert k["over_seeds"]["val/psnr"]["mean"] == pytest.approx(sum(psnr) / 2)
        assert len(k["seeds"][0]["history"]) == k["train_config"]["epochs"]
        ssims = [h["val/ssim"] for s in k["seeds"] for h in s["history"]]  # measured every epoch, every seed
        assert all(-1 <= v <= 1 for v in ssims) and len(set(ssims)) == len(ssims)
        assert k["over_seeds"]["val/ssim"]["n"] == 2
        best = Path(layout.experiment) / k["best_checkpoint"]
        assert (best / "model.pt").is_file() and k["best_checkpoint"].startswith("finalfit/")
    assert "| ae | 2 | 2 |" in (layout.results / finalfit.TABLE_FILE).read_text()


def test_epoch_budget_per_kind_applies_to_the_kind_and_its_baselines(tmp_path):
    layout = _search(tmp_path)
    assert finalfit.parse_epochs(["40", "dunet=20"]) == {None: 40, "dunet": 20}
    _, plans, _ = finalfit.plan(layout.results, epochs={None: 5, "ae": 3}, baselines=["base"])
    assert {p.label: p.train.epochs for p in plans} == {"ae": 3, "dunet": 5, "ae-trial-base": 3}
    _, plans, _ = finalfit.plan(layout.results, epochs={"dunet": 4})
    assert {p.label: p.train.epochs for p in plans} == {"ae": 2, "dunet": 4}  # ae: the search's largest


def _study(layout: RunLayout, trials: dict[str, list[tuple[str, str, float]]]) -> None:
    """The search's Optuna study file: per kind, trials (Tune id, origin, train.lr) in order."""
    import optuna

    from tuneae.run.study import study_storage

    dist = {"train.lr": optuna.distributions.CategoricalDistribution([5e-4, 1e-3])}
    for kind, rows in trials.items():
        study = optuna.create_study(storage=study_storage(layout.study_file), study_name=kind)
        for tid, origin, lr in rows:
            study.add_trial(optuna.trial.create_trial(params={"train.lr": lr}, distributions=dist, value=0.1,
                                                      user_attrs={"tune_trial_id": tid, "origin": origin}))


def test_baseline_recipe_is_each_kinds_default_recipe_trial_unless_it_won(tmp_path, capsys):
    layout = _search(tmp_path)
    with pytest.raises(finalfit.RunError, match="--baseline recipe needs the search's Optuna study"):
        finalfit.plan(layout.results, baselines=["recipe"])
    _study(layout, {"ae": [("base", "seed recipe", 5e-4), ("ae", "sampler", 1e-3)],
                    "dunet": [("dunet", "seed recipe", 5e-4), ("d2", "sampler", 1e-3)]})
    _, plans, _ = finalfit.plan(layout.results, baselines=["recipe"])
    assert [p.label for p in plans] == ["ae", "dunet", "ae-trial-base"]  # dunet's best is its recipe trial
    assert "dunet: no default-recipe baseline: the best trial (dunet) is the one that ran the default recipe" \
        in capsys.readouterr().out
    _, plans, _ = finalfit.plan(layout.results, baselines=["base", "recipe"])  # named twice: fitted once
    assert [p.label for p in plans] == ["ae", "dunet", "ae-trial-base"]
    _, plans, _ = finalfit.plan(layout.results, kinds=["dunet"], baselines=["recipe"])
    assert [p.label for p in plans] == ["dunet"]


def test_baseline_recipe_skips_a_best_trial_that_repeats_the_recipe(tmp_path, capsys):
    layout = _search(tmp_path)
    _study(layout, {"ae": [("base", "seed recipe", 5e-4), ("ae", "sampler", 5e-4)],
                    "dunet": [("dunet", "seed recipe", 5e-4)]})
    _, plans, _ = finalfit.plan(layout.results, baselines=["recipe"])
    assert [p.label for p in plans] == ["ae", "dunet"]
    assert "ae: no default-recipe baseline: the best trial (ae) has the default recipe's configuration (trial base)" \
        in capsys.readouterr().out


def test_interrupted_final_fit_resumes_to_the_same_result(tmp_path, monkeypatch):
    full = _search(tmp_path / "a")
    assert finalfit.main([str(full.results), "--seeds", "1", "--model", "ae", "--device", "cpu"]) == 0
    part = _search(tmp_path / "b")
    assert finalfit.main([str(part.results), "--seeds", "1", "--model", "ae", "--epochs", "1",
                          "--device", "cpu"]) == 0  # stopped after epoch 1 of 2
    assert finalfit.main([str(part.results), "--seeds", "1", "--model", "ae", "--device", "cpu"]) == 0
    a = json.loads((full.results / finalfit.RESULT_FILE).read_text())["kinds"]["ae"]["seeds"][0]
    b = json.loads((part.results / finalfit.RESULT_FILE).read_text())["kinds"]["ae"]["seeds"][0]
    assert [h["epoch"] for h in b["history"]] == [1, 2] and b["trained_epochs_now"] == 1  # only the missing one
    assert b["metrics"]["val/mse"] == pytest.approx(a["metrics"]["val/mse"], rel=1e-5)
    monkeypatch.setattr(finalfit, "fit", lambda *a, **k: pytest.fail("a finished seed must not train again"))
    assert finalfit.main([str(part.results), "--seeds", "1", "--model", "ae", "--device", "cpu"]) == 0


def test_a_call_for_some_kinds_keeps_the_other_kinds_fitted_before(tmp_path, capsys, monkeypatch):
    layout = _search(tmp_path)
    out = layout.results / finalfit.RESULT_FILE
    assert finalfit.main([str(layout.results), "--seeds", "1", "--model", "ae", "--device", "cpu"]) == 0
    ae = json.loads(out.read_text())["kinds"]["ae"]
    assert finalfit.main([str(layout.results), "--seeds", "1", "--model", "dunet", "--device", "cpu"]) == 0
    record = json.loads(out.read_text())
    assert record["kinds"]["ae"] == ae and set(record["kinds"]) == {"ae", "dunet"}
    assert ae["command"].endswith("--model ae --device cpu")
    assert record["kinds"]["dunet"]["command"].endswith("--model dunet --device cpu")
    assert [c.split("--model ")[1] for c in record["commands"]] == ["ae --device cpu", "dunet --device cpu"]
    assert "| ae | 1 |" in (layout.results / finalfit.TABLE_FILE).read_text()
    # a refit that fails drops the kind's old entry (its seed folders may have changed), keeps the others
    monkeypatch.setattr(finalfit, "fit", lambda *a, **k: (_ for _ in ()).throw(FloatingPointError("nan")))
    assert finalfit.main([str(layout.results), "--seeds", "1", "--model", "ae", "--epochs", "3",
                          "--device", "cpu"]) == 1
    assert set(json.loads(out.read_text())["kinds"]) == {"dunet"}
    # a record that is not a final fit's is refused before training, and left as it is
    monkeypatch.setattr(finalfit, "fit", lambda *a, **k: pytest.fail("nothing may train on a bad record"))
    for bad in ("{not json", '["a list"]', json.dumps({"search": "other", "kinds": {}}),
                json.dumps({"search": "ff", "kinds": {"ae": {"kind": "ae"}}})):
        out.write_text(bad)
        assert finalfit.main([str(layout.results), "--seeds", "2", "--model", "ae", "--device", "cpu"]) == 2
        assert str(out) in capsys.readouterr().err and out.read_text() == bad


def test_a_budget_below_the_epochs_already_trained_is_refused(tmp_path, capsys):
    layout = _search(tmp_path)
    assert finalfit.main([str(layout.results), "--seeds", "1", "--model", "ae", "--device", "cpu"]) == 0  # 2 epochs
    assert finalfit.main([str(layout.results), "--seeds", "1", "--model", "ae", "--epochs", "1",
                          "--device", "cpu"]) == 2
    assert "holds 2 trained epochs, more than the budget of 1" in capsys.readouterr().err


def test_bad_input_exits_2_before_training(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(finalfit, "fit", lambda *a, **k: pytest.fail("nothing may train on bad input"))
    assert finalfit.main([str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    layout = _search(tmp_path)
    assert finalfit.main([str(layout.results), "--seeds", "0"]) == 2
    for bad in (["0"], ["x"], ["ae=0"], ["=3"], ["3", "4"], ["ae=2", "ae=3"]):
        assert finalfit.main([str(layout.results), "--epochs", *bad]) == 2
        assert "--epochs" in capsys.readouterr().err
    assert finalfit.main([str(layout.results), "--epochs", "vae=3"]) == 2
    assert "--epochs: no best trial for ['vae']" in capsys.readouterr().err
    assert finalfit.main([str(layout.results), "--model", "vae"]) == 2
    assert "no best trial for ['vae']" in capsys.readouterr().err
    assert finalfit.main([str(layout.results), "--baseline", "nope"]) == 2
    assert "--baseline nope: no such trial" in capsys.readouterr().err
    assert finalfit.main([str(layout.results), "--baseline", "stopped"]) == 2
    assert "--baseline stopped: the trial has no checkpoint" in capsys.readouterr().err


def test_a_seed_folder_of_another_config_is_refused(tmp_path, capsys):
    layout = _search(tmp_path)
    other = layout.finalfit_seed("dunet", 1)
    save_checkpoint(other, build_model(MODELS["dunet"]), DataConfig(source="phantom", image_size=32),
                    TrainConfig(lr=0.5), 1, {})
    assert finalfit.main([str(layout.results), "--seeds", "1", "--model", "dunet", "--device", "cpu"]) == 2
    assert "another configuration" in capsys.readouterr().err


def test_the_report_refuses_a_final_fit_that_lacks_a_kind_or_fitted_another_trial(tmp_path, monkeypatch):
    from tuneae import report
    from tuneae.run import find_run

    layout = _search(tmp_path)
    assert finalfit.main([str(layout.results), "--seeds", "1", "--model", "ae", "--device", "cpu"]) == 0
    monkeypatch.setattr(report.make, "load_model", lambda *a: pytest.fail("nothing may load before the check"))
    with pytest.raises(finalfit.RunError, match=r"no final fit of \['dunet'\] \(fitted: \['ae'\]\).*"
                                                r"python -m tuneae\.finalfit .* --model dunet"):
        report.make_report(layout.results, max_test=4, sigmas=(0.1,), use_wandb=False)
    assert find_run(layout.results).trials["ae"].trial_id.startswith("final fit seed")  # others take what exists
    summary = json.loads((layout.results / "summary.json").read_text())
    summary["models"]["ae"]["best_trial"] = "resumed"  # the search's best changed after the fit
    summary["models"]["dunet"]["best_checkpoint"] = None
    (layout.results / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(finalfit.RunError, match="ae was fitted from trial ae, the search's best is now resumed"):
        report.make_report(layout.results, max_test=4, sigmas=(0.1,), use_wandb=False)


def test_the_report_refuses_a_seed_checkpoint_that_is_not_the_recorded_one(tmp_path):
    from tuneae import report

    layout = _search(tmp_path)
    assert finalfit.main([str(layout.results), "--seeds", "2", "--device", "cpu"]) == 0
    other = 3 - json.loads(layout.finalfit_file.read_text())["kinds"]["ae"]["best_seed"]  # only its seed row reads it
    data = DataConfig(source="phantom", image_size=32, phantom_count=24, cache_dir=str(tmp_path / "cache"))
    save_checkpoint(layout.finalfit_seed("ae", other), build_model(MODELS["ae"]), data,
                    TrainConfig(epochs=2, batch_size=8, lr=1e-3), 1, {"val/mse": 0.3})  # a refit cut at epoch 1
    with pytest.raises(finalfit.RunError, match=f"ae final fit, seed {other}: the checkpoint .* holds epoch 1 "
                                                r"\(val/mse 0.3\), finalfit.json records epoch 2"):
        report.make_report(layout.results, max_test=4, sigmas=(0.1,), use_wandb=False)


def test_a_reloaded_split_must_hold_the_searchs_test_images(tmp_path):
    import csv

    from tuneae.data import write_manifest
    from tuneae.run import find_run
    from tuneae.run.reload import load_data, load_model

    layout = _search(tmp_path)
    run = find_run(layout.results, final_fit=False)
    models = {k: load_model(t) for k, t in run.trials.items()}
    splits = load_data(models, run)  # no manifest.csv: the per-class counts only
    write_manifest(splits, layout.manifest_file)
    assert load_data(models, run).test.shape == splits.test.shape  # the same test images by content
    rows = list(csv.DictReader(layout.manifest_file.open()))
    test = next(r for r in rows if r["split"] == "test")
    test["sha256"] = "0" * 64  # the search held out another image than the data gives now
    with layout.manifest_file.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with pytest.raises(finalfit.RunError, match=r"now puts other images in the test split .*1 of its test images "
                                                r"are missing, 1 others are in"):
        load_data(models, run)


def test_report_reloads_the_best_seed_and_gives_the_spread_over_seeds(tmp_path):
    from tuneae import report

    layout = _search(tmp_path)
    assert finalfit.main([str(layout.results), "--seeds", "2", "--device", "cpu", "--baseline", "base"]) == 0
    ff = json.loads(layout.finalfit_file.read_text())
    fitted = ff["kinds"]
    assert list(ff["baselines"]) == ["ae-trial-base"] and ff["baselines"]["ae-trial-base"]["kind"] == "ae"
    assert [s["seed"] for s in ff["baselines"]["ae-trial-base"]["seeds"]] == [1, 2]  # the same seeds as ae's best
    m = report.make_report(layout.results, max_test=4, sigmas=(0.1,), use_wandb=False)
    base, best = m["finalfit"]["ae-trial-base"], m["finalfit"]["ae"]
    per_seed = [b["test"]["psnr"] - a["test"]["psnr"] for a, b in zip(base["seeds"], best["seeds"])]
    assert base["vs_best"]["per_seed"] == pytest.approx(per_seed)
    assert base["vs_best"]["seed_mean"]["mean"] == pytest.approx(sum(per_seed) / 2)  # mean over images and seeds
    assert base["vs_best"]["seed_mean"]["low"] <= base["vs_best"]["seed_mean"]["mean"]
    assert "ae-trial-base" not in m["models"]  # a baseline is compared, never reported as the kind's model
    for kind, k in fitted.items():
        seeds = m["finalfit"][kind]
        best = next(s for s in k["seeds"] if s["seed"] == k["best_seed"])
        assert m["models"][kind]["checkpoint"] == best["checkpoint"]  # the report's model is the best seed
        assert m["models"][kind]["trial"].startswith(f"final fit seed {k['best_seed']}")
        assert m["models"][kind]["reload_check"]["reproduced"], m["models"][kind]["reload_check"]
        row = next(r for r in seeds["seeds"] if r["seed"] == k["best_seed"])
        assert row["test"]["psnr"] == pytest.approx(m["models"][kind]["test"]["psnr"]["mean"], abs=1e-6)
        psnr = [r["test"]["psnr"] for r in seeds["seeds"]]
        assert seeds["over_seeds"]["test_psnr"]["n"] == 2 and psnr[0] != psnr[1]
        assert seeds["over_seeds"]["test_psnr"]["mean"] == pytest.approx(sum(psnr) / 2)
        assert set(seeds["over_seeds"]) >= {"val_psnr", "test_ssim", "denoising_0.1"}
    sel = m["selection"]["awgn"]["0.1"]  # the chosen denoiser's seed mean, paired over images with each method
    paired = m["finalfit"][sel["best_learned"]]["seed_mean_paired"]["0.1"]
    assert sel["comparator"] in paired and "bm3d" in paired
    rows = m["finalfit"][sel["best_learned"]]["seeds"]
    for name, d in paired.items():  # the mean over images of the seed mean equals the mean of the seeds' means
        ref = m["denoising"]["awgn"]["0.1"][name]["psnr"]["mean"]
        assert d["mean"] == pytest.approx(sum(r["denoising"]["0.1"] for r in rows) / len(rows) - ref, abs=1e-6)
    r = m["targets"]["reconstruction"]  # the headline is the mean over the two seeds, the best seed beside it
    assert r["best_bottleneck"] == "ae" and r["headline"]["basis"] == "seed mean" and r["headline"]["n_seeds"] == 2
    assert r["headline"]["psnr"]["mean"] == pytest.approx(m["finalfit"]["ae"]["over_seeds"]["test_psnr"]["mean"])
    assert r["psnr"]["mean"] == m["models"]["ae"]["test"]["psnr"]["mean"]
    pca = m["pca"]["vs"]["ae"]  # PCA at ae's code size, each seed against it
    assert pca["over_seeds"]["psnr"]["per_seed"] == pytest.approx(
        [s["test"]["psnr"] - m["pca"]["codes"]["32"]["test"]["psnr"]["mean"] for s in m["finalfit"]["ae"]["seeds"]])
    assert r["vs_pca"]["basis"] == "seed mean" and r["vs_pca"]["headline"] == pca["over_seeds"]["psnr"]
    text = (layout.report_dir / "report.md").read_text()
    assert "## Final fit: spread over training seeds" in text and "| ae | 2 | 2 |" in text
    assert "ae, mean of 2 seeds:" in text and "| pca-32 |" in text
    assert "ae's best configuration minus ae-trial-base (trial base)" in text
    curves = m["learning_curves"]  # every fitted configuration's validation curve, per seed, in the report
    assert set(curves) == {*fitted, "ae-trial-base"} and curves["ae"]["epochs"] == [1, 2]
    assert curves["ae"]["val_psnr"]["1"][-1] == pytest.approx(fitted["ae"]["seeds"][0]["metrics"]["val/psnr"])
    assert (layout.report_dir / "learning_curves.png").is_file() and "(learning_curves.png)" in text
