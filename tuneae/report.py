"""The report of a finished search: ``python -m tuneae.report RUN``.

Each model kind's best trial is rebuilt from its checkpoint alone and measured on the held-out TEST split, which the
search never saw: reconstruction MSE / PSNR / SSIM per image (overall and per class); denoising at Gaussian noise
sigma in {0.05, 0.1, 0.2, 0.3} against classical denoisers (non-local means, total variation, wavelet shrinkage)
whose parameters are tuned on a small VALIDATION subset; the feature maps of every encoder and decoder layer with a
receptive field measured from the model itself; VAE samples and a latent interpolation. Each model is also
re-evaluated on the validation split exactly as the search did, to check that the checkpoint reproduces the
reported ``val/loss``.

``RUN`` is a results folder ``results/<name>`` (with ``summary.json``) or an experiment folder ``<storage>/<name>``
(per-kind Tune experiments ``ae/``, ``vae/``, ... of trial folders with ``result.json``). Outputs go to ``--out``
(default ``RUN/report`` for a results folder, ``results/<name>/report`` for an experiment folder), each file
written atomically: ``report.md`` (headline tables, figures by relative link), ``metrics.json`` (every number),
``reconstruction.csv``, ``denoising.csv``, ``denoising_classes.csv``, ``layers.csv`` and small PNGs (80 dpi; the
folder stays under 5 MB). The same figures and tables go to W&B (offline unless ``WANDB_API_KEY`` is set), whose
files are written to ``<experiment folder>/wandb`` beside the search's own W&B runs: outside ``results/`` (which is
committed) and outside the report folder. W&B trouble only warns.
"""
from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from skimage.metrics import structural_similarity
from skimage.restoration import denoise_nl_means, denoise_tv_chambolle, denoise_wavelet
from tqdm.auto import tqdm

from tuneae.checkpoint import CheckpointError, atomic_write, atomic_write_csv, configs_of, load_checkpoint
from tuneae.config import MODEL_KINDS, DataConfig
from tuneae.data import DataError, Splits, add_gaussian_noise, load_splits, to_float
from tuneae.models import BOTTLENECK, VAE, Autoencoder
from tuneae.train import eval_batch_size, evaluate, make_loader, psnr_per_image

SIGMAS = (0.05, 0.1, 0.2, 0.3)
"""Default noise levels: standard deviation of the Gaussian noise on the [0, 1] scale (clipped to [0, 1] after)."""
TUNE_IMAGES = 24
"""Validation images on which each classical denoiser's parameter is tuned, per sigma."""
RELOAD_RTOL = 1e-4
"""Relative tolerance within which the reloaded val/loss counts as reproducing the search's."""
DPI = 80
"""Resolution of every figure (small PNGs)."""
TOP_CHANNELS = 4
"""Most active channels shown per layer."""
CSV_TABLES = ("reconstruction", "denoising", "denoising_classes", "layers")
"""The CSV tables of a report (``<name>.csv``)."""
MAX_REPORT_BYTES = 5_000_000
"""Warn above this total size of the report folder."""
CLASSICAL_GRIDS: dict[str, tuple] = {
    "nl_means": (0.4, 0.6, 0.8, 1.0),  # h = factor * sigma
    "tv_chambolle": (0.25, 0.5, 0.75, 1.0, 1.5),  # weight = factor * sigma
    "wavelet": (("BayesShrink", 1.0), ("VisuShrink", 1.0), ("VisuShrink", 0.5), ("VisuShrink", 0.25)),  # sigma x
}
"""Parameter grid of each classical denoiser, searched per sigma on the validation subset (see classical_denoise)."""
NO_TUMOUR = ("no_tumor", "phantom_no_lesion")
"""Class names without a lesion (the comparison class of the per-class denoising analysis)."""
DENOISING_TARGETS_DB: dict[float, float] = {0.1: 28.3, 0.2: 24.0}
"""Project targets for the best learned denoiser, test PSNR in dB per sigma: the best scikit-image method measured
on this test set when the targets were set (TV Chambolle, 26.3 / 22.0 dB, as measured by the project's issue 5
with the weight chosen on training images) + ``TARGET_MARGIN_DB``."""
TARGET_MARGIN_DB = 2.0
"""Margin over the best classical method of this report: a target rises to ``best classical + margin`` when the
report's own tuned classical methods score higher than they did when the targets were set."""
RECONSTRUCTION_TARGET = {"psnr": 26.0, "ssim": 0.75, "max_latent_dim": 2048}
"""Project target for the best bottleneck model (no skip connections, latent dimension <= 2048) on clean test
images: PSNR in dB and SSIM (issue 5 measured the seed's setting, an AE trained 40 epochs, at 21.7 dB / 0.58)."""


class ReportError(ValueError):
    """A run that cannot be reported; the message names the folder, file, model kind or setting at fault."""


# ---------------------------------------------------------------------------------------------------- the run
@dataclass(frozen=True)
class Trial:
    """The best trial of one model kind: its checkpoint and the metrics the search reported for it."""

    kind: str
    trial_id: str
    checkpoint: Path
    reported: dict


@dataclass(frozen=True)
class Run:
    """A finished search: its name, summary (None for a bare experiment folder) and best trial per kind."""

    path: Path
    name: str
    summary: dict | None
    trials: dict[str, Trial]
    is_results: bool


def _locate(path: Path, kind: str, roots: list[Path]) -> Path:
    """The checkpoint folder ``path``, or the same ``train/<trial>/<checkpoint>`` under one of ``roots`` (the
    experiment folder may have been moved since the search wrote the path)."""
    if path.exists():
        return path
    for root in roots:
        moved = root / "train" / path.parent.name / path.name
        if moved.exists():
            return moved
    raise ReportError(f"{kind}: checkpoint {path} does not exist (experiment folder moved or deleted?)")


def find_run(path: str | os.PathLike) -> Run:
    """Find the best trial of every model kind in a results folder or an experiment folder.

    A results folder's ``summary.json`` names each kind's best checkpoint. In an experiment folder each kind's
    trial with the lowest last finite ``val/mse`` in its ``result.json`` wins (errored trials excluded), as the
    search picks it.

    Raises:
        ReportError: the folder is missing or neither kind of folder, no kind has a finished trial, or a named
            checkpoint does not exist.
    """
    run = Path(path).expanduser()
    if not run.is_dir():
        raise ReportError(f"run folder {run} does not exist; give results/<name> or <storage_path>/<name>")
    trials: dict[str, Trial] = {}
    if (run / "summary.json").is_file():
        try:
            summary = json.loads((run / "summary.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ReportError(f"cannot read {run / 'summary.json'}: {exc}") from exc
        name = (summary.get("search") or {}).get("name") or run.name
        roots = [Path(summary.get("experiment_dir") or run), run.parent.parent / "runs" / name]
        for kind, m in (summary.get("models") or {}).items():
            if m.get("best_checkpoint"):
                ckpt = _locate(Path(m["best_checkpoint"]), kind, roots)
                trials[kind] = Trial(kind, str(m.get("best_trial")), ckpt, dict(m.get("best_metrics") or {}))
        missing = sorted(set(summary.get("models") or {}) - set(trials))
        if not trials:
            raise ReportError(f"{run / 'summary.json'}: no finished trial with a checkpoint (best_trial is null for "
                              f"{missing or 'every model'}); see 'failures' there")
        if missing:
            warnings.warn(f"no finished trial for {missing}; reporting {sorted(trials)}", stacklevel=2)
        return Run(run, name, summary, trials, is_results=True)
    kinds = [k for k in MODEL_KINDS if (run / k).is_dir()]
    if not kinds:
        raise ReportError(f"{run} is neither a results folder (no summary.json) nor an experiment folder "
                          f"(no {', '.join(MODEL_KINDS)} sub-folder)")
    for kind in kinds:
        finished = []
        for trial_dir in sorted((run / kind).iterdir()):
            if not (trial_dir / "result.json").is_file() or (trial_dir / "error.txt").exists():
                continue
            last = None
            for line in (trial_dir / "result.json").read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a crash
                v = row.get("val/mse")  # the search's selection metric, whatever the training loss
                if isinstance(v, (int, float)) and math.isfinite(v) and row.get("checkpoint_path"):
                    last = row
            if last is not None:
                finished.append(last)
        if finished:
            best = min(finished, key=lambda r: r["val/mse"])
            ckpt = _locate(Path(best["checkpoint_path"]), kind, [run])
            reported = {k: best[k] for k in ("val/loss", "val/mse", "val/psnr", "train/loss", "epoch") if k in best}
            trials[kind] = Trial(kind, str(best.get("trial_id")), ckpt, reported)
    if not trials:
        raise ReportError(f"{run}: no finished trial (no result.json with a finite val/mse and a checkpoint) "
                          f"under {', '.join(kinds)}")
    return Run(run, run.name, None, trials, is_results=False)


def load_model(trial: Trial) -> tuple[Autoencoder, dict]:
    """Rebuild a trial's model from its checkpoint alone (``torch.load(weights_only=True)``), in eval mode.

    Raises:
        ReportError: the checkpoint is unreadable, does not match its model config, or is of another kind.
    """
    try:
        model, payload = load_checkpoint(trial.checkpoint)
    except CheckpointError as exc:
        raise ReportError(f"{trial.kind} (trial {trial.trial_id}): {exc}") from exc
    if model.cfg.kind != trial.kind:
        raise ReportError(f"checkpoint {trial.checkpoint} holds a {model.cfg.kind!r} model, expected {trial.kind!r}")
    return model, payload


def _experiment_of(checkpoint: Path) -> Path | None:
    """The experiment folder of a checkpoint ``<experiment>/train/<trial>/<checkpoint>``, or None."""
    parents = checkpoint.parents
    return parents[2] if len(parents) > 2 and parents[1].name == "train" else None


def data_config(payload: dict, run: Run, source: str | None = None) -> DataConfig:
    """The checkpoint's data settings, with the source overridden by ``source`` (``--data``) when given.

    Without an override, a relative folder that does not exist from here is replaced by the absolute folder the
    summary recorded; a relative cache folder that does not exist from here by ``<storage_path>/cache`` (the
    search's default), found from the checkpoint's place.
    """
    cfg = DataConfig(**payload["data_config"])
    recorded = str(((run.summary or {}).get("data") or {}).get("source", ""))
    if source:
        cfg = replace(cfg, source=source)
    elif not Path(cfg.source).expanduser().exists() and recorded.startswith("/") and Path(recorded).is_dir():
        cfg = replace(cfg, source=recorded)
    exp = _experiment_of(next(iter(run.trials.values())).checkpoint)
    if not Path(cfg.cache_dir).expanduser().is_absolute() and not Path(cfg.cache_dir).exists() and exp:
        cfg = replace(cfg, cache_dir=str(exp.parent / "cache"))
    return cfg


def load_data(models: dict[str, tuple[Autoencoder, dict]], run: Run, source: str | None = None) -> Splits:
    """The splits every model was trained on (``load_splits`` of the checkpoints' data settings).

    Raises:
        ReportError: the models were trained on different data, the data cannot be loaded (naming the source and
            suggesting ``--data``), or its image size does not fit a model.
    """
    cfgs = {kind: data_config(payload, run, source) for kind, (_, payload) in models.items()}
    same = {k: {f: v for f, v in asdict(c).items() if f not in ("cache_dir", "skip_unreadable")}
            for k, c in cfgs.items()}
    if len({json.dumps(v, sort_keys=True) for v in same.values()}) > 1:
        raise ReportError(f"the models were trained on different data, so one test set cannot compare them: {same}")
    cfg = next(iter(cfgs.values()))
    try:
        splits = load_splits(cfg)
    except DataError as exc:
        hint = "" if source else " (named in the checkpoints; pass --data SOURCE when the run was made elsewhere)"
        raise ReportError(f"cannot load the data {cfg.source!r}{hint}: {exc}") from exc
    for kind, (model, _) in models.items():
        if model.cfg.image_size != splits.test.shape[-1]:
            raise ReportError(f"{kind}: the model takes {model.cfg.image_size} px images, the data "
                              f"{cfg.source!r} has {splits.test.shape[-1]} px")
    return splits


# ---------------------------------------------------------------------------------------------------- metrics
def predict(model: Autoencoder, x: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Model outputs for ``x`` (N, 1, S, S) in [0, 1], batched, no gradients -> (N, 1, S, S) in [0, 1]."""
    model.eval()
    with torch.no_grad():
        return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def image_metrics(output: np.ndarray, clean: np.ndarray) -> dict[str, np.ndarray]:
    """MSE, PSNR and SSIM of each image.

    PSNR = 10 log10(1 / MSE) in dB for data range 1 (:func:`tuneae.train.psnr_per_image`, as in ``val/psnr``);
    SSIM is scikit-image's ``structural_similarity`` (Wang et al. 2004, "Image quality assessment: from error
    visibility to structural similarity", IEEE TIP 13(4)) with a 7x7 window and ``data_range=1``.

    Args:
        output, clean: (N, H, W) float in [0, 1].
    Returns:
        ``{"mse": (N,), "psnr": (N,) dB, "ssim": (N,) in [-1, 1]}``.
    """
    o, c = torch.as_tensor(output, dtype=torch.float64), torch.as_tensor(clean, dtype=torch.float64)
    return {"mse": (o - c).pow(2).flatten(1).mean(1).numpy(),
            "psnr": psnr_per_image(o[:, None], c[:, None]).numpy(),
            "ssim": np.array([structural_similarity(a, b, data_range=1.0) for a, b in zip(o.numpy(), c.numpy())])}


def summarise(values: dict[str, np.ndarray], labels: np.ndarray, classes: tuple[str, ...]) -> dict[str, Any]:
    """Mean and (population) std of each per-image metric, overall and per class (classes with images only)."""
    def stats(v):
        return {"mean": float(np.mean(v)), "std": float(np.std(v))}

    out: dict[str, Any] = {k: stats(v) for k, v in values.items()}
    out["per_class"] = {c: {"n": int((labels == i).sum()), **{k: stats(v[labels == i]) for k, v in values.items()}}
                        for i, c in enumerate(classes) if (labels == i).any()}
    return out


def classical_denoise(method: str, image: np.ndarray, sigma: float, param: Any) -> np.ndarray:
    """Denoise one image with a classical method from scikit-image.

    Args:
        method: ``nl_means``: non-local means (Buades et al. 2005, "A non-local algorithm for image denoising",
            CVPR), h = param * sigma, patch_size 5, patch_distance 6, fast_mode; ``tv_chambolle``: total-variation
            denoising (Chambolle 2004, "An algorithm for total variation minimization and applications", JMIV 20),
            weight = param * sigma; ``wavelet``: soft wavelet shrinkage, param = (rule, scale) with rule BayesShrink
            (Chang et al. 2000, "Adaptive wavelet thresholding for image denoising and compression", IEEE TIP 9(9))
            or VisuShrink (Donoho & Johnstone 1994), noise sigma given as scale * sigma.
        image: (H, W) float in [0, 1], noisy.
        sigma: noise standard deviation on the [0, 1] scale.
        param: one entry of ``CLASSICAL_GRIDS[method]``.
    Returns:
        (H, W) float64 in [0, 1].
    Raises:
        ReportError: an unknown method.
    """
    if method == "nl_means":
        out = denoise_nl_means(image, h=param * sigma, sigma=sigma, patch_size=5, patch_distance=6, fast_mode=True)
    elif method == "tv_chambolle":
        out = denoise_tv_chambolle(image, weight=param * sigma)
    elif method == "wavelet":
        rule, scale = param
        out = denoise_wavelet(image, sigma=scale * sigma, method=rule, mode="soft", rescale_sigma=True)
    else:
        raise ReportError(f"unknown classical denoiser {method!r}; choose one of {sorted(CLASSICAL_GRIDS)}")
    return np.clip(out, 0.0, 1.0)


def tune_classical(method: str, clean: np.ndarray, noisy: np.ndarray, sigma: float) -> tuple[Any, dict[str, float]]:
    """Pick the parameter of ``CLASSICAL_GRIDS[method]`` with the highest mean PSNR on (validation) images.

    Args:
        clean, noisy: (N, H, W) float in [0, 1]; never test images.
    Returns:
        (best parameter, {str(parameter): mean PSNR in dB}).
    """
    scores = {}
    for param in CLASSICAL_GRIDS[method]:
        out = np.stack([classical_denoise(method, im, sigma, param) for im in noisy])
        scores[param] = float(image_metrics(out, clean)["psnr"].mean())
    best = max(scores, key=scores.get)
    return best, {str(k): round(v, 3) for k, v in scores.items()}


def noise_seed(seed: int, sigma: float, split: str = "test") -> int:
    """Seed of the noise added to the ``test`` (or ``val``, for tuning) images at ``sigma``."""
    return seed * 100_000 + round(sigma * 1000) * 10 + {"test": 0, "val": 1}[split]


def noisy_copy(clean: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    """``clean`` (N, 1, S, S) in [0, 1] plus N(0, sigma^2) noise clipped to [0, 1], from a seeded CPU generator."""
    return add_gaussian_noise(clean, sigma, generator=torch.Generator().manual_seed(seed))


def spread(n_total: int, n: int | None) -> np.ndarray:
    """``n`` indices spread evenly over ``range(n_total)`` (all when n is None or larger). The splits are ordered by
    class, so this keeps every class in proportion."""
    if n is None or n >= n_total:
        return np.arange(n_total)
    return np.unique(np.linspace(0, n_total - 1, n).round().astype(int))


# ---------------------------------------------------------------------------------------------------- layers
def receptive_fields(model: Autoencoder, x: torch.Tensor) -> dict[str, tuple[int, int]]:
    """Measure the receptive field of every layer of ``forward_intermediates`` from the model itself.

    For each layer the gradient of its centre activation (summed over channels) with respect to the input: the
    receptive field is the side of the bounding box of input pixels with a non-zero gradient; the effective one
    (Luo et al. 2016, "Understanding the effective receptive field in deep convolutional neural networks", NeurIPS)
    that of pixels with at least 1% of the largest |gradient|. Per-image normalization
    (GroupNorm, ``input_norm="standardize"``) couples every pixel weakly, so there the first is the whole image.

    Args:
        model: in eval mode.
        x: (1, 1, S, S) in [0, 1].
    Returns:
        ``{layer name: (receptive field px, effective receptive field px)}``, at most S.
    """
    xg = x.clone().requires_grad_(True)
    _, inter = model.forward_intermediates(xg)
    out = {}
    for name, a in inter:  # a: (1, C, H, W)
        (g,) = torch.autograd.grad(a[0, :, a.shape[2] // 2, a.shape[3] // 2].sum(), xg, retain_graph=True)
        g = g[0, 0].abs()  # (S, S)

        def side(mask):
            rows, cols = mask.any(1).nonzero(), mask.any(0).nonzero()
            return int(max(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1)) if len(rows) else 0

        out[name] = (side(g > 0), side(g >= 0.01 * g.max()))
    return out


def layer_role(model: Autoencoder, name: str, names: list[str]) -> str:
    """A sentence on what a layer captures, chosen by its depth and role in the network."""
    enc = [n for n in names if n.startswith("encoder")]
    dec = [n for n in names if n.startswith("decoder")]
    unet = model.cfg.kind not in BOTTLENECK  # skip connections: U-Net
    if name == "output":
        return ("the output: sigmoid(logit(input) + predicted correction)" if unet else
                "the reconstruction in [0, 1] (sigmoid of the last transposed convolution)")
    if name in enc:
        i = enc.index(name)
        if i == 0:
            return "early layer: local intensity and edges (skull rim, brain boundary, contrast steps)"
        if i == len(enc) - 1:
            return ("U-Net bottleneck: coarse global context; fine detail bypasses it through the skip connections"
                    if unet else "deepest encoder map, flattened into the latent code: global layout (head position, "
                                 "size, brain against background)")
        return "middle layer: textures and parts (ventricles, folds, blobs such as lesions) from combined edges"
    i = dec.index(name)
    if unet:
        detail = "coarse" if i == 0 else "finer"
        return f"decoder: up-samples and merges the encoder's skip connection at this scale ({detail} detail)"
    if i == 0:
        return ("decoder: expands the latent code into a coarse layout; after the fully-connected bottleneck every "
                "decoder unit sees the whole image")
    return "decoder up-sampling: refines shapes and restores edges at a higher resolution"


def layer_table(kind: str, model: Autoencoder, x: torch.Tensor) -> tuple[list[dict], list]:
    """Describe every layer of ``forward_intermediates`` for one image x (1, 1, S, S) in [0, 1].

    Returns:
        (one row per layer: shape, receptive fields (see :func:`receptive_fields`), the ``TOP_CHANNELS`` most active
        channels by mean |activation| and what the layer captures; the ``[(name, (1, C, H, W))]`` activations).
    """
    rfs = receptive_fields(model, x)
    with torch.no_grad():
        _, inter = model.forward_intermediates(x)
    names = [n for n, _ in inter]
    rows = [{"model": kind, "layer": n, "channels": a.shape[1], "height": a.shape[2], "width": a.shape[3],
             "receptive_field_px": rfs[n][0], "effective_rf_px": rfs[n][1],
             "top_channels": " ".join(str(int(c)) for c in a[0].abs().mean((1, 2)).argsort(descending=True)
                                      [:TOP_CHANNELS]),
             "captures": layer_role(model, n, names)} for n, a in inter]
    return rows, inter


# ---------------------------------------------------------------------------------------------------- evaluation
def reload_check(model: Autoencoder, payload: dict, val_images: np.ndarray, reported: float | None) -> dict:
    """Re-evaluate a reloaded model on the validation split exactly as the search did (``tuneae.train.evaluate``,
    same batch size and noise seed) and compare with the ``val/loss`` the search reported.

    Returns:
        ``{"reported_val_loss", "reloaded_val_loss", "rel_diff", "reproduced"}`` (rel_diff relative to the reported
        value; reproduced when within ``RELOAD_RTOL``).
    """
    _, _, tcfg = configs_of(payload)
    loader = make_loader(val_images, eval_batch_size(tcfg.batch_size), shuffle=False)  # as the trainable validates
    reloaded = evaluate(model, loader, torch.device("cpu"), tcfg)["val/loss"]
    rel = abs(reloaded - reported) / max(abs(reported), 1e-12) if reported is not None else None
    return {"reported_val_loss": reported, "reloaded_val_loss": reloaded, "rel_diff": rel,
            "reproduced": rel is not None and rel <= RELOAD_RTOL}


def denoise_all(models: dict, clean: torch.Tensor, val_clean: torch.Tensor, sigma: float, seed: int,
                bar=None) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """Every denoiser's output on the test images at one noise level.

    Args:
        models: kind -> (model, payload).
        clean: test images (N, 1, S, S) in [0, 1]; val_clean: validation images (K, 1, S, S) for tuning only.
        sigma, seed: noise sd on the [0, 1] scale and the base seed (see :func:`noise_seed`).
    Returns:
        ({"noisy" | kind | classical method: (N, S, S) in [0, 1]}, {method: {"param", "tuning_val_psnr"}}).
    """
    noisy = noisy_copy(clean, sigma, noise_seed(seed, sigma))  # (N, 1, S, S)
    val_noisy = noisy_copy(val_clean, sigma, noise_seed(seed, sigma, "val"))[:, 0].numpy()  # (K, S, S)
    outputs = {"noisy": noisy[:, 0].numpy()}
    tuned = {}
    for kind, (model, _) in models.items():
        outputs[kind] = predict(model, noisy)[:, 0].numpy()
        if bar is not None:
            bar.update()
    for m in CLASSICAL_GRIDS:
        param, scores = tune_classical(m, val_clean[:, 0].numpy(), val_noisy, sigma)
        outputs[m] = np.stack([classical_denoise(m, im, sigma, param) for im in outputs["noisy"]])
        tuned[m] = {"param": param, "tuning_val_psnr": scores}
        if bar is not None:
            bar.update()
    return outputs, tuned


def class_gaps(res: dict, learned: list[str], classical: list[str]) -> dict[str, dict]:
    """Per class: PSNR gain over the noisy input of each method, the best learned and best classical method, and
    the difference of their gains (dB). ``res`` is one sigma's ``{method: summarise(...)}``."""
    by_class = {}
    for c, cm in res["noisy"]["per_class"].items():
        base = cm["psnr"]["mean"]
        gain = {m: res[m]["per_class"][c]["psnr"]["mean"] - base for m in [*learned, *classical]}
        best_l, best_c = max(learned, key=gain.get), max(classical, key=gain.get)
        by_class[c] = {"n": cm["n"], "noisy_psnr": base, "gain": gain, "best_learned": best_l,
                       "best_classical": best_c, "learned_minus_classical": gain[best_l] - gain[best_c]}
    return by_class


def _class_mean(by: dict[str, dict], classes: list[str], key: str = "learned_minus_classical") -> float | None:
    """Image-weighted mean of ``by[c][key]`` (dB) over ``classes`` of one sigma's :func:`class_gaps`; None if none."""
    if not classes:
        return None
    return float(np.average([by[c][key] for c in classes], weights=[by[c]["n"] for c in classes]))


def check_targets(m: dict[str, Any]) -> dict[str, Any]:
    """Compare a report's measured test numbers with the project's targets.

    Denoising, per sigma of ``DENOISING_TARGETS_DB`` that the report measured: the best learned model's mean test
    PSNR (dB) against the target, raised to best classical + ``TARGET_MARGIN_DB`` where that is higher; and whether
    the tumour classes fare no worse than the no-tumour class relative to the classical methods: the image-weighted
    mean over the tumour classes of :func:`class_gaps`' ``learned_minus_classical`` (best learned gain minus best
    classical gain over the noisy input, per class) >= the same mean over the no-tumour class(es). Reconstruction
    (``RECONSTRUCTION_TARGET``): met when any bottleneck model (ae / vae / dae, latent dimension <= 2048) reaches
    both the PSNR and the SSIM on clean test images; the model shown is that one, else the best by PSNR.

    Args:
        m: the report's metrics with ``models``, ``denoising`` and ``denoising_classes`` filled in (``metrics.json``).
    Returns:
        ``{"denoising": {sigma: {...}}, "reconstruction": {...} | None}``; every entry has ``met`` (bool).
        Sigmas that were not measured, or that lack a learned or a classical method, are left out;
        ``tumour_classes_no_worse`` is None when either class group is missing.
    """
    kinds = list(m["models"])
    out: dict[str, Any] = {"denoising": {}, "reconstruction": None}
    for sigma, fixed in DENOISING_TARGETS_DB.items():
        key = f"{sigma:g}"
        res = m["denoising"].get(key, {})
        psnr = {k: v["psnr"]["mean"] for k, v in res.items() if k != "noisy"}
        classical = max((k for k in psnr if k in CLASSICAL_GRIDS), key=psnr.get, default=None)
        learned = max((k for k in kinds if k in psnr), key=psnr.get, default=None)
        if classical is None or learned is None:
            continue
        target = max(fixed, psnr[classical] + TARGET_MARGIN_DB)
        by = m.get("denoising_classes", {}).get(key, {})
        sick_gap = _class_mean(by, [c for c in by if c not in NO_TUMOUR])
        healthy_gap = _class_mean(by, [c for c in by if c in NO_TUMOUR])
        out["denoising"][key] = {
            "best_learned": learned, "psnr": psnr[learned], "best_classical": classical,
            "classical_psnr": psnr[classical], "target": target, "met": psnr[learned] >= target,
            "healthy_classes": [c for c in by if c in NO_TUMOUR],
            "tumour_minus_classical_db": sick_gap, "no_tumour_minus_classical_db": healthy_gap,
            "tumour_classes_no_worse": None if sick_gap is None or healthy_gap is None else sick_gap >= healthy_gap}
    goal = RECONSTRUCTION_TARGET
    eligible = {k: m["models"][k]["test"] for k in kinds
                if k in BOTTLENECK and m["models"][k]["model_config"]["latent_dim"] <= goal["max_latent_dim"]}
    if eligible:
        ok = [k for k, t in eligible.items() if t["psnr"]["mean"] >= goal["psnr"] and t["ssim"]["mean"] >= goal["ssim"]]
        best = max(ok or eligible, key=lambda k: eligible[k]["psnr"]["mean"])
        out["reconstruction"] = {
            "best_bottleneck": best, "psnr": eligible[best]["psnr"]["mean"], "ssim": eligible[best]["ssim"]["mean"],
            "target_psnr": goal["psnr"], "target_ssim": goal["ssim"], "met": bool(ok)}
    return out


# ---------------------------------------------------------------------------------------------------- figures
def _figure(rows: int, cols: int, w: float, h: float) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(cols * w, rows * h), dpi=DPI)
    FigureCanvasAgg(fig)  # the Agg canvas: no GUI backend, no pyplot state
    return fig, fig.subplots(rows, cols, squeeze=False)


def _save(fig: Figure, path: Path, **kw) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, **kw)
    atomic_write(path, buf.getvalue())
    return path.name


def plot_grid(rows: list[list[tuple | None]], path: Path, cell: float = 1.2) -> str:
    """Draw a grid of images as one picture in one axes (fast even for many tiles), a title above each tile.

    Args:
        rows: per row, tiles ``(image (h, w), title, cmap, vmin, vmax)`` or None (blank); vmin / vmax None: the
            tile's own range. Tiles are scaled (nearest) to the largest tile's side ``side``.
        cell: inches per tile.
    Returns:
        The file name written.
    """
    side = max(t[0].shape[0] for r in rows for t in r if t is not None)
    head, gap, ncol = side // 3, max(1, side // 32), max(len(r) for r in rows)  # title band, gap in pixels
    canvas = np.ones((len(rows) * (head + side), ncol * (side + gap), 3))  # (H, W, RGB) white
    fig = Figure(figsize=(cell * canvas.shape[1] / side, cell * canvas.shape[0] / side), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            if tile is None:
                continue
            img, title, cmap, vmin, vmax = tile
            img = np.asarray(img, dtype=np.float64)
            lo = img.min() if vmin is None else vmin
            hi = img.max() if vmax is None else vmax
            rgb = colormaps[cmap](np.clip((img - lo) / max(hi - lo, 1e-12), 0, 1))[..., :3]  # (h, w, 3)
            idx_r = np.arange(side) * img.shape[0] // side
            idx_c = np.arange(side) * img.shape[1] // side
            y, x = r * (head + side) + head, c * (side + gap)
            canvas[y:y + side, x:x + side] = rgb[idx_r][:, idx_c]
            ax.text(x + side / 2, y - 0.5, title, ha="center", va="bottom", fontsize=6, linespacing=0.9)
    ax.imshow(canvas, interpolation="nearest" if cell * DPI >= side else "antialiased")  # crisp small tiles
    ax.axis("off")
    return _save(fig, path)


def _gray(img, title: str) -> tuple:
    return (img, title, "gray", 0.0, 1.0)


def plot_layers(inter: list[tuple[str, torch.Tensor]], rows: list[dict], path: Path) -> str:
    """Per layer: the channel mean and the most active channels of one image's activations (B = 1), each scaled to
    its own range."""
    grid = []
    for (name, a), row in zip(inter, rows):
        a = a[0].numpy()  # (C, H, W)
        title = f"{name}: mean\n{row['channels']}x{row['height']}x{row['width']}, RF {row['receptive_field_px']}px"
        grid.append([(a.mean(0), title, "viridis", None, None)]
                    + [(a[int(c)], f"channel {c}", "viridis", None, None) for c in row["top_channels"].split()])
    return plot_grid(grid, path, cell=1.0)


def plot_reconstructions(clean: np.ndarray, recon: dict[str, np.ndarray], titles: list[str], path: Path) -> str:
    """Rows: the shown test images (F, S, S); columns: original, each model's output, each absolute error."""
    err = {k: np.abs(r - clean) for k, r in recon.items()}  # (F, S, S) each
    vmax = max(0.05, max(float(e.max()) for e in err.values()))
    return plot_grid([[_gray(clean[i], titles[i]), *[_gray(r[i], k) for k, r in recon.items()],
                       *[(e[i], f"|{k} - x| (0-{vmax:.2f})" if j == 0 else f"|{k} - x|", "magma", 0.0, vmax)
                         for j, (k, e) in enumerate(err.items())]] for i in range(len(clean))], path)


def plot_bars(models: dict[str, dict], path: Path) -> str:
    """Test PSNR and SSIM (mean ± std) per model, overall and per class."""
    kinds = list(models)
    groups = ["all", *models[kinds[0]]["test"]["per_class"]]
    fig, axes = _figure(1, 2, w=4.0, h=3.2)
    w = 0.8 / len(kinds)
    for ax, met in zip(axes[0], ("psnr", "ssim")):
        for i, k in enumerate(kinds):
            t = models[k]["test"]
            vals = [t[met], *[t["per_class"][g][met] for g in groups[1:]]]
            ax.bar(np.arange(len(groups)) + i * w, [v["mean"] for v in vals], w, yerr=[v["std"] for v in vals],
                   label=k, capsize=2)
        ax.set_xticks(np.arange(len(groups)) + 0.4 - w / 2, groups, fontsize=7, rotation=20)
        ax.set_title(f"test {met.upper()}{' (dB)' if met == 'psnr' else ''}, clean input", fontsize=9)
    axes[0, 0].legend(fontsize=7)
    return _save(fig, path, bbox_inches="tight")


def plot_denoising_curves(denoising: dict[str, dict], learned: list[str], path: Path) -> str:
    """Mean test PSNR and SSIM against sigma for the noisy input and every denoiser."""
    sig = [float(s) for s in denoising]
    fig, axes = _figure(1, 2, w=4.0, h=3.2)
    for ax, met in zip(axes[0], ("psnr", "ssim")):
        for name in next(iter(denoising.values())):
            ax.plot(sig, [d[name][met]["mean"] for d in denoising.values()], "o-" if name in learned else "s--",
                    label=name, ms=3)
        ax.set_xlabel("noise sigma (on the [0, 1] scale)", fontsize=8)
        ax.set_title(f"denoising: test {met.upper()}", fontsize=9)
    axes[0, 0].legend(fontsize=6)
    return _save(fig, path, bbox_inches="tight")


def plot_denoising_example(clean: np.ndarray, outputs: dict[str, np.ndarray], sigma: float, title: str,
                           path: Path) -> str:
    """Top: clean (S, S), noisy input and each denoiser's output; bottom: output - clean (red: too bright)."""
    lim = 2 * sigma
    return plot_grid([[_gray(clean, title), *[_gray(o, f"{n}, sigma {sigma:g}" if n == "noisy" else n)
                                              for n, o in outputs.items()]],
                      [None, *[(o - clean, f"{n} - clean", "RdBu_r", -lim, lim) for n, o in outputs.items()]]], path)


def plot_vae(vae: VAE, a: torch.Tensor, b: torch.Tensor, titles: tuple[str, str], seed: int, path: Path) -> str:
    """Top: 10 decoded samples z ~ N(0, I); bottom: test image a (1, 1, S, S), the decoded linear interpolation of
    the posterior means of a and b in 8 steps, test image b."""
    with torch.no_grad():
        samples = vae.sample(10, generator=torch.Generator().manual_seed(seed))[:, 0]  # (10, S, S)
        z = vae.encode(torch.cat([a, b]))  # (2, latent_dim)
        t = torch.linspace(0, 1, 8)[:, None]  # (8, 1)
        between = vae.decode((1 - t) * z[0] + t * z[1])[:, 0]  # (8, S, S)
    return plot_grid([[_gray(im, "prior sample" if j == 0 else "") for j, im in enumerate(samples)],
                      [_gray(a[0, 0], titles[0]), *[_gray(im, f"t = {v:.2f}") for im, v in zip(between, t[:, 0])],
                       _gray(b[0, 0], titles[1])]], path)


# ---------------------------------------------------------------------------------------------------- files
def _stat_rows(summary: dict, keys: tuple[str, ...], n_all: int, **fixed) -> list[dict]:
    """CSV rows (overall, then per class) of one ``summarise`` result."""
    groups = {"all": {**summary, "n": n_all}, **summary["per_class"]}
    return [{**fixed, "class": g, "n": s["n"], **{f"{k}_{q}": s[k][q] for k in keys for q in ("mean", "std")}}
            for g, s in groups.items()]


def _tables(m: dict, layers: list[dict]) -> dict[str, list[dict]]:
    """The CSV tables (``CSV_TABLES``) as lists of rows, from the metrics."""
    n = m["data"]["test_images"]
    return {
        "reconstruction": [r for k, v in m["models"].items()
                           for r in _stat_rows(v["test"], ("mse", "psnr", "ssim"), n, model=k)],
        "denoising": [r for s, res in m["denoising"].items() for k, v in res.items()
                      for r in _stat_rows(v, ("psnr", "ssim"), n, sigma=s, method=k)],
        "denoising_classes": [{"sigma": s, "class": c, "n": v["n"], "noisy_psnr": round(v["noisy_psnr"], 3),
                               "best_learned": v["best_learned"],
                               "learned_gain_db": round(v["gain"][v["best_learned"]], 3),
                               "best_classical": v["best_classical"],
                               "classical_gain_db": round(v["gain"][v["best_classical"]], 3),
                               "learned_minus_classical_db": round(v["learned_minus_classical"], 3)}
                              for s, by in m["denoising_classes"].items() for c, v in by.items()],
        "layers": layers}


def _fmt(s: dict) -> str:
    return f"{s['mean']:.3f} ± {s['std']:.3f}"


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])


def _targets_markdown(t: dict) -> list[str]:
    """The "Targets" section of report.md from :func:`check_targets`' result."""
    def yes(ok):
        return "**met**" if ok else "not met"

    rows = [[f"denoising, sigma {s}", f"{d['best_learned']}: {d['psnr']:.2f} dB",
             f">= {d['target']:.2f} dB (best classical {d['best_classical']} {d['classical_psnr']:.2f} + "
             f"{TARGET_MARGIN_DB:g}, at least {DENOISING_TARGETS_DB[float(s)]:g})", yes(d["met"])]
            for s, d in t["denoising"].items()]
    rows += [[f"tumour classes vs {', '.join(d['healthy_classes'])}, sigma {s}",
              f"learned - classical: {d['tumour_minus_classical_db']:+.2f} vs "
              f"{d['no_tumour_minus_classical_db']:+.2f} dB",
              "tumour classes no worse off", yes(d["tumour_classes_no_worse"])]
             for s, d in t["denoising"].items() if d["tumour_classes_no_worse"] is not None]
    r = t["reconstruction"]
    if r:
        rows.append(["reconstruction, best bottleneck model", f"{r['best_bottleneck']}: {r['psnr']:.2f} dB / "
                     f"{r['ssim']:.3f} SSIM", f">= {r['target_psnr']:g} dB and >= {r['target_ssim']:g} SSIM",
                     yes(r["met"])])
    if not rows:
        return []
    return ["## Targets", "", "Measured here on the test images against the project's targets:", "",
            _table(["target", "measured", "required", "status"], rows), ""]


def _markdown(m: dict, figures: dict[str, str], gaps: list[dict], layers: list[dict]) -> str:
    """The text of report.md from the metrics, figure file names and tables."""
    d, mm, den = m["data"], m["models"], m["denoising"]
    kinds, sig = list(mm), list(den)
    methods = [k for k in next(iter(den.values())) if k not in mm and k != "noisy"]

    def reload(r):
        if r["rel_diff"] is None:
            return ["-", f"{r['reloaded_val_loss']:.6g}", "-"]
        flag = "" if r["reproduced"] else " NOT REPRODUCED"
        return [f"{r['reported_val_loss']:.6g}", f"{r['reloaded_val_loss']:.6g}", f"{r['rel_diff']:.1e}{flag}"]

    lines = [f"# Report: {m['name']}", "", f"Run `{m['run']}`" + (f", made by `{m['command']}`" if m["command"]
                                                                   else "") + ".",
             f"Data: `{d['source']}` at {d['image_size']} px, classes {', '.join(d['classes'])}. Every metric is on "
             f"{d['test_images']} of the {d['test_total']} held-out **test** images, which the search never saw; "
             f"the classical denoisers were tuned on {d['tuning_val_images']} validation images. PSNR in dB (data "
             f"range 1), SSIM after Wang et al. 2004; mean ± std over images.", "",
             *_targets_markdown(m["targets"]),
             "## Reconstruction (clean input)", "",
             _table(["model", "trial", "MSE", "PSNR (dB)", "SSIM", "val/loss reported", "reloaded", "rel. diff"],
                    [[k, mm[k]["trial"], *[_fmt(mm[k]["test"][q]) for q in ("mse", "psnr", "ssim")],
                      *reload(mm[k]["reload_check"])] for k in kinds]),
             "", "Per class, PSNR (dB) / SSIM:", "",
             _table(["model", *mm[kinds[0]]["test"]["per_class"]],
                    [[k, *[f"{v['psnr']['mean']:.2f} / {v['ssim']['mean']:.3f}"
                           for v in mm[k]["test"]["per_class"].values()]] for k in kinds]),
             "", f"![test PSNR and SSIM]({figures['bars']})", "",
             f"![test images, each model's output and absolute error]({figures['grid']})", "",
             "## Denoising", "",
             "Gaussian noise of sd sigma on the [0, 1] scale, clipped to [0, 1], added to the test images; every "
             "model gets the noisy image as input (only dae and dunet were trained for it). Test PSNR (dB):", ""]
    for met in ("psnr", "ssim"):
        lines += [_table(["method", *[f"sigma {s}" for s in sig]],
                         [[n, *[_fmt(den[s][n][met]) for s in sig]] for n in den[sig[0]]]), ""]
        lines += ["SSIM:", ""] if met == "psnr" else []
    lines += ["Classical parameters, tuned per sigma on the validation images (nl_means: h / sigma; tv_chambolle: "
              "weight / sigma; wavelet: rule and sigma scale): " + "; ".join(
                  f"sigma {s}: " + ", ".join(f"{k} {den[s][k]['param']}" for k in methods) for s in sig) + ".", "",
              "Per class: PSNR gain over the noisy input (dB) of the best learned and the best classical method:", "",
              _table(["sigma", "class", "n", "noisy PSNR", "best learned", "best classical", "learned - classical"],
                     [[r["sigma"], r["class"], r["n"], f"{r['noisy_psnr']:.2f}",
                       f"{r['best_learned']} {r['learned_gain_db']:+.2f}",
                       f"{r['best_classical']} {r['classical_gain_db']:+.2f}",
                       f"{r['learned_minus_classical_db']:+.2f}"] for r in gaps]), ""]
    for s, by in m["denoising_classes"].items():
        healthy, sick = [c for c in by if c in NO_TUMOUR], [c for c in by if c not in NO_TUMOUR]
        if healthy and sick:
            g = {c: {**v, "gain": v["gain"][v["best_learned"]]} for c, v in by.items()}
            lines.append(f"- sigma {s}: the best learned model gains {_class_mean(g, sick, 'gain'):.2f} dB on the "
                         f"tumour/lesion classes ({', '.join(sick)}) vs {_class_mean(g, healthy, 'gain'):.2f} dB on "
                         f"{', '.join(healthy)}; relative to the best classical method "
                         f"{_class_mean(by, sick):+.2f} vs {_class_mean(by, healthy):+.2f} dB (image-weighted means).")
    lines += ["", "Every method per class, test PSNR (dB) / SSIM:", ""]
    classes = list(den[sig[0]]["noisy"]["per_class"])
    for s in sig:
        lines += [_table([f"sigma {s}", *classes],
                         [[n, *[f"{den[s][n]['per_class'][c]['psnr']['mean']:.2f} / "
                                f"{den[s][n]['per_class'][c]['ssim']['mean']:.3f}" for c in classes]]
                          for n in den[s]]), ""]
    lines += ["", f"![denoising PSNR and SSIM against sigma]({figures['curves']})", ""]
    lines += [f"![sigma {s}: outputs (top), output - clean (bottom)]({figures[f'denoise_{s}']})" for s in sig]
    lines += ["", "## Intermediate layers", "",
              f"For one test image, each layer's channel mean and its {TOP_CHANNELS} most active channels (mean "
              "|activation|). Receptive field: bounding box of the input pixels on which the layer's centre "
              "activation has a non-zero gradient; effective: at least 1% of the largest gradient. Group normalization "
              "and per-image input standardization make every activation depend (weakly) on every pixel through "
              "their statistics, so there the first column is the whole image and the effective one is the "
              "meaningful size.", ""]
    for k in kinds:
        lines += [f"### {k}", "", _table(["layer", "C x H x W", "receptive field", "effective", "captures"],
                                         [[r["layer"], f"{r['channels']} x {r['height']} x {r['width']}",
                                           f"{r['receptive_field_px']} px", f"{r['effective_rf_px']} px",
                                           r["captures"]] for r in layers if r["model"] == k]),
                  "", f"![{k} feature maps]({figures[f'layers_{k}']})", ""]
    if "vae" in figures:
        lines += ["## VAE: samples from the prior and a latent interpolation", "",
                  "Top: decoded z ~ N(0, I). Bottom: two test images and the decoded linear interpolation of their "
                  "posterior means.", "", f"![VAE samples and interpolation]({figures['vae']})", ""]
    lines += ["## Files", "", f"metrics.json (every number), {', '.join(CSV_TABLES)} (.csv); report made in "
              f"{m['wall_time_s']} s.", ""]
    return "\n".join(lines)


def log_to_wandb(wandb_dir: Path, metrics: dict, figures: dict[str, Path], tables: dict[str, list[dict]]) -> None:
    """Log the report's figures, tables and headline numbers to one W&B run; any failure only warns.

    W&B runs offline unless ``WANDB_API_KEY`` is set and keeps all its files (runs, config, cache, data) under
    ``wandb_dir``, never under ``$HOME``; the environment is restored afterwards.
    """
    env = {"WANDB_DIR": str(wandb_dir), "WANDB_CONFIG_DIR": f"{wandb_dir}/.config",
           "WANDB_CACHE_DIR": f"{wandb_dir}/.cache", "WANDB_DATA_DIR": f"{wandb_dir}/.data",
           "WANDB_ARTIFACT_DIR": f"{wandb_dir}/.artifacts", "WANDB_SILENT": "true"}
    saved = {k: os.environ.get(k) for k in env}
    try:
        os.environ.update(env)
        wandb_dir.mkdir(parents=True, exist_ok=True)
        import wandb

        mode = "online" if os.environ.get("WANDB_API_KEY") else "offline"
        run = wandb.init(project="tuneae", name=f"report-{metrics['name']}", job_type="report", dir=str(wandb_dir),
                         mode=mode, config={"run": metrics["run"], "command": metrics["command"],
                                            **{k: v for k, v in metrics["data"].items() if k != "test_indices"}})
        run.log({f"report/{k}": wandb.Image(str(p)) for k, p in figures.items()})
        for key, rows in tables.items():
            cols = list(dict.fromkeys(c for r in rows for c in r))
            run.log({f"table/{key}": wandb.Table(columns=cols, data=[[r.get(c) for c in cols] for r in rows])})
        run.summary.update({f"test/{k}/{q}": v["test"][q]["mean"] for k, v in metrics["models"].items()
                            for q in ("mse", "psnr", "ssim")})
        run.finish()
    except Exception as exc:  # W&B never fails the report
        warnings.warn(f"W&B logging of the report failed: {type(exc).__name__}: {exc}", stacklevel=2)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ---------------------------------------------------------------------------------------------------- the report
def make_report(run_path: str | os.PathLike, out: str | os.PathLike | None = None, data: str | None = None,
                max_test: int | None = None, sigmas: tuple[float, ...] = SIGMAS, seed: int = 0,
                use_wandb: bool = True) -> dict[str, Any]:
    """Write the report of a finished search (see the module docstring for what and where).

    Args:
        run_path: a results folder ``results/<name>`` or an experiment folder ``<storage_path>/<name>``.
        out: output folder (default ``RUN/report``, or ``results/<name>/report`` for an experiment folder).
        data: data source overriding the one stored in the checkpoints (a hub id, a folder, ``phantom``).
        max_test: use at most this many test images, spread evenly over the classes (None: all).
        sigmas: noise standard deviations on the [0, 1] scale, each in (0, 1].
        seed: seed of the noise and of the VAE samples.
        use_wandb: also log figures and tables to W&B (failures only warn).
    Returns:
        The contents of ``metrics.json``.
    Raises:
        ReportError: a missing or unfinished run, a checkpoint that does not match its config, data that cannot be
            loaded or does not fit the models, or a bad setting.
    """
    started = time.time()
    if not sigmas or any(not 0 < s <= 1 for s in sigmas):
        raise ReportError(f"sigmas {list(sigmas)}: need one or more values in (0, 1] (noise sd on the [0, 1] scale)")
    if max_test is not None and max_test < 1:
        raise ReportError(f"max_test={max_test}: must be at least 1")
    run = find_run(run_path)
    out = Path(out) if out else (run.path / "report" if run.is_results else Path("results") / run.name / "report")
    models = {kind: load_model(t) for kind, t in run.trials.items()}  # kind -> (model, payload)
    splits = load_data(models, run, data)
    classes, kinds, methods = splits.classes, list(models), list(CLASSICAL_GRIDS)
    test_idx, tune_idx = spread(len(splits.test), max_test), spread(len(splits.val), TUNE_IMAGES)
    clean = to_float(splits.test[test_idx])  # (N, 1, S, S) in [0, 1]
    clean_np, labels = clean[:, 0].numpy(), splits.test_labels[test_idx]  # (N, S, S), (N,)
    val_clean = to_float(splits.val[tune_idx])  # (K, 1, S, S): tunes the classical denoisers, nothing else
    per_class = 2 if len(classes) <= 2 else 1
    shown = [int(i) for c in range(len(classes)) for i in np.flatnonzero(labels == c)[:per_class]]
    titles = [f"test: {classes[labels[i]]}" for i in shown]
    bar = tqdm(total=len(kinds) * (3 + len(sigmas)) + len(methods) * len(sigmas), desc="report", unit="step",
               file=sys.stderr)
    m: dict[str, Any] = {
        "run": str(run.path), "name": run.name, "command": (run.summary or {}).get("command"),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seed": seed,
        "data": {"source": splits.counts.get("source", ""), "image_size": int(clean.shape[-1]),
                 "classes": list(classes), "test_images": len(test_idx), "test_total": len(splits.test),
                 "test_indices": test_idx.tolist(), "tuning_val_images": len(tune_idx)},
        "noise": {"function": "tuneae.data.add_gaussian_noise, clipped to [0, 1], torch.Generator seeded per sigma",
                  "test_seeds": {f"{s:g}": noise_seed(seed, s) for s in sigmas}},
        "models": {}, "denoising": {}, "denoising_classes": {}}
    figures: dict[str, str] = {}

    recon = {}  # kind -> (N, S, S): the clean test images reconstructed
    for kind, (model, payload) in models.items():
        bar.set_postfix_str(f"{kind}: test, reload check")
        recon[kind] = predict(model, clean)[:, 0].numpy()
        trial = run.trials[kind]
        m["models"][kind] = {
            "trial": trial.trial_id, "checkpoint": str(trial.checkpoint), "epoch": payload["epoch"],
            "model_config": payload["model_config"], "train_config": payload.get("train_config"),
            "reload_check": reload_check(model, payload, splits.val,
                                         trial.reported.get("val/loss", payload["metrics"].get("val/loss"))),
            "test": summarise(image_metrics(recon[kind], clean_np), labels, classes)}
        bar.update(2)
    figures["bars"] = plot_bars(m["models"], out / "reconstruction_bars.png")
    figures["grid"] = plot_reconstructions(clean_np[shown], {k: r[shown] for k, r in recon.items()}, titles,
                                           out / "reconstruction_grid.png")

    for s in sigmas:
        key = f"{s:g}"
        bar.set_postfix_str(f"sigma {key}")
        outputs, tuned = denoise_all(models, clean, val_clean, s, seed, bar)
        res = {name: {**summarise(image_metrics(o, clean_np), labels, classes), **tuned.get(name, {})}
               for name, o in outputs.items()}
        m["denoising"][key] = res
        m["denoising_classes"][key] = class_gaps(res, kinds, methods)
        figures[f"denoise_{key}"] = plot_denoising_example(clean_np[shown[0]], {k: o[shown[0]] for k, o in
                                                                                outputs.items()}, s, titles[0],
                                                           out / f"denoising_sigma{key}.png")
    figures["curves"] = plot_denoising_curves(m["denoising"], kinds, out / "denoising_curves.png")

    layers = []
    x0 = clean[shown[0]:shown[0] + 1]  # (1, 1, S, S)
    for kind, (model, _) in models.items():
        bar.set_postfix_str(f"{kind}: layers")
        rows, inter = layer_table(kind, model, x0)
        figures[f"layers_{kind}"] = plot_layers(inter, rows, out / f"layers_{kind}.png")
        layers += rows
        bar.update()
    bar.close()
    vae = next((mod for mod, _ in models.values() if isinstance(mod, VAE)), None)
    if vae is not None:
        a, b = shown[0], (shown[-1] if shown[-1] != shown[0] else (shown[0] + 1) % len(clean))
        figures["vae"] = plot_vae(vae, clean[a:a + 1], clean[b:b + 1], (titles[0], f"test: {classes[labels[b]]}"),
                                  seed, out / "vae_samples_interpolation.png")

    tables = _tables(m, layers)
    for name, rows in tables.items():
        atomic_write_csv(out / f"{name}.csv", rows)
    m["layers"] = layers
    m["targets"] = check_targets(m)
    m["wall_time_s"] = round(time.time() - started, 1)
    atomic_write(out / "metrics.json", json.dumps(m, indent=1, default=str) + "\n")
    atomic_write(out / "report.md", _markdown(m, figures, tables["denoising_classes"], layers))
    for stale in [*out.glob("layers_*.png"), *out.glob("denoising_sigma*.png")]:  # from an earlier report here
        if stale.name not in figures.values():
            stale.unlink()
    total = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    if total > MAX_REPORT_BYTES:
        warnings.warn(f"report folder {out} holds {total / 1e6:.1f} MB (> 5 MB)", stacklevel=2)
    if use_wandb:
        exp = _experiment_of(next(iter(run.trials.values())).checkpoint)
        log_to_wandb(exp / "wandb" if exp else out.parent / "report-wandb", m,
                     {k: out / v for k, v in figures.items()}, tables)
    print(f"[tuneae] report of {run.path} in {out}: {total / 1e6:.2f} MB, {m['wall_time_s']} s", flush=True)
    return m


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``python -m tuneae.report``."""
    p = argparse.ArgumentParser(prog="python -m tuneae.report", description=(
        "Report a finished search: reload each model's best trial from its checkpoint, measure it on the held-out "
        "test split (reconstruction; denoising against non-local means, total variation and wavelet shrinkage; "
        "feature maps; VAE samples) and write report.md, metrics.json, CSV tables and figures."))
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
    p.add_argument("--no-wandb", action="store_true", help="do not log the report to W&B")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m tuneae.report``; returns 0, or 2 with ``error: ...`` on stderr for a bad run."""
    args = build_parser().parse_args(argv)
    try:
        make_report(args.run, args.out, args.data, args.max_test, tuple(args.sigmas), args.seed, not args.no_wandb)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
