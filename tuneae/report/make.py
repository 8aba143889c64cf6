"""``make_report`` (the wiring of the report's parts) and ``main`` of ``python -m tuneae.report``."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from tuneae import tracking
from tuneae.classical import METHODS
from tuneae.data import Splits, to_float
from tuneae.files import atomic_write, atomic_write_csv
from tuneae.layout import portable, portable_command, user_path
from tuneae.metrics import SSIM_SETTINGS
from tuneae.models import VAE
from tuneae.noise import PRIMARY, PROTOCOLS, check_sigma, eval_seed
from tuneae.report.curves import learning_curves, plot_learning_curves
from tuneae.report.denoising import class_gaps, comparisons, references, run_sigma, selection
from tuneae.report.layers import layer_table
from tuneae.report.markdown import report_markdown
from tuneae.report.metrics import image_metrics, predict, spread, summarise
from tuneae.report.pca import pca_baselines
from tuneae.report.plots import (
    plot_bars,
    plot_denoising_curves,
    plot_denoising_example,
    plot_layers,
    plot_reconstructions,
    plot_vae,
)
from tuneae.report.search_plots import search_report
from tuneae.report.seeds import seed_metrics, seeds_vs_comparator
from tuneae.report.tables import csv_tables
from tuneae.report.targets import check_targets, target_gaps
from tuneae.report.versus import REFERENCES
from tuneae.run import RunError, find_run
from tuneae.run.find import Run
from tuneae.run.reload import load_data, load_model, reload_check

SIGMAS = (0.05, 0.1, 0.2, 0.3)
"""Default noise levels: standard deviation of the Gaussian noise on the [0, 1] scale (both protocols)."""
TUNE_IMAGES = 24
"""Validation images (spread over the classes) that tune each classical denoiser (``Method.tune_images`` of them)
and on which every method's mean PSNR chooses the best model and the classical comparator, per protocol and sigma;
test images never choose anything."""
CURVES_PNG = "learning_curves.png"
"""The final fit's learning curves (:mod:`tuneae.report.curves`)."""
MAX_REPORT_BYTES = 5_000_000
"""Warn above this total size of the report folder."""
BOOTSTRAP = ("cluster bootstrap over the test images' scan groups (each image's split unit: its scan group joined "
             "with its copies; an image alone where no scan is known): whole groups resampled with replacement, "
             "95% percentile interval (Davison & Hinkley 1997, section 3.8; Field & Welsh 2007)")
"""How ``metrics.json`` names the resampling behind every interval over test images."""


@dataclass(frozen=True)
class Images:
    """The images a report measures on, chosen once."""

    classes: tuple[str, ...]
    """Class names; ``labels`` index them."""
    test_idx: np.ndarray
    """Indices into the test split of the images used, (N,)."""
    clean: torch.Tensor
    """The test images (N, 1, S, S) in [0, 1]."""
    labels: np.ndarray
    """Their class indices, (N,)."""
    val_clean: torch.Tensor
    """Validation images (K, 1, S, S) in [0, 1]: they tune the classical denoisers and choose the best models."""
    shown: list[int]
    """Indices into ``clean`` of the images drawn in the figures (one or two per class)."""
    groups: np.ndarray
    """The scan group of each test image, (N,) int64 (:meth:`tuneae.data.Splits.groups`): every interval over test
    images resamples whole groups (the cluster bootstrap, :func:`tuneae.metrics.mean_interval`)."""

    @property
    def clean_np(self) -> np.ndarray:
        """``clean`` as (N, S, S) numpy."""
        return self.clean[:, 0].numpy()

    def title(self, i: int) -> str:
        """The figure title of test image ``i``."""
        return f"test: {self.classes[self.labels[i]]}"


def choose_images(splits: Splits, max_test: int | None) -> Images:
    """At most ``max_test`` test images and ``TUNE_IMAGES`` validation images, spread evenly over the classes."""
    test_idx, tune_idx = spread(len(splits.test), max_test), spread(len(splits.val), TUNE_IMAGES)
    labels = splits.test_labels[test_idx]
    per_class = 2 if len(splits.classes) <= 2 else 1
    shown = [int(i) for c in range(len(splits.classes)) for i in np.flatnonzero(labels == c)[:per_class]]
    return Images(tuple(splits.classes), test_idx, to_float(splits.test[test_idx]), labels,
                  to_float(splits.val[tune_idx]), shown, splits.groups("test")[test_idx])


def _reconstruction(run: Run, models: dict, splits: Splits, im: Images, m: dict, figures: dict, out: Path,
                    bar) -> dict[str, dict[str, np.ndarray]]:
    """Each model on the clean test images, with its reload check and its mean PSNR / SSIM on the clean validation
    subset (``val``, which chooses the best bottleneck model); fills ``m["models"]`` and two figures. Returns
    kind -> its per-image test metrics (``image_metrics``: mse, psnr in dB, ssim; (N,) each)."""
    recon, per_image = {}, {}  # kind -> (N, S, S): the clean test images reconstructed; kind -> per-image metrics
    for kind, (model, payload) in models.items():
        bar.set_postfix_str(f"{kind}: test, reload check")
        recon[kind] = predict(model, im.clean)[:, 0].numpy()
        per_image[kind] = image_metrics(recon[kind], im.clean_np)
        trial = run.trials[kind]
        m["models"][kind] = {
            "trial": trial.trial_id, "checkpoint": run.layout.relative_checkpoint(str(trial.checkpoint)),
            "epoch": payload["epoch"],
            "model_config": payload["model_config"], "train_config": payload.get("train_config"),
            "reload_check": reload_check(model, payload, splits.val,
                                         trial.reported.get("val/loss", payload["metrics"].get("val/loss"))),
            "val": {q: float(v.mean()) for q, v in image_metrics(predict(model, im.val_clean)[:, 0].numpy(),
                                                                  im.val_clean[:, 0].numpy()).items()},
            "test": summarise(per_image[kind], im.labels, im.classes, im.groups)}
        bar.update(2)
    figures["bars"] = plot_bars(m["models"], out / "reconstruction_bars.png")
    figures["grid"] = plot_reconstructions(im.clean_np[im.shown], {k: r[im.shown] for k, r in recon.items()},
                                           [im.title(i) for i in im.shown], out / "reconstruction_grid.png")
    return per_image


def _denoising(models: dict, im: Images, sigmas: tuple[float, ...], seed: int, workers: int, m: dict,
               figures: dict, out: Path, bar) -> dict[str, dict[str, np.ndarray]]:
    """Every denoiser at every protocol and sigma; fills ``m``'s ``denoising``, ``selection``, ``comparisons`` and
    ``denoising_classes`` (each ``[protocol][sigma]``), ``reference_comparisons`` (the primary protocol's, each
    learned model against the margin targets' references, :data:`tuneae.report.versus.REFERENCES`) and the primary
    protocol's figures. Returns sigma key -> classical method -> its per-image test PSNR under the primary protocol
    (dB, (N,)), for the final fit's seed-mean comparisons."""
    classical: dict[str, dict[str, np.ndarray]] = {}
    kinds, first, methods = list(models), im.shown[0], [*models, *METHODS]
    for protocol in PROTOCOLS:
        for section in ("denoising", "selection", "comparisons", "denoising_classes"):
            m[section][protocol] = {}
        for s in sigmas:
            key = f"{s:g}"
            bar.set_postfix_str(f"{protocol}, sigma {key}")
            r = run_sigma(models, im.clean, im.val_clean, s, protocol, seed, first, workers, bar)
            m["denoising"][protocol][key] = {
                name: {**summarise(v, im.labels, im.classes, im.groups),
                       **({"tuning": r.tuned[name].as_dict()} if name in r.tuned else {})}
                for name, v in r.test.items()}
            sel = m["selection"][protocol][key] = selection(r, kinds)
            m["comparisons"][protocol][key] = comparisons(r, kinds, sel["comparator"], im.groups)
            m["denoising_classes"][protocol][key] = class_gaps(r, im.labels, im.classes, methods, sel, im.groups)
            if protocol == PRIMARY:
                classical[key] = {name: r.test[name]["psnr"] for name in METHODS if name in r.test}
                m["reference_comparisons"].setdefault(protocol, {})[key] = references(r, kinds, REFERENCES,
                                                                                      im.groups)
                figures[f"denoise_{key}"] = plot_denoising_example(im.clean_np[first], r.example, s, im.title(first),
                                                                   out / f"denoising_sigma{key}.png")
    figures["curves"] = plot_denoising_curves(m["denoising"][PRIMARY], kinds, out / "denoising_curves.png")
    return classical


def _layers(models: dict, im: Images, seed: int, figures: dict, out: Path, bar) -> list[dict]:
    """Every model's layer table and feature-map figure, and the VAE's samples; returns the layer rows."""
    layers = []
    x0 = im.clean[im.shown[0]:im.shown[0] + 1]  # (1, 1, S, S)
    for kind, (model, _) in models.items():
        bar.set_postfix_str(f"{kind}: layers")
        rows, inter = layer_table(kind, model, x0)
        figures[f"layers_{kind}"] = plot_layers(inter, rows, out / f"layers_{kind}.png")
        layers += rows
        bar.update()
    vae = next((mod for mod, _ in models.values() if isinstance(mod, VAE)), None)
    if vae is not None:
        shown = im.shown
        a, b = shown[0], (shown[-1] if shown[-1] != shown[0] else (shown[0] + 1) % len(im.clean))
        figures["vae"] = plot_vae(vae, im.clean[a:a + 1], im.clean[b:b + 1], (im.title(a), im.title(b)), seed,
                                  out / "vae_samples_interpolation.png")
    return layers


def _write(m: dict, figures: dict[str, str], layers: list[dict], out: Path,
           search_md: list[str]) -> tuple[dict[str, list[dict]], int]:
    """Write the CSV tables, metrics.json and report.md (the search section before the files); remove stale
    figures (from an earlier report here). Returns (tables, folder bytes)."""
    tables = csv_tables(m, layers)
    for name, rows in tables.items():
        atomic_write_csv(out / f"{name}.csv", rows)
    atomic_write(out / "metrics.json", json.dumps(m, indent=1, default=str) + "\n")
    atomic_write(out / "report.md", report_markdown(m, figures, tables["denoising_classes"], layers, search_md)
                 + "\n")
    for stale in [*out.glob("layers_*.png"), *out.glob("denoising_sigma*.png"), *out.glob("search_*.png"),
                  *out.glob(CURVES_PNG)]:
        if stale.name not in figures.values():
            stale.unlink()
    total = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    if total > MAX_REPORT_BYTES:
        warnings.warn(f"report folder {out} holds {total / 1e6:.1f} MB (> 5 MB)", stacklevel=3)
    return tables, total


def _log(run: Run, m: dict, figures: dict[str, str], tables: dict[str, list[dict]], out: Path) -> None:
    """Log the report to W&B in the search's project and mode, files beside the search's own W&B runs."""
    search = run.summary.search if run.summary else {}
    tracking.log_report(run.layout.wandb_dir, m, {k: out / v for k, v in figures.items()}, tables,
                        project=search.get("wandb_project") or tracking.DEFAULT_PROJECT,
                        mode=search.get("wandb_mode") or None)


def make_report(run_path: str | os.PathLike, out: str | os.PathLike | None = None, data: str | None = None,
                max_test: int | None = None, sigmas: tuple[float, ...] = SIGMAS, seed: int = 0,
                use_wandb: bool = True, experiment: str | os.PathLike | None = None,
                workers: int = 1, command: str | None = None) -> dict[str, Any]:
    """Write the report of a finished search (see :mod:`tuneae.report` for what and where).

    Args:
        run_path: a results folder ``results/<name>`` or an experiment folder ``<storage_path>/<name>``.
        out: output folder (default ``RUN/report``, or ``results/<name>/report`` for an experiment folder).
        data: data source overriding the one stored in the checkpoints (a hub id, a folder, ``phantom``).
        max_test: use at most this many test images, spread evenly over the classes (None: all).
        sigmas: noise standard deviations on the [0, 1] scale, each in (0, 1].
        seed: seed of the noise and of the VAE samples.
        use_wandb: also log figures and tables to W&B, in the search's ``--wandb-project`` and ``--wandb-mode``
            (failures only warn).
        experiment: the experiment folder of a results folder when it moved since the search (default: the place
            ``summary.json`` records).
        workers: processes for the classical denoisers (BM3D: about 0.7 s per 128 px image on one core).
        command: the command line that made this report, as recorded (``main`` passes its own).
    Returns:
        The contents of ``metrics.json``.
    Raises:
        RunError: a missing or unfinished run, a checkpoint that does not match its config, data that cannot be
            loaded or does not fit the models, or a bad setting.
    """
    started = time.time()
    try:
        if not sigmas:
            raise ValueError("sigmas: need one or more noise levels")
        for s in sigmas:
            check_sigma(s, "sigma")
    except ValueError as exc:
        raise RunError(f"{exc} (sigmas {list(sigmas)})") from exc
    if max_test is not None and max_test < 2:
        raise RunError(f"max_test={max_test}: must be at least 2 (an interval over images needs two)")
    if workers < 1:
        raise RunError(f"workers={workers}: must be at least 1")
    run = find_run(run_path, experiment, complete=True)  # every kind from the final fit, or none
    out = Path(out) if out else run.layout.report_dir
    models = {kind: load_model(t) for kind, t in run.trials.items()}  # kind -> (model, payload)
    splits = load_data(models, run, data)
    im = choose_images(splits, max_test)
    m = _header(run, splits, im, sigmas, seed, out)
    m["report_command"] = command
    figures: dict[str, str] = {}
    steps = len(models) * 3 + (len(models) + len(METHODS)) * len(sigmas) * len(PROTOCOLS)
    with tqdm(total=steps, desc="report", unit="step", file=sys.stderr) as bar:
        per_image = _reconstruction(run, models, splits, im, m, figures, out, bar)
        classical = _denoising(models, im, sigmas, seed, workers, m, figures, out, bar)
        layers = _layers(models, im, seed, figures, out, bar)
    m["layers"] = layers
    seed_images: dict[str, dict[int, np.ndarray]] = {}  # kind -> seed -> per-image clean-test PSNR, for PCA
    denoised: dict[str, dict[str, dict[int, np.ndarray]]] = {}  # kind -> sigma -> seed -> per-image denoised PSNR
    m["finalfit"] = seed_metrics(run, im.clean, sigmas, seed, seed_images, im.groups, denoised)
    seeds_vs_comparator(m["finalfit"], m, denoised, classical, im.groups)
    m["pca"] = pca_baselines(m["models"], per_image, to_float(splits.train).numpy(), im.clean_np, im.labels,
                             im.classes, m["finalfit"], seed_images, im.groups)
    m["learning_curves"] = learning_curves(run.finalfit.to_json() if run.finalfit else None)
    search_md, search_figures, m["search"] = search_report(run, out)  # before the targets: the recipe's trial ids
    figures.update(search_figures)
    m["targets"] = check_targets(m)
    curves_png = plot_learning_curves(m["learning_curves"], target_gaps(m["targets"]), out / CURVES_PNG,
                                      {r["best_bottleneck"]: r["gap_ssim"] for r in [m["targets"].get("reconstruction")]
                                       if r and r.get("gap_ssim", 0) > 0})
    if curves_png:
        figures["learning_curves"] = m["targets"]["learning_curves_figure"] = curves_png
    m["wall_time_s"] = round(time.time() - started, 1)
    tables, total = _write(m, figures, layers, out, search_md)
    if use_wandb:
        _log(run, m, figures, tables, out)
    print(f"[tuneae] report of {run.path} in {out}: {total / 1e6:.2f} MB, {m['wall_time_s']} s", flush=True)
    return m


def _header(run: Run, splits: Splits, im: Images, sigmas: tuple[float, ...], seed: int, out: Path) -> dict[str, Any]:
    """The first entries of ``metrics.json``: the run, the data and the noise; empty result sections.

    Paths are relative to the report folder ``out`` (checkpoints: to the experiment folder), never absolute.
    """
    return {
        "run": portable(str(run.path.resolve()), out), "name": run.name,
        "experiment_dir": portable(run.layout.experiment, out), "command": run.summary.command if run.summary else None,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seed": seed,
        "data": {"source": portable(splits.counts.get("source", ""), out), "image_size": int(im.clean.shape[-1]),
                 "classes": list(im.classes), "test_images": len(im.test_idx), "test_total": len(splits.test),
                 "test_indices": im.test_idx.tolist(), "tuning_val_images": len(im.val_clean),
                 "test_groups": len(np.unique(im.groups)), "bootstrap": BOOTSTRAP,
                 "split": splits.counts.get("split"), "per_class": splits.counts.get("per_class"),
                 "scan_rule": splits.counts.get("scan_rule"), "synthetic": splits.counts.get("source") == "phantom"},
        "noise": {"function": "tuneae.noise.eval_noisy", "protocols": list(PROTOCOLS), "primary": PRIMARY,
                  "test_seeds": {f"{s:g}": eval_seed(seed, s, "test") for s in sigmas},
                  "val_seeds": {f"{s:g}": eval_seed(seed, s, "val") for s in sigmas}},
        "ssim": {"source": "Wang et al. 2004 via skimage.metrics.structural_similarity", **SSIM_SETTINGS},
        "models": {}, "denoising": {}, "selection": {}, "comparisons": {}, "reference_comparisons": {},
        "denoising_classes": {}}


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``python -m tuneae.report``."""
    p = argparse.ArgumentParser(prog="python -m tuneae.report", description=(
        "Report a finished search: reload each model's best trial from its checkpoint, measure it on the held-out "
        "test split (reconstruction, with PCA at the same code size; denoising under AWGN, clipped 8-bit and "
        "Rician noise against DnCNN where searched and against non-local means, total "
        "variation, wavelet shrinkage and BM3D tuned on validation images; 95% bootstrap intervals; feature maps; "
        "VAE samples) and write report.md, metrics.json, CSV tables and figures."))
    p.add_argument("run", metavar="RUN", help="results/<name> (with summary.json) or an experiment folder "
                                              "<storage_path>/<name>")
    p.add_argument("--out", help="output folder (default RUN/report, or results/<name>/report for an experiment "
                                 "folder)")
    p.add_argument("--data", metavar="SOURCE", help="data source instead of the one in the checkpoints (when the "
                                                    "run was made elsewhere): hub id, folder or 'phantom'")
    p.add_argument("--max-test", type=int, help="use at most N test images, spread over the classes (smoke)")
    p.add_argument("--sigmas", type=float, nargs="+", default=list(SIGMAS),
                   help="noise sd on the [0, 1] scale (default 0.05 0.1 0.2 0.3)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise and of the VAE samples (default 0)")
    p.add_argument("--experiment", metavar="PATH", help="the experiment folder <storage_path>/<name> of a results "
                                                        "folder, when it moved since the search")
    p.add_argument("--workers", type=int, default=1, help="processes for the classical denoisers (BM3D is slow; "
                                                          "default 1)")
    p.add_argument("--no-wandb", action="store_true", help="do not log the report to W&B")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m tuneae.report``; returns 0, or 2 with ``error: ...`` on stderr for a bad run.
    ``~`` and ``$VAR`` in the paths are expanded as in the search (:func:`tuneae.layout.user_path`)."""
    args = build_parser().parse_args(argv)
    run, out, data, experiment = (user_path(a) if a else a for a in (args.run, args.out, args.data, args.experiment))
    try:
        make_report(run, out, data, args.max_test, tuple(args.sigmas), args.seed, not args.no_wandb,
                    experiment, args.workers,
                    portable_command("python -m tuneae.report", sys.argv[1:] if argv is None else argv))
    except RunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
