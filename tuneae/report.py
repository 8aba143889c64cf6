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
import csv
import io
import json
import math
import os
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from skimage.metrics import structural_similarity
from skimage.restoration import denoise_nl_means, denoise_tv_chambolle, denoise_wavelet
from tqdm.auto import tqdm

from tuneae.checkpoint import CheckpointError, configs_of, load_checkpoint
from tuneae.config import MODEL_KINDS, DataConfig
from tuneae.data import DataError, Splits, add_gaussian_noise, load_splits, to_float
from tuneae.models import BOTTLENECK, VAE, Autoencoder, UNetAE
from tuneae.train import evaluate, make_loader, psnr_per_image

SIGMAS = (0.05, 0.1, 0.2, 0.3)
"""Default noise levels: standard deviation of the Gaussian noise on the [0, 1] scale (clipped to [0, 1] after)."""
TUNE_IMAGES = 24
"""Validation images on which each classical denoiser's parameter is tuned, per sigma."""
RELOAD_RTOL = 1e-4
"""Relative tolerance within which the reloaded val/loss counts as reproducing the search's."""
DPI = 80
"""Resolution of every figure (small PNGs)."""
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
    trial with the lowest last finite ``val/loss`` in its ``result.json`` wins (errored trials excluded), as the
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
                v = row.get("val/loss")
                if isinstance(v, (int, float)) and math.isfinite(v) and row.get("checkpoint_path"):
                    last = row
            if last is not None:
                finished.append(last)
        if finished:
            best = min(finished, key=lambda r: r["val/loss"])
            ckpt = _locate(Path(best["checkpoint_path"]), kind, [run])
            reported = {k: best[k] for k in ("val/loss", "val/mse", "val/psnr", "train/loss", "epoch") if k in best}
            trials[kind] = Trial(kind, str(best.get("trial_id")), ckpt, reported)
    if not trials:
        raise ReportError(f"{run}: no finished trial (no result.json with a finite val/loss and a checkpoint) "
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


def data_config(payload: dict, run: Run, source: str | None = None) -> DataConfig:
    """The checkpoint's data settings, with the source overridden by ``source`` (``--data``) when given.

    Without an override, a relative folder that does not exist from here is replaced by the absolute folder the
    summary recorded, and a relative cache folder by ``<experiment folder>/../cache`` (the search's default).
    """
    cfg = DataConfig(**payload["data_config"])
    recorded = str(((run.summary or {}).get("data") or {}).get("source", ""))
    if source:
        cfg = replace(cfg, source=source)
    elif not Path(cfg.source).expanduser().exists() and recorded.startswith("/") and Path(recorded).is_dir():
        cfg = replace(cfg, source=recorded)
    if not Path(cfg.cache_dir).is_absolute() and not Path(cfg.cache_dir).exists():
        trial = next(iter(run.trials.values()))
        cfg = replace(cfg, cache_dir=str(trial.checkpoint.parents[2].parent / "cache"))
    return cfg


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
    (Luo et al. 2016) that of pixels with at least 1% of the largest |gradient|. Per-image normalization
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
    unet = isinstance(model, UNetAE)
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
        return f"decoder: up-samples and merges the encoder's skip at this scale ({'coarse' if i == 0 else 'finer'} detail)"
    if i == 0:
        return ("decoder: expands the latent code into a coarse layout; after the fully-connected bottleneck every "
                "decoder unit sees the whole image")
    return "decoder up-sampling: refines shapes and restores edges at a higher resolution"


# ---------------------------------------------------------------------------------------------------- files
def _write(path: Path, data: bytes | str) -> None:
    """Write atomically: temporary file in the same folder, then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _write_csv(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
    writer.writeheader()
    writer.writerows(rows)
    _write(path, buf.getvalue())


def _figure(rows: int, cols: int, cell: float = 1.3) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(cols * cell, rows * cell * 1.1), dpi=DPI)
    FigureCanvasAgg(fig)  # Agg canvas: no GUI backend, no pyplot state
    return fig, fig.subplots(rows, cols, squeeze=False)


def _save(fig: Figure, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    _write(path, buf.getvalue())


def _show(ax, img, title: str = "", **kw) -> None:
    ax.imshow(np.asarray(img), **({"cmap": "gray", "vmin": 0, "vmax": 1} | kw))
    ax.set_title(title, fontsize=7)
    ax.axis("off")


def _fmt(s: dict) -> str:
    return f"{s['mean']:.3f} ± {s['std']:.3f}"


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])


# ---------------------------------------------------------------------------------------------------- report
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
        seed: seed of the noise, the VAE samples and nothing else.
        use_wandb: also log figures and tables to W&B (failures only warn).
    Returns:
        The contents of ``metrics.json``.
    Raises:
        ReportError: a missing or unfinished run, a checkpoint that does not match its config, data that cannot be
            loaded or does not match the models, or a bad setting.
    """
    started = time.time()
    if not sigmas or any(not 0 < s <= 1 for s in sigmas):
        raise ReportError(f"--sigmas {list(sigmas)}: need one or more values in (0, 1] (noise sd on the [0, 1] scale)")
    if max_test is not None and max_test < 1:
        raise ReportError(f"--max-test {max_test}: must be at least 1")
    run = find_run(run_path)
    out = Path(out) if out else (run.path / "report" if run.is_results else Path("results") / run.name / "report")
    models = {kind: load_model(t) for kind, t in run.trials.items()}  # kind -> (model, payload)

    cfgs = {kind: data_config(payload, run, data) for kind, (_, payload) in models.items()}
    same = {k: {f: v for f, v in asdict(c).items() if f not in ("cache_dir", "skip_unreadable")}
            for k, c in cfgs.items()}
    if len({json.dumps(v, sort_keys=True) for v in same.values()}) > 1:
        raise ReportError(f"the models were trained on different data settings, so one test set cannot compare "
                          f"them: {same}")
    dcfg = next(iter(cfgs.values()))
    try:
        splits: Splits = load_splits(dcfg)
    except DataError as exc:
        raise ReportError(f"cannot load the data {dcfg.source!r} named in the checkpoints: {exc}; "
                          f"pass --data SOURCE where the run was made elsewhere") from exc
    size = splits.test.shape[-1]
    for kind, (model, _) in models.items():
        if model.cfg.image_size != size:
            raise ReportError(f"{kind}: model expects {model.cfg.image_size} px images, the data has {size} px")
    classes = splits.classes
    test_idx = spread(len(splits.test), max_test)
    clean = to_float(splits.test[test_idx])  # (N, 1, S, S) in [0, 1]
    labels = splits.test_labels[test_idx]  # (N,)
    clean_np = clean[:, 0].numpy()  # (N, S, S)
    per_class = 2 if len(classes) <= 2 else 1
    fixed = [int(i) for c in range(len(classes)) for i in np.flatnonzero(labels == c)[:per_class]]  # shown images
    tune_idx = spread(len(splits.val), TUNE_IMAGES)
    val_clean = to_float(splits.val[tune_idx])  # (K, 1, S, S): tuning of classical denoisers only
    methods = list(CLASSICAL_GRIDS)
    steps = 2 * len(models) + len(sigmas) * (len(models) + len(methods)) + len(models)
    bar = tqdm(total=steps, desc="report", unit="step", file=sys.stderr)
    figures: dict[str, str] = {}
    metrics: dict[str, Any] = {
        "run": str(run.path), "name": run.name, "command": (run.summary or {}).get("command"),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seed": seed,
        "data": {"source": dcfg.source, "image_size": size, "classes": list(classes), "test_images": len(test_idx),
                 "test_total": len(splits.test), "test_indices": test_idx.tolist(),
                 "tuning_val_images": len(tune_idx), "note": "metrics on the test split; classical denoisers "
                 "tuned on the validation images; the search saw neither the test split nor these figures"},
        "models": {}, "denoising": {}, "denoising_classes": {},
        "noise": {"function": "tuneae.data.add_gaussian_noise (clipped to [0, 1])",
                  "test_seeds": {f"{s:g}": noise_seed(seed, s) for s in sigmas}},
    }

    # --- reconstruction of the clean test images, and the reload check on the validation split
    recon = {}
    for kind, (model, payload) in models.items():
        bar.set_postfix_str(f"{kind}: test")
        recon[kind] = predict(model, clean)[:, 0].numpy()  # (N, S, S)
        bar.update()
        bar.set_postfix_str(f"{kind}: reload check")
        _, _, tcfg = configs_of(payload)
        reloaded = evaluate(model, make_loader(splits.val, max(tcfg.batch_size, 64), shuffle=False),
                            torch.device("cpu"), tcfg)["val/loss"]
        reported = run.trials[kind].reported.get("val/loss", payload["metrics"].get("val/loss"))
        rel = abs(reloaded - reported) / max(abs(reported), 1e-12) if reported is not None else None
        bar.update()
        metrics["models"][kind] = {
            "trial": run.trials[kind].trial_id, "checkpoint": str(run.trials[kind].checkpoint),
            "epoch": payload["epoch"], "model_config": payload["model_config"],
            "train_config": payload.get("train_config"),
            "reload_check": {"reported_val_loss": reported, "reloaded_val_loss": reloaded, "rel_diff": rel,
                             "reproduced": rel is not None and rel <= RELOAD_RTOL},
            "test": summarise(image_metrics(recon[kind], clean_np), labels, classes)}

    # --- denoising: every model and the classical methods, per sigma
    shown = fixed[0]
    denoise_examples = {}
    for s in sigmas:
        key = f"{s:g}"
        noisy = noisy_copy(clean, s, noise_seed(seed, s))  # (N, 1, S, S)
        val_noisy = noisy_copy(val_clean, s, noise_seed(seed, s, "val"))[:, 0].numpy()  # (K, S, S)
        outputs = {"noisy": noisy[:, 0].numpy()}
        for kind, (model, _) in models.items():
            bar.set_postfix_str(f"sigma {key}: {kind}")
            outputs[kind] = predict(model, noisy)[:, 0].numpy()
            bar.update()
        res: dict[str, Any] = {}
        for m in methods:
            bar.set_postfix_str(f"sigma {key}: {m}")
            param, scores = tune_classical(m, val_clean[:, 0].numpy(), val_noisy, s)
            outputs[m] = np.stack([classical_denoise(m, im, s, param) for im in outputs["noisy"]])
            res[m] = {"param": param, "tuning_val_psnr": scores}
            bar.update()
        for name, o in outputs.items():
            res[name] = {**summarise(image_metrics(o, clean_np), labels, classes), **res.get(name, {})}
        metrics["denoising"][key] = res
        denoise_examples[key] = {name: o[shown] for name, o in outputs.items()}
        by_class = {}
        for c, cm in res["noisy"]["per_class"].items():
            base = cm["psnr"]["mean"]
            gains = {name: res[name]["per_class"][c]["psnr"]["mean"] - base for name in res if name != "noisy"}
            learned = max(models, key=lambda k: gains[k])
            classical = max(methods, key=lambda k: gains[k])
            by_class[c] = {"n": cm["n"], "noisy_psnr": base, "gain": gains, "best_learned": learned,
                           "best_classical": classical, "learned_minus_classical": gains[learned] - gains[classical]}
        metrics["denoising_classes"][key] = by_class

    # --- intermediate layers, VAE samples and interpolation
    layer_rows = []
    x0 = clean[shown:shown + 1]  # (1, 1, S, S)
    for kind, (model, _) in models.items():
        bar.set_postfix_str(f"{kind}: layers")
        rfs = receptive_fields(model, x0)
        with torch.no_grad():
            _, inter = model.forward_intermediates(x0)
        names = [n for n, _ in inter]
        fig, axes = _figure(len(inter), 5, cell=1.1)
        for r, (name, a) in enumerate(inter):
            a = a[0]  # (C, H, W)
            top = a.abs().mean((1, 2)).argsort(descending=True)[:4].tolist()
            rf, erf = rfs[name]
            role = layer_role(model, name, names)
            layer_rows.append({"model": kind, "layer": name, "channels": a.shape[0], "height": a.shape[1],
                               "width": a.shape[2], "receptive_field_px": rf, "effective_rf_px": erf,
                               "top_channels": " ".join(map(str, top)), "captures": role})
            _show(axes[r, 0], a.mean(0), f"{name} {a.shape[0]}x{a.shape[1]}x{a.shape[2]}\nmean, RF {rf}px",
                  cmap="viridis", vmin=None, vmax=None)
            for j in range(1, 5):
                if j - 1 < len(top):
                    _show(axes[r, j], a[top[j - 1]], f"ch {top[j - 1]}", cmap="viridis", vmin=None, vmax=None)
                else:
                    axes[r, j].axis("off")
        _save(fig, out / f"layers_{kind}.png")
        figures[f"layers_{kind}"] = f"layers_{kind}.png"
        bar.update()
    bar.close()
    vae_kind = next((k for k, (m, _) in models.items() if isinstance(m, VAE)), None)
    if vae_kind is not None:
        vae = models[vae_kind][0]
        with torch.no_grad():
            samples = vae.sample(10, generator=torch.Generator().manual_seed(seed))[:, 0]  # (10, S, S)
            a, b = fixed[0], fixed[-1] if fixed[-1] != fixed[0] else min(1, len(clean) - 1)
            z = vae.encode(clean[[a, b]])  # (2, latent_dim): posterior means
            t = torch.linspace(0, 1, 8)[:, None]  # (8, 1)
            path = vae.decode((1 - t) * z[0] + t * z[1])[:, 0]  # (8, S, S)
        fig, axes = _figure(2, 10)
        for j in range(10):
            _show(axes[0, j], samples[j], "prior sample" if j == 0 else "")
        strip = [(clean_np[a], f"test {classes[labels[a]]}")] + [(p, f"t={v:.2f}") for p, v in zip(path, t[:, 0])]
        for j, (img, title) in enumerate([*strip, (clean_np[b], f"test {classes[labels[b]]}")]):
            _show(axes[1, j], img, title)
        _save(fig, out / "vae_samples_interpolation.png")
        figures["vae"] = "vae_samples_interpolation.png"

    # --- figures: reconstruction bars and grid, denoising curves and examples
    kinds = list(models)
    groups = ["all", *metrics["models"][kinds[0]]["test"]["per_class"]]
    fig, axes = _figure(1, 2, cell=4.0)
    for ax, met in zip(axes[0], ("psnr", "ssim")):
        w = 0.8 / len(kinds)
        for i, kind in enumerate(kinds):
            t_ = metrics["models"][kind]["test"]
            vals = [t_[met]] + [t_["per_class"][g][met] for g in groups[1:]]
            ax.bar(np.arange(len(groups)) + i * w, [v["mean"] for v in vals], w, yerr=[v["std"] for v in vals],
                   label=kind, capsize=2)
        ax.set_xticks(np.arange(len(groups)) + 0.4 - w / 2, groups, fontsize=7, rotation=20)
        ax.set_title(f"test {met.upper()}{' (dB)' if met == 'psnr' else ''}", fontsize=9)
    axes[0, 0].legend(fontsize=7)
    _save(fig, out / "reconstruction_bars.png")
    err = {k: np.abs(recon[k][fixed] - clean_np[fixed]) for k in kinds}  # (F, S, S) each
    vmax = max(0.05, max(float(e.max()) for e in err.values()))
    fig, axes = _figure(len(fixed), 1 + 2 * len(kinds), cell=1.2)
    for r, i in enumerate(fixed):
        _show(axes[r, 0], clean_np[i], f"test: {classes[labels[i]]}")
        for j, k in enumerate(kinds):
            _show(axes[r, 1 + j], recon[k][i], k)
            _show(axes[r, 1 + len(kinds) + j], err[k][r], f"|{k} - x| (0-{vmax:.2f})", cmap="magma", vmax=vmax)
    _save(fig, out / "reconstruction_grid.png")
    figures = {"reconstruction_bars": "reconstruction_bars.png", "reconstruction_grid": "reconstruction_grid.png",
               **figures}
    names = ["noisy", *kinds, *methods]
    fig, axes = _figure(1, 2, cell=4.0)
    for ax, met in zip(axes[0], ("psnr", "ssim")):
        for name in names:
            ax.plot(sigmas, [metrics["denoising"][f"{s:g}"][name][met]["mean"] for s in sigmas], "o-" if name in
                    kinds else "s--", label=name, ms=3)
        ax.set_xlabel("noise sigma (of [0, 1])", fontsize=8)
        ax.set_title(f"denoising: test {met.upper()}", fontsize=9)
    axes[0, 0].legend(fontsize=6)
    _save(fig, out / "denoising_curves.png")
    figures["denoising_curves"] = "denoising_curves.png"
    for key, ex in denoise_examples.items():
        fig, axes = _figure(2, 1 + len(names), cell=1.2)
        _show(axes[0, 0], clean_np[shown], f"clean ({classes[labels[shown]]})")
        axes[1, 0].axis("off")
        lim = 2 * float(key)
        for j, name in enumerate(names, start=1):
            _show(axes[0, j], ex[name], name)
            _show(axes[1, j], ex[name] - clean_np[shown], f"{name} - clean", cmap="RdBu_r", vmin=-lim, vmax=lim)
        _save(fig, out / f"denoising_sigma{key}.png")
        figures[f"denoising_sigma{key}"] = f"denoising_sigma{key}.png"

    # --- tables, metrics.json, report.md
    rec_rows = [{"model": k, "class": g, "n": (t_ := metrics["models"][k]["test"] if g == "all" else
                                                metrics["models"][k]["test"]["per_class"][g]).get("n", len(test_idx)),
                 **{f"{m}_{q}": t_[m][q] for m in ("mse", "psnr", "ssim") for q in ("mean", "std")}}
                for k in kinds for g in groups]
    den_rows = [{"sigma": key, "method": name, "class": g, "n": (d := res[name] if g == "all" else
                                                                  res[name]["per_class"][g]).get("n", len(test_idx)),
                 **{f"{m}_{q}": d[m][q] for m in ("psnr", "ssim") for q in ("mean", "std")}}
                for key, res in metrics["denoising"].items() for name in names for g in groups]
    cls_rows = [{"sigma": key, "class": c, "n": v["n"], "noisy_psnr": round(v["noisy_psnr"], 3),
                 "best_learned": v["best_learned"], "learned_gain_db": round(v["gain"][v["best_learned"]], 3),
                 "best_classical": v["best_classical"], "classical_gain_db": round(v["gain"][v["best_classical"]], 3),
                 "learned_minus_classical_db": round(v["learned_minus_classical"], 3)}
                for key, by in metrics["denoising_classes"].items() for c, v in by.items()]
    tables = {"reconstruction": rec_rows, "denoising": den_rows, "denoising_classes": cls_rows, "layers": layer_rows}
    for name, rows in tables.items():
        _write_csv(out / f"{name}.csv", rows)
    metrics["layers"] = layer_rows
    metrics["wall_time_s"] = round(time.time() - started, 1)
    _write(out / "metrics.json", json.dumps(metrics, indent=1, default=str) + "\n")
    _write(out / "report.md", _markdown(metrics, run, kinds, methods, figures, tables))
    total = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    if total > MAX_REPORT_BYTES:
        warnings.warn(f"report folder {out} holds {total / 1e6:.1f} MB (> 5 MB)", stacklevel=2)
    if use_wandb:
        wandb_dir = next(iter(run.trials.values())).checkpoint.parents[2] / "wandb"
        log_to_wandb(wandb_dir, run.name, metrics, {k: out / v for k, v in figures.items()}, tables)
    print(f"[tuneae] report of {run.path} in {out} ({total / 1e6:.2f} MB, {metrics['wall_time_s']} s)", flush=True)
    return metrics


def _markdown(metrics: dict, run: Run, kinds: list[str], methods: list[str], figures: dict[str, str],
              tables: dict[str, list]) -> str:
    """The text of report.md."""
    d, mm = metrics["data"], metrics["models"]
    sig = list(metrics["denoising"])
    lines = [f"# Report: {run.name}", "",
             f"Run `{run.path}`" + (f", made by `{metrics['command']}`" if metrics["command"] else "") + ".",
             f"Data: `{d['source']}` at {d['image_size']} px; classes {', '.join(d['classes'])}. All metrics on "
             f"{d['test_images']} of {d['test_total']} held-out **test** images (never seen by the search); "
             f"classical denoisers tuned on {d['tuning_val_images']} validation images. PSNR in dB (data range 1), "
             f"SSIM after Wang et al. 2004; mean ± std over images.", "",
             "## Reconstruction (clean input)", "",
             _table(["model", "trial", "MSE", "PSNR (dB)", "SSIM", "val/loss reported", "reloaded", "rel. diff"],
                    [[k, mm[k]["trial"], _fmt(mm[k]["test"]["mse"]), _fmt(mm[k]["test"]["psnr"]),
                      _fmt(mm[k]["test"]["ssim"]), f"{mm[k]['reload_check']['reported_val_loss']:.6g}",
                      f"{mm[k]['reload_check']['reloaded_val_loss']:.6g}",
                      f"{mm[k]['reload_check']['rel_diff']:.1e}" + ("" if mm[k]["reload_check"]["reproduced"]
                                                                    else " **not reproduced**")] for k in kinds]),
             "", "Per class, PSNR (dB) / SSIM:", "",
             _table(["model", *mm[kinds[0]]["test"]["per_class"]],
                    [[k] + [f"{v['psnr']['mean']:.2f} / {v['ssim']['mean']:.3f}"
                            for v in mm[k]["test"]["per_class"].values()] for k in kinds]),
             "", "![reconstruction bars](reconstruction_bars.png)", "",
             "![test images, outputs, absolute errors](reconstruction_grid.png)", "",
             "## Denoising", "", "Gaussian noise of sd sigma on the [0, 1] scale, clipped to [0, 1]; test PSNR (dB):",
             ""]
    den = metrics["denoising"]
    for met in ("psnr", "ssim"):
        lines += [_table(["method", *[f"σ={s}" for s in sig]],
                         [[n, *[_fmt(den[s][n][met]) for s in sig]] for n in ["noisy", *kinds, *methods]]), ""]
        if met == "psnr":
            lines += ["SSIM:", ""]
    lines += ["Classical parameters tuned per σ on validation images: " + "; ".join(
        f"σ={s}: " + ", ".join(f"{m} {den[s][m]['param']}" for m in methods) for s in sig) +
        " (nl_means: h / σ; tv_chambolle: weight / σ; wavelet: rule, σ scale).", "",
        "Per class: PSNR gain over the noisy input of the best learned and the best classical method (dB):", "",
        _table(["σ", "class", "n", "noisy", "best learned", "best classical", "learned − classical"],
               [[r["sigma"], r["class"], r["n"], f"{r['noisy_psnr']:.2f}", f"{r['best_learned']} +{r['learned_gain_db']:.2f}",
                 f"{r['best_classical']} +{r['classical_gain_db']:.2f}", f"{r['learned_minus_classical_db']:+.2f}"]
                for r in tables["denoising_classes"]]), ""]
    for s, by in metrics["denoising_classes"].items():
        healthy = [c for c in by if c in NO_TUMOUR]
        sick = [c for c in by if c not in NO_TUMOUR]
        if healthy and sick:
            g = {c: by[c]["gain"][by[c]["best_learned"]] for c in by}
            lines.append(f"- σ={s}: best learned gain {np.mean([g[c] for c in sick]):.2f} dB on lesion classes vs "
                         f"{np.mean([g[c] for c in healthy]):.2f} dB on {', '.join(healthy)}.")
    lines += ["", "![denoising curves](denoising_curves.png)", ""]
    lines += [f"![denoising at σ={s}: outputs (top), output − clean (bottom)](denoising_sigma{s}.png)" for s in sig]
    lines += ["", "## Intermediate layers", "",
              "For one test image, each layer's channel mean and its 4 most active channels (mean |activation|). "
              "Receptive field: bounding box of the input pixels with a non-zero gradient of the layer's centre "
              "activation; effective: pixels with at least 1% of the largest gradient.", ""]
    for k in kinds:
        rows = [r for r in tables["layers"] if r["model"] == k]
        lines += [f"### {k}", "", _table(["layer", "shape (C×H×W)", "receptive field", "effective", "captures"],
                                         [[r["layer"], f"{r['channels']}×{r['height']}×{r['width']}",
                                           f"{r['receptive_field_px']} px", f"{r['effective_rf_px']} px",
                                           r["captures"]] for r in rows]),
                  "", f"![{k} feature maps]({figures[f'layers_{k}']})", ""]
    if "vae" in figures:
        lines += ["## VAE: samples from the prior and a latent interpolation", "",
                  "Top: decoded z ~ N(0, I). Bottom: two test images, their posterior means interpolated linearly.", "",
                  f"![VAE samples and interpolation]({figures['vae']})", ""]
    lines += ["## Files", "", "metrics.json (every number), " + ", ".join(f"{t}.csv" for t in tables) +
              f"; report made in {metrics['wall_time_s']} s.", ""]
    return "\n".join(lines)


def log_to_wandb(wandb_dir: Path, name: str, metrics: dict, figures: dict[str, Path],
                 tables: dict[str, list[dict]]) -> None:
    """Log the report's figures, tables and headline numbers to one W&B run; any failure only warns.

    W&B runs offline unless ``WANDB_API_KEY`` is set, and keeps all its files (run, config, cache, data) under
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
        run = wandb.init(project="tuneae", name=f"report-{name}", job_type="report", dir=str(wandb_dir), mode=mode,
                         config={"run": metrics["run"], "command": metrics["command"], **metrics["data"]})
        run.log({f"report/{k}": wandb.Image(str(p)) for k, p in figures.items()})
        for key, rows in tables.items():
            cols = list(dict.fromkeys(c for r in rows for c in r))
            run.log({f"table/{key}": wandb.Table(columns=cols, data=[[r.get(c) for c in cols] for r in rows])})
        for k, m in metrics["models"].items():
            run.summary.update({f"test/{k}/{q}": m["test"][q]["mean"] for q in ("mse", "psnr", "ssim")})
        run.finish()
    except Exception as exc:  # noqa: BLE001 - W&B never fails the report
        warnings.warn(f"W&B logging of the report failed: {type(exc).__name__}: {exc}", stacklevel=2)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``python -m tuneae.report``."""
    p = argparse.ArgumentParser(prog="python -m tuneae.report", description=(
        "Report a finished search: reload each model's best trial from its checkpoint, measure it on the held-out "
        "test split (reconstruction, denoising against classical methods, feature maps, VAE samples) and write "
        "report.md, metrics.json, CSV tables and figures."))
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
