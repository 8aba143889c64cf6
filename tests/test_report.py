"""Tests of ``python -m tuneae.report`` on the shared smoke search (``smoke_run``): outputs, metrics checked
independently, classical denoisers, reload reproducibility and clear errors for bad runs."""
from __future__ import annotations

import json
import math
import re
import shutil

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio

from tuneae import report
from tuneae.checkpoint import MODEL_FILE, configs_of, load_checkpoint
from tuneae.classical import METHODS
from tuneae.data import load_splits, to_float
from tuneae.noise import PRIMARY, PROTOCOLS, eval_noisy
from tuneae.report import tables
from tuneae.report.targets import DENOISING_TARGETS_DB, TARGET_MARGIN_DB

from .conftest import best_checkpoint

SMOKE_SIGMAS = ("0.1", "0.2")
"""Noise levels of the smoke report."""


@pytest.fixture(scope="module")
def smoke_report(smoke_run, tmp_path_factory) -> dict:
    """The report of the smoke search (W&B offline, $HOME pointed at an empty folder), made once per module."""
    out = tmp_path_factory.mktemp("report") / "report"
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        mp.delenv("WANDB_API_KEY", raising=False)
        mp.chdir(smoke_run["root"])  # as a user would, from where the search ran (the command is recorded relative)
        # two sigmas (the targets'): BM3D, under both noise protocols, is most of the report's time
        assert report.main([str(smoke_run["results"]), "--out", str(out), "--max-test", "12",
                            "--sigmas", *SMOKE_SIGMAS]) == 0
    return {"out": out, "home": home, "metrics": json.loads((out / "metrics.json").read_text()), **smoke_run}


def _kinds(summary: dict) -> list[str]:
    return [k for k, m in summary["models"].items() if m["best_checkpoint"]]


def test_report_writes_every_file_small_and_finite(smoke_report):
    out, metrics = smoke_report["out"], smoke_report["metrics"]
    for name in ["report.md", "metrics.json", *[f"{t}.csv" for t in tables.CSV_TABLES]]:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    text = (out / "report.md").read_text()
    assert text.index("## Search") < text.index("## Files") == text.rindex("## ")  # Files closes the report
    figures = re.findall(r"\]\(([^)]+\.png)\)", text)
    assert len(figures) >= 5 and all((out / f).is_file() for f in figures), figures
    assert sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) < 5_000_000
    assert not list(out.glob(".*.tmp")) and not (out / "wandb").exists()  # atomic writes; W&B files elsewhere
    assert not any(smoke_report["home"].iterdir()), "W&B wrote under $HOME"
    kinds = _kinds(smoke_report["summary"])
    assert set(kinds) <= set(metrics["models"]) and len(kinds) >= 3
    assert metrics["command"] == smoke_report["summary"]["command"]
    assert metrics["report_command"].startswith("python -m tuneae.report results/smoke --out ../report")
    assert metrics["data"]["test_images"] == len(metrics["data"]["test_indices"]) <= 12
    groups = metrics["data"]["test_groups"]  # the intervals resample scan groups; phantoms: one image each
    assert groups == metrics["data"]["test_images"] if metrics["data"]["synthetic"] else 2 <= groups
    assert f"resample the test images' {groups} scan groups" in text and "Davison" in metrics["data"]["bootstrap"]
    for kind in kinds:
        for q in ("mse", "psnr", "ssim"):
            assert math.isfinite(metrics["models"][kind]["test"][q]["mean"]), (kind, q)
        assert metrics["models"][kind]["test"]["per_class"], kind
        assert f"| {kind} |" in text
    assert set(metrics["denoising"]) == set(PROTOCOLS)
    for p in PROTOCOLS:
        assert set(metrics["denoising"][p]) == set(SMOKE_SIGMAS), p
        for sigma, res in metrics["denoising"][p].items():
            assert set(res) == {"noisy", *kinds, *METHODS}, sigma
            for method, v in res.items():
                for q in ("psnr", "ssim"):
                    assert v[q]["low"] <= v[q]["mean"] <= v[q]["high"], (p, sigma, method, q)
                assert -1 <= v["ssim"]["mean"] <= 1
            assert all(res[k]["tuning"]["factor"] > 0 and res[k]["tuning"]["protocol"] == p for k in METHODS)
            sel = metrics["selection"][p][sigma]  # chosen on validation, whatever test says
            assert sel["best_learned"] == max(kinds, key=sel["val_psnr"].get)
            assert sel["comparator"] == max(METHODS, key=sel["val_psnr"].get)
            diff = metrics["comparisons"][p][sigma][sel["best_learned"]]["psnr"]
            expected = res[sel["best_learned"]]["psnr"]["mean"] - res[sel["comparator"]]["psnr"]["mean"]
            assert diff["mean"] == pytest.approx(expected) and diff["low"] <= diff["mean"] <= diff["high"]
    targets = metrics["targets"]  # checked against the measured tables directly
    assert set(targets["denoising"]) == {"0.1", "0.2"} and "## Targets" in text
    for sigma, d in targets["denoising"].items():
        res, sel = metrics["denoising"][PRIMARY][sigma], metrics["selection"][PRIMARY][sigma]
        assert (d["best_learned"], d["best_classical"]) == (sel["best_learned"], sel["comparator"])
        assert d["psnr"]["mean"] == res[d["best_learned"]]["psnr"]["mean"]
        assert d["target"] == max(DENOISING_TARGETS_DB[float(sigma)],
                                  res[sel["comparator"]]["psnr"]["mean"] + TARGET_MARGIN_DB)
        assert not d["met"] or d["psnr"]["mean"] >= d["target"]  # met needs the target and the interval above 0
        assert d["met"] or d["gap_db"] > 0 or d["status"] == "not met (interval includes 0)"
    bottleneck = {"ae", "vae", "dae"} & set(kinds)
    assert targets["reconstruction"]["best_bottleneck"] == max(bottleneck,
                                                               key=lambda k: metrics["models"][k]["val"]["psnr"])
    pca = metrics["pca"]  # PCA at each bottleneck model's code size, fitted on the training split only
    train = (metrics["data"].get("per_class") or {}).get("train")
    assert set(pca["vs"]) == bottleneck and pca["train_images"] == (sum(train.values()) if train else
                                                                    pca["train_images"]) > 0
    for kind in bottleneck:
        v, k = pca["vs"][kind], metrics["models"][kind]["model_config"]["latent_dim"]
        code = pca["codes"][str(k)]
        assert v["k"] == k and v["pca"] == f"pca-{k}" and kind in code["kinds"] and code["components"] <= k
        assert v["psnr"]["mean"] == pytest.approx(metrics["models"][kind]["test"]["psnr"]["mean"]
                                                  - code["test"]["psnr"]["mean"])
        assert v["psnr"]["low"] <= v["psnr"]["mean"] <= v["psnr"]["high"]
        assert f"| pca-{k} | fit on {pca['train_images']} training images" in text and f"| {kind} - pca-{k} |" in text
    assert targets["reconstruction"]["vs_pca"]["pca"] == pca["vs"][targets["reconstruction"]["best_bottleneck"]]["pca"]
    assert "(PCA at the same code size, fitted on the training images)" in text and "single run" in text
    assert "bm3d" in text and "clipped8" in text and "paired" in text
    assert "Every method per class" in text
    layers = [r for r in metrics["layers"] if r["model"] == "ae"]
    k = metrics["models"]["ae"]["model_config"]["kernel_size"]
    assert [r["receptive_field_px"] for r in layers][:2] == [k, k + 2 * (k - 1)]  # stride-2 k x k convolutions
    size = metrics["data"]["image_size"]  # after the fully-connected bottleneck every unit sees the whole image:
    assert all(r["receptive_field_px"] == size for r in layers if r["layer"].startswith("decoder"))


def test_noisy_psnr_matches_independent_computation(smoke_report):
    metrics = smoke_report["metrics"]
    kind = _kinds(smoke_report["summary"])[0]
    _, payload = load_checkpoint(best_checkpoint(smoke_report, kind))
    data_cfg, _, _ = configs_of(payload)
    clean = to_float(load_splits(data_cfg).test[metrics["data"]["test_indices"]])  # (N, 1, S, S)
    for p in PROTOCOLS:
        for sigma in metrics["noise"]["test_seeds"]:
            noisy = eval_noisy(clean, float(sigma), p, metrics["seed"], "test")
            expected = np.mean([peak_signal_noise_ratio(c[0].double().numpy(), n[0].double().numpy(), data_range=1.0)
                                for c, n in zip(clean, noisy)])
            assert metrics["denoising"][p][sigma]["noisy"]["psnr"]["mean"] == pytest.approx(expected, abs=1e-3)


def test_reload_reproduces_search_metrics(smoke_report):
    summary, metrics = smoke_report["summary"], smoke_report["metrics"]
    for kind in _kinds(summary):
        check = metrics["models"][kind]["reload_check"]
        assert check["reloaded_val_loss"] == pytest.approx(summary["models"][kind]["best_metrics"]["val/loss"],
                                                           rel=1e-4), kind
        assert check["reproduced"], kind


def test_experiment_folder_picks_the_summary_best_trials(smoke_run):
    run = report.find_run(smoke_run["storage"] / "smoke")
    assert not run.is_results
    for kind in _kinds(smoke_run["summary"]):
        assert run.trials[kind].trial_id == smoke_run["summary"]["models"][kind]["best_trial"], kind


def _fails(capsys, run, *words) -> None:
    assert report.main([str(run), "--no-wandb"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and all(w in err for w in words), err
    with pytest.raises(report.ReportError):
        report.make_report(run, use_wandb=False)


def test_bad_runs_give_clear_errors(smoke_run, tmp_path, capsys):
    _fails(capsys, tmp_path / "missing", "does not exist", "missing")
    (tmp_path / "empty").mkdir()
    _fails(capsys, tmp_path / "empty", "neither a results folder")
    (tmp_path / "exp" / "ae").mkdir(parents=True)
    _fails(capsys, tmp_path / "exp", "no finished trial")

    summary = json.loads((smoke_run["results"] / "summary.json").read_text())
    for m in summary["models"].values():
        m.update(best_trial=None, best_checkpoint=None, best_metrics=None)
    (tmp_path / "nobest").mkdir()
    (tmp_path / "nobest" / "summary.json").write_text(json.dumps(summary))
    _fails(capsys, tmp_path / "nobest", "no finished trial", "summary.json")

    kind = _kinds(smoke_run["summary"])[0]
    src = best_checkpoint(smoke_run, kind)
    bad = tmp_path / "runs" / "bad" / "train" / "trial-bad" / "checkpoint_0"
    shutil.copytree(src, bad)
    payload = torch.load(bad / MODEL_FILE, weights_only=True)
    payload["model_config"]["base_channels"] += 1  # the weights no longer fit the config
    torch.save(payload, bad / MODEL_FILE)
    summary["models"] = {kind: {"best_trial": "bad", "best_checkpoint": str(bad), "best_metrics": {"val/loss": 1.0}}}
    (tmp_path / "badckpt").mkdir()
    (tmp_path / "badckpt" / "summary.json").write_text(json.dumps(summary))
    _fails(capsys, tmp_path / "badckpt", "does not match its model config", str(bad), kind)

    changed = json.loads((smoke_run["results"] / "summary.json").read_text())  # the data changed since the search
    changed["experiment_dir"] = str(smoke_run["storage"] / "smoke")
    test_counts = changed["data"]["per_class"]["test"]
    test_counts[next(iter(test_counts))] += 1
    (tmp_path / "changed").mkdir()
    (tmp_path / "changed" / "summary.json").write_text(json.dumps(changed))
    _fails(capsys, tmp_path / "changed", "splits into other images than the search's", "--data")


def test_report_figures_write_nothing_under_home(tmp_path):
    """Matplotlib's font cache and config dir go to the temp dir, not $HOME (a fresh process, fresh $HOME)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "MPLCONFIGDIR"} | {"HOME": str(tmp_path)}
    code = ("import tuneae.report.plots as r, numpy as np, pathlib; "
            "r.plot_bars({'ae': {'test': {'psnr': {'mean': 20.0, 'std': 1.0}, 'ssim': {'mean': 0.5, 'std': 0.1}, "
            "'per_class': {}}}}, "
            f"pathlib.Path({str(tmp_path / 'out' / 'bars.png')!r}))")
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=300)
    assert (tmp_path / "out" / "bars.png").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["out"], "something wrote under $HOME"


def test_report_files_hold_no_absolute_path(smoke_report):
    for name in ("metrics.json", "report.md"):
        text = (smoke_report["out"] / name).read_text()
        assert str(smoke_report["root"]) not in text and str(smoke_report["out"]) not in text, name


def test_run_found_after_its_folders_moved(smoke_run, tmp_path):
    kind = _kinds(smoke_run["summary"])[0]
    both = tmp_path / "both"  # results and experiment folder moved together: the relative paths still hold
    shutil.copytree(smoke_run["results"], both / "results" / "smoke", ignore=shutil.ignore_patterns("report"))
    shutil.copytree(smoke_run["storage"] / "smoke", both / "runs" / "smoke", ignore=shutil.ignore_patterns("wandb"))
    run = report.find_run(both / "results" / "smoke")
    assert run.trials[kind].checkpoint.is_relative_to(both / "runs" / "smoke")
    alone = tmp_path / "alone"  # the results folder alone moved: the experiment folder must be named
    shutil.copytree(smoke_run["results"], alone / "results" / "smoke", ignore=shutil.ignore_patterns("report"))
    with pytest.raises(report.ReportError, match="--experiment"):
        report.find_run(alone / "results" / "smoke")
    run = report.find_run(alone / "results" / "smoke", experiment=both / "runs" / "smoke")
    assert run.trials[kind].checkpoint.is_relative_to(both / "runs" / "smoke") and run.trials[kind].checkpoint.is_dir()
