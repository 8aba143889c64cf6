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
from tuneae.data import add_gaussian_noise, load_splits, to_float
from tuneae.report import classical, make, tables
from tuneae.report.targets import DENOISING_TARGETS_DB, check_targets, targets_markdown

from .conftest import best_checkpoint


@pytest.fixture(scope="module")
def smoke_report(smoke_run, tmp_path_factory) -> dict:
    """The report of the smoke search (W&B offline, $HOME pointed at an empty folder), made once per module."""
    out = tmp_path_factory.mktemp("report") / "report"
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        mp.delenv("WANDB_API_KEY", raising=False)
        assert report.main([str(smoke_run["results"]), "--out", str(out), "--max-test", "12"]) == 0
    return {"out": out, "home": home, "metrics": json.loads((out / "metrics.json").read_text()), **smoke_run}


def _kinds(summary: dict) -> list[str]:
    return [k for k, m in summary["models"].items() if m["best_checkpoint"]]


def test_report_writes_every_file_small_and_finite(smoke_report):
    out, metrics = smoke_report["out"], smoke_report["metrics"]
    for name in ["report.md", "metrics.json", *[f"{t}.csv" for t in tables.CSV_TABLES]]:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    text = (out / "report.md").read_text()
    figures = re.findall(r"\]\(([^)]+\.png)\)", text)
    assert len(figures) >= 5 and all((out / f).is_file() for f in figures), figures
    assert sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) < 5_000_000
    assert not list(out.glob(".*.tmp")) and not (out / "wandb").exists()  # atomic writes; W&B files elsewhere
    assert not any(smoke_report["home"].iterdir()), "W&B wrote under $HOME"
    kinds = _kinds(smoke_report["summary"])
    assert set(kinds) <= set(metrics["models"]) and len(kinds) >= 3
    assert metrics["command"] == smoke_report["summary"]["command"]
    assert metrics["data"]["test_images"] == len(metrics["data"]["test_indices"]) <= 12
    for kind in kinds:
        for q in ("mse", "psnr", "ssim"):
            assert math.isfinite(metrics["models"][kind]["test"][q]["mean"]), (kind, q)
        assert metrics["models"][kind]["test"]["per_class"], kind
        assert f"| {kind} |" in text
    assert set(metrics["denoising"]) == {f"{s:g}" for s in make.SIGMAS}
    for sigma, res in metrics["denoising"].items():
        assert set(res) == {"noisy", *kinds, *classical.CLASSICAL_GRIDS}, sigma
        for method, v in res.items():
            assert math.isfinite(v["psnr"]["mean"]) and math.isfinite(v["ssim"]["mean"]), (sigma, method)
            assert -1 <= v["ssim"]["mean"] <= 1
    targets = metrics["targets"]  # checked against the measured tables directly
    assert set(targets["denoising"]) == {"0.1", "0.2"} and "## Targets" in text
    for sigma, d in targets["denoising"].items():
        res = metrics["denoising"][sigma]
        best_classical = max(res[m]["psnr"]["mean"] for m in classical.CLASSICAL_GRIDS)
        assert d["psnr"] == max(res[k]["psnr"]["mean"] for k in kinds)
        assert d["target"] == max(DENOISING_TARGETS_DB[float(sigma)], best_classical + 2.0)
        assert d["met"] == (d["psnr"] >= d["target"])
    assert targets["reconstruction"]["best_bottleneck"] in {"ae", "vae", "dae"} & set(kinds)
    assert "Every method per class" in text
    layers = [r for r in metrics["layers"] if r["model"] == "ae"]
    k = metrics["models"]["ae"]["model_config"]["kernel_size"]
    assert [r["receptive_field_px"] for r in layers][:2] == [k, k + 2 * (k - 1)]  # stride-2 k x k convolutions
    size = metrics["data"]["image_size"]  # after the fully-connected bottleneck every unit sees the whole image:
    assert all(r["receptive_field_px"] == size for r in layers if r["layer"].startswith("decoder"))


def _target_metrics(learned_psnr: float, classical_psnr: float, gaps: dict[str, float]) -> dict:
    """A minimal report ``metrics`` dict at sigma 0.1: one learned model (dunet), the classical methods (the first
    best), per-class ``learned_minus_classical`` gaps (dB, 10 images each), and three bottleneck models: ae close to
    the reconstruction target, dae meeting it with a lower PSNR, vae above it but with a latent too large to count."""
    res = {"noisy": {"psnr": {"mean": 20.0}}, "dunet": {"psnr": {"mean": learned_psnr}},
           **{m: {"psnr": {"mean": classical_psnr - i}} for i, m in enumerate(classical.CLASSICAL_GRIDS)}}
    by = {c: {"n": 10, "learned_minus_classical": g} for c, g in gaps.items()}

    def model(latent, psnr, ssim):
        return {"model_config": {"latent_dim": latent}, "test": {"psnr": {"mean": psnr}, "ssim": {"mean": ssim}}}

    models = {"dunet": model(0, 40.0, 0.9), "ae": model(1024, 26.5, 0.74), "dae": model(2048, 26.1, 0.76),
              "vae": model(4096, 30.0, 0.8)}
    return {"models": models, "denoising": {"0.1": res}, "denoising_classes": {"0.1": by}}


def test_targets_rise_with_the_classical_methods_and_compare_classes():
    t = check_targets(_target_metrics(28.4, 26.0, {"glioma": 1.0, "pituitary": 2.0, "no_tumor": 1.6}))
    d = t["denoising"]["0.1"]
    assert d["target"] == 28.3 and d["met"] and d["best_classical"] == next(iter(classical.CLASSICAL_GRIDS))
    assert d["tumour_minus_classical_db"] == pytest.approx(1.5) and d["tumour_classes_no_worse"] is False
    assert "0.2" not in t["denoising"]  # not measured, not judged
    t2 = check_targets(_target_metrics(28.4, 27.0, {"glioma": 2.0, "no_tumor": 1.5}))
    assert t2["denoising"]["0.1"]["target"] == pytest.approx(29.0) and not t2["denoising"]["0.1"]["met"]
    assert t2["denoising"]["0.1"]["tumour_classes_no_worse"] is True
    r = t["reconstruction"]  # ae has the higher PSNR but misses SSIM; dae meets both; vae's latent is too large
    assert r["best_bottleneck"] == "dae" and r["met"] and r["psnr"] == 26.1
    partial = _target_metrics(28.4, 26.0, {"glioma": 1.0})
    del partial["models"]["dae"], partial["denoising_classes"]
    t3 = check_targets(partial)
    assert t3["denoising"]["0.1"]["tumour_classes_no_worse"] is None  # no class data: no verdict, no crash
    assert t3["reconstruction"]["best_bottleneck"] == "ae" and not t3["reconstruction"]["met"]
    md = "\n".join(targets_markdown(t))
    assert "## Targets" in md and "**met**" in md and "no_tumor" in md


def test_noisy_psnr_matches_independent_computation(smoke_report):
    metrics = smoke_report["metrics"]
    kind = _kinds(smoke_report["summary"])[0]
    _, payload = load_checkpoint(best_checkpoint(smoke_report, kind))
    data_cfg, _, _ = configs_of(payload)
    clean = to_float(load_splits(data_cfg).test[metrics["data"]["test_indices"]])  # (N, 1, S, S)
    for sigma, seed in metrics["noise"]["test_seeds"].items():
        noisy = add_gaussian_noise(clean, float(sigma), generator=torch.Generator().manual_seed(seed))
        expected = np.mean([peak_signal_noise_ratio(c[0].double().numpy(), n[0].double().numpy(), data_range=1.0)
                            for c, n in zip(clean, noisy)])
        assert metrics["denoising"][sigma]["noisy"]["psnr"]["mean"] == pytest.approx(expected, abs=1e-3), sigma


def _smooth(size: int, phase: float) -> np.ndarray:
    yy, xx = np.mgrid[0:1:size * 1j, 0:1:size * 1j]
    return 0.5 + 0.3 * np.sin(2 * np.pi * xx + phase) * np.cos(3 * np.pi * yy - phase)  # (S, S) in [0.2, 0.8]


@pytest.mark.parametrize("method", list(classical.CLASSICAL_GRIDS))
def test_classical_denoiser_raises_psnr(method):
    rng = np.random.default_rng(0)
    sigma = 0.2
    tune_clean, clean = _smooth(48, 0.3)[None], _smooth(64, 1.1)
    tune_noisy = np.clip(tune_clean + sigma * rng.standard_normal(tune_clean.shape), 0, 1)
    param, scores = classical.tune_classical(method, tune_clean, tune_noisy, sigma)
    assert param in classical.CLASSICAL_GRIDS[method] and len(scores) == len(classical.CLASSICAL_GRIDS[method])
    noisy = np.clip(clean + sigma * rng.standard_normal(clean.shape), 0, 1)
    out = classical.classical_denoise(method, noisy, sigma, param)
    assert out.shape == clean.shape and 0 <= out.min() and out.max() <= 1
    gain = peak_signal_noise_ratio(clean, out, data_range=1) - peak_signal_noise_ratio(clean, noisy, data_range=1)
    assert gain > 3.0, f"{method} {param}: {gain:.2f} dB"


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
