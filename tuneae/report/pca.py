"""PCA at each bottleneck model's code size in the report: the linear baseline a learned code must beat.

For every bottleneck model of the report (ae / vae / dae, whose only path is the ``latent_dim`` code), PCA with
k = its ``latent_dim`` components (:mod:`tuneae.pca`, exact SVD) is fitted on the run's TRAINING split only, the
images the models trained on, and reconstructs the report's clean test images. The model beats PCA only where the
95% bootstrap interval of the paired per-image difference model - PCA excludes 0 (:func:`statistics.difference`);
where the kind has a final fit, each training seed's mean test PSNR minus PCA's gives a t-interval over seeds
(:func:`statistics.seed_interval`; PCA is deterministic and the test images fixed), and each seed's own paired
difference over images its bootstrap interval (the margin target's "a paired interval excluding 0 in every seed").

k is capped at ``n_train - 1`` (the variance-carrying components of ``n_train`` centred images,
:func:`tuneae.pca.max_components`); a capped row says so.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from tuneae.metrics import image_metrics
from tuneae.models import BOTTLENECK
from tuneae.pca import fit_pca, max_components
from tuneae.report.metrics import summarise
from tuneae.report.statistics import difference, fmt_interval, seed_interval
from tuneae.report.tables import fmt_stat, md_table

METHOD = ("PCA-k (Pearson 1901): exact SVD of the centred training images (scikit-learn, svd_solver='full'), "
          "each test image projected onto the first k components and back, clipped to [0, 1]; k = the model's "
          "latent_dim")
"""How metrics.json names the method."""


def label(k: int) -> str:
    """The row name of PCA with ``k`` components: ``pca-<k>``."""
    return f"pca-{k}"


def _seed_diffs(entry: dict | None, pca_test: dict[str, np.ndarray], names: tuple[str, str],
                images: dict[int, np.ndarray] | None = None,
                groups: np.ndarray | None = None) -> dict[str, Any] | None:
    """Each final-fit seed's mean test PSNR / SSIM minus PCA's on the same images, with a t-interval over seeds;
    with the seeds' per-image PSNR (``images``: seed -> (N,) dB), also each seed minus PCA paired over images
    (``"paired"``: one :func:`statistics.difference` per seed, with its ``seed``; ``groups``: (N,) scan group of each
    test image, resampled whole)."""
    if not entry or not entry.get("seeds"):
        return None
    seeds = entry["seeds"]
    out = {"seeds": [r["seed"] for r in seeds],
           **{q: seed_interval([r["test"][q] - float(pca_test[q].mean()) for r in seeds]) for q in ("psnr", "ssim")}}
    if images and all(r["seed"] in images for r in seeds):
        out["paired"] = [{"seed": r["seed"], **difference(images[r["seed"]], pca_test["psnr"],
                                                          f"{names[0]} seed {r['seed']}", names[1], groups=groups)}
                         for r in seeds]
    return out


def pca_baselines(models: dict[str, dict], per_image: dict[str, dict[str, np.ndarray]], train: np.ndarray,
                  clean: np.ndarray, labels: np.ndarray, classes: tuple[str, ...],
                  seeds: dict[str, Any] | None = None,
                  seed_images: dict[str, dict[int, np.ndarray]] | None = None,
                  groups: np.ndarray | None = None) -> dict[str, Any]:
    """PCA at each bottleneck model's code size, measured and compared on the report's test images.

    Args:
        models: the report's ``models`` (kind -> entry with ``model_config.latent_dim``); non-bottleneck kinds are
            skipped.
        per_image: kind -> the model's per-image clean-test ``psnr`` (dB) and ``ssim``, (N,) each, in the order of
            ``clean``.
        train: the training split the models were fitted on, (M, 1, S, S) floats in [0, 1].
        clean: the test images, (N, S, S) floats in [0, 1].
        labels: (N,) class index of each test image.
        classes: class names.
        seeds: the report's ``finalfit`` (:func:`tuneae.report.seeds.seed_metrics`), or None.
        seed_images: kind -> seed -> that final-fit seed's per-image clean-test PSNR (dB, (N,), in the order of
            ``clean``; ``seed_metrics``' ``images``), or None.
        groups: (N,) scan group of each test image: every interval over images resamples whole groups (None:
            images).
    Returns:
        ``{"method", "train_images", "codes": {k: {"components", "capped", "kinds", "test": summarise(mse, psnr,
        ssim)}}, "vs": {kind: {"k", "pca": label, "psnr", "ssim": paired difference model - PCA over images
        (:func:`statistics.difference`), "over_seeds": {"seeds", "psnr", "ssim": seed_interval of per-seed
        differences, "paired": [{"seed", **statistics.difference}: that seed minus PCA paired over images] where
        ``seed_images`` has every seed} or None}}}``; ``codes`` and ``vs`` are empty without a bottleneck model. PSNR
        in dB.
    """
    kinds = [k for k in models if k in BOTTLENECK and k in per_image]
    out: dict[str, Any] = {"method": METHOD, "train_images": len(train), "codes": {}, "vs": {}}
    if not kinds:
        return out
    cap = max_components(len(train), int(np.prod(train.shape[1:])))
    wanted = {kind: int(models[kind]["model_config"]["latent_dim"]) for kind in kinds}
    basis = fit_pca(train, min(max(wanted.values()), cap), solver="full")
    tests: dict[int, dict[str, np.ndarray]] = {}
    for kind, k in wanted.items():
        if k not in tests:
            used = min(k, cap)
            tests[k] = image_metrics(basis.reconstruct(clean, used), clean)
            out["codes"][str(k)] = {"components": used, "capped": used < k, "kinds": [],
                                    "test": summarise(tests[k], labels, classes, groups)}
        out["codes"][str(k)]["kinds"].append(kind)
        out["vs"][kind] = {"k": k, "pca": label(k),
                           **{q: difference(per_image[kind][q], tests[k][q], kind, label(k), groups=groups)
                              for q in ("psnr", "ssim")},
                           "over_seeds": _seed_diffs((seeds or {}).get(kind), tests[k], (kind, label(k)),
                                                     (seed_images or {}).get(kind), groups)}
    return out


def pca_table_rows(pca: dict[str, Any]) -> list[list[str]]:
    """Rows of PCA for the report's reconstruction table (its columns: model, trial, MSE, PSNR, SSIM, val PSNR and
    three reload-check cells, which PCA has not)."""
    n, rows = pca.get("train_images"), []
    for k, c in (pca.get("codes") or {}).items():
        capped = f", capped at {c['components']} components" if c["capped"] else ""
        rows.append([label(int(k)), f"fit on {n} training images{capped} (code of {', '.join(c['kinds'])})",
                     fmt_stat(c["test"]["mse"], 5), fmt_stat(c["test"]["psnr"], 2), fmt_stat(c["test"]["ssim"]),
                     "-", "-", "-", "-"])
    return rows


def pca_markdown(pca: dict[str, Any]) -> list[str]:
    """The "learned code vs PCA" lines under the reconstruction table (empty without a bottleneck model)."""
    vs = (pca or {}).get("vs") or {}
    if not vs:
        return []
    rows = []
    for kind, v in vs.items():
        s = v.get("over_seeds")
        each = ([f"seed {d['seed']}: {fmt_interval(d, signed=True)}" for d in s["paired"]] if s and s.get("paired")
                else [f"{d:+.2f}" for d in s["psnr"]["per_seed"]] if s else [])
        seeds = "-" if not s else ", ".join(each) + "; mean " + fmt_interval(s["psnr"], signed=True)
        rows.append([f"{kind} - {v['pca']}", fmt_interval(v["psnr"], signed=True),
                     fmt_interval(v["ssim"], 3, signed=True), v["psnr"]["verdict"], seeds])
    return [f"Learned code minus PCA with as many components as the code has numbers (PCA fitted on the "
            f"{pca['train_images']} training images only, the images the models trained on; exact SVD). Paired per "
            "test image (the reported model: the best-validation seed where there is a final fit), and per final-fit "
            "seed (each seed's mean test PSNR minus PCA's, with its paired interval over images where measured, and "
            "the mean with a t-interval over the seeds where there are two or more). A model beats PCA only where "
            "the interval excludes 0:", "",
            md_table(["difference", "PSNR (dB), paired over images", "SSIM", "PSNR verdict",
                      "PSNR per final-fit seed (dB)"], rows), ""]


__all__ = ["METHOD", "label", "pca_baselines", "pca_markdown", "pca_table_rows"]
