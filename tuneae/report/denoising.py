"""Denoising on the test images: every learned model and every classical method, under every noise protocol.

Per noise protocol (:mod:`tuneae.noise.PROTOCOLS`: ``awgn``, the primary, ``clipped8`` and ``rician``; the classical
methods bias-corrected under the last two, see :mod:`tuneae.classical`) and sigma: seeded noise on the
test images and on the validation subset; each classical method tuned on the validation subset
(:func:`tuneae.classical.tune`, interior grids); every method's per-image metrics on the test images and its mean
PSNR on the validation subset, which alone decides the best learned model and the classical comparator
(:func:`tuneae.report.statistics.select_best`); then paired differences learned - comparator with intervals, overall
and per class.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tuneae.classical import METHODS, Tuned, denoise, tune
from tuneae.metrics import image_metrics, psnr
from tuneae.noise import eval_noisy
from tuneae.report.metrics import predict, spread
from tuneae.report.statistics import difference, select_best

NO_TUMOUR = ("no_tumor", "phantom_no_lesion")
"""Class names without a lesion (the comparison class of the per-class denoising analysis)."""


@dataclass(frozen=True)
class SigmaResult:
    """Every denoiser at one noise protocol and sigma.

    Attributes:
        test: method (``noisy``, each model kind, each classical method) -> ``{"mse", "psnr", "ssim"}``, each (N,)
            per test image (PSNR in dB, SSIM as Wang et al. 2004).
        val_psnr: method -> mean PSNR (dB) on the validation subset: the selection score.
        tuned: classical method -> its :class:`tuneae.classical.Tuned` (factor, grid scores, interior).
        example: method -> (S, S) output on the first test image shown in the figures.
    """

    test: dict[str, dict[str, np.ndarray]]
    val_psnr: dict[str, float]
    tuned: dict[str, Tuned]
    example: dict[str, np.ndarray]


def run_sigma(models: dict, clean: torch.Tensor, val_clean: torch.Tensor, sigma: float, protocol: str, seed: int,
              shown: int = 0, workers: int = 1, bar=None) -> SigmaResult:
    """Every denoiser's output at one noise level under one protocol, measured on test and validation images.

    Args:
        models: kind -> (model, payload).
        clean: test images (N, 1, S, S) in [0, 1]; val_clean: validation images (K, 1, S, S), K >= 1, which tune
            the classical methods (``Method.tune_images`` of them, spread) and score every method for selection.
        sigma, protocol, seed: the noise (:func:`tuneae.noise.eval_noisy`; test and validation noise differ).
        shown: index of the test image kept in ``example``.
        workers: processes for the classical methods (see :func:`tuneae.classical.denoise`).
        bar: a tqdm bar advanced once per model and per classical method.
    Returns:
        The :class:`SigmaResult`.
    """
    noisy = eval_noisy(clean, sigma, protocol, seed, "test")  # (N, 1, S, S)
    val_noisy = eval_noisy(val_clean, sigma, protocol, seed, "val")  # (K, 1, S, S)
    c, vc = clean[:, 0].numpy(), val_clean[:, 0].numpy()  # (N, S, S), (K, S, S)
    n, vn = noisy[:, 0].numpy(), val_noisy[:, 0].numpy()
    test, val_psnr, tuned, example = {"noisy": image_metrics(n, c)}, {"noisy": float(psnr(vn, vc).mean())}, {}, {}
    example["noisy"] = n[shown]
    for kind, (model, _) in models.items():
        out = predict(model, noisy)[:, 0].numpy()
        test[kind], example[kind] = image_metrics(out, c), out[shown]
        val_psnr[kind] = float(psnr(predict(model, val_noisy)[:, 0].numpy(), vc).mean())
        if bar is not None:
            bar.update()
    for name, method in METHODS.items():
        sub = spread(len(vc), method.tune_images)
        tuned[name] = tune(name, vc[sub], vn[sub], sigma, protocol, strict=False, workers=workers)
        factor = tuned[name].factor
        val_psnr[name] = float(psnr(denoise(name, vn, sigma, factor, protocol, workers), vc).mean())
        out = denoise(name, n, sigma, factor, protocol, workers, progress=True)
        test[name], example[name] = image_metrics(out, c), out[shown]
        if bar is not None:
            bar.update()
    return SigmaResult(test, val_psnr, tuned, example)


def selection(r: SigmaResult, learned: list[str]) -> dict:
    """The best learned model and the classical comparator of one sigma, both by mean validation PSNR.

    Returns:
        ``{"best_learned": kind | None, "comparator": method | None, "val_psnr": {method: dB}}``.
    """
    return {"best_learned": select_best(r.val_psnr, learned), "comparator": select_best(r.val_psnr, METHODS),
            "val_psnr": {k: round(v, 3) for k, v in r.val_psnr.items()}}


def comparisons(r: SigmaResult, learned: list[str], comparator: str | None,
                groups: np.ndarray | None = None) -> dict[str, dict]:
    """Each learned model minus the classical comparator on the same test images: paired PSNR and SSIM differences
    with 95% bootstrap intervals and verdicts (:func:`tuneae.report.statistics.difference`).

    Args:
        r: one sigma's result; learned: the learned kinds; comparator: the classical comparator, or None.
        groups: (N,) scan group of each test image: the intervals resample whole groups (None: images).
    Returns:
        ``{kind: {"psnr": difference, "ssim": difference}}`` (empty without a comparator).
    """
    if comparator is None:
        return {}
    return {k: {q: difference(r.test[k][q], r.test[comparator][q], k, comparator, groups=groups)
                for q in ("psnr", "ssim")} for k in learned}


def references(r: SigmaResult, learned: list[str], names: tuple[str, ...],
               groups: np.ndarray | None = None) -> dict[str, dict[str, dict]]:
    """Each learned model minus each named reference method (a classical method such as ``bm3d``, or a learned
    kind such as ``dncnn``) that this sigma measured, paired over the test images (:func:`comparisons`), whichever
    the comparator is: the references the margin targets name (:mod:`tuneae.report.versus`); ``groups`` as
    :func:`comparisons`.

    Returns:
        ``{reference: {kind: {"psnr": difference, "ssim": difference}}}``, a reference never against itself;
        references not in ``r.test`` are left out.
    """
    return {ref: comparisons(r, [k for k in learned if k != ref], ref, groups) for ref in names if ref in r.test}


MIN_UNITS = 15
"""Fewer independent scan groups than this behind an interval (or one group holding most of its images) make the
cluster bootstrap's percentile interval unreliable: with G groups, (1 - 1/G)**G of the resamples leave any one
group out, so a dominant group makes the resampled means bimodal; such intervals are flagged ``few_units``."""
MAX_GROUP_SHARE = 0.5
"""A group holding more than this share of an interval's images flags it ``few_units`` whatever the group count."""


def units(groups: np.ndarray | None) -> dict[str, Any]:
    """The independent units behind an interval over images with these scan groups (N,): ``{"groups": distinct
    groups, "largest_share": the largest group's share of the images, "few_units": fewer than MIN_UNITS groups or a
    share above MAX_GROUP_SHARE}``; {} without groups."""
    if groups is None or len(groups) == 0:
        return {}
    _, counts = np.unique(np.asarray(groups), return_counts=True)
    share = float(counts.max() / counts.sum())
    return {"groups": len(counts), "largest_share": share,
            "few_units": bool(len(counts) < MIN_UNITS or share > MAX_GROUP_SHARE)}


def few_units_note(u: dict | None) -> str:
    """The note on a comparison whose sides (``{side: units(...)}``, e.g. tumour / no_tumour) rest on few scan
    groups: ``"; FEW UNITS (<side> G scan groups, largest S%, ...): descriptive only"``; empty when none does."""
    few = [f"{side.replace('_', '-')} {v['groups']} scan groups, largest {v['largest_share']:.0%}"
           for side, v in (u or {}).items() if v.get("few_units")]
    return f"; FEW UNITS ({', '.join(few)}): descriptive only" if few else ""


def class_gaps(r: SigmaResult, labels: np.ndarray, classes: tuple[str, ...], methods: list[str],
               sel: dict, groups: np.ndarray | None = None) -> dict:
    """Per class: each method's PSNR gain over the noisy input and the paired difference best learned - comparator
    (the pair chosen on validation); then the same difference pooled over the tumour classes and over the no-tumour
    class(es), and tumour minus no-tumour (two groups of images: unpaired).

    Args:
        r: one sigma's result; labels: (N,) class index per test image; classes: class names.
        methods: every learned and classical method; sel: :func:`selection` of this sigma.
        groups: (N,) scan group of each test image: each interval resamples the groups of its images (None:
            images).
    Returns:
        ``{"per_class": {class: {"n", :func:`units` of its images, "noisy_psnr", "gain": {method: dB},
        "best_learned", "best_classical", "learned_minus_classical": difference}}, "groups": {"tumour", "no_tumour",
        "tumour_minus_no_tumour": difference | None, "tumour_classes", "no_tumour_classes", "units": {"tumour",
        "no_tumour"}}}``; empty without a learned model or comparator.
    """
    best, comp = sel["best_learned"], sel["comparator"]
    if best is None or comp is None:
        return {}
    d = r.test[best]["psnr"] - r.test[comp]["psnr"]  # (N,) dB
    g = None if groups is None else np.asarray(groups)

    def of(mask):  # the groups of a subset of the images, or None
        return None if g is None else g[mask]

    per_class = {}
    for i, c in enumerate(classes):
        mask = labels == i
        if not mask.any():
            continue
        base = float(r.test["noisy"]["psnr"][mask].mean())
        per_class[c] = {"n": int(mask.sum()), **units(of(mask)), "noisy_psnr": base,
                        "gain": {m: float(r.test[m]["psnr"][mask].mean()) - base for m in methods},
                        "best_learned": best, "best_classical": comp,
                        "learned_minus_classical": difference(r.test[best]["psnr"][mask], r.test[comp]["psnr"][mask],
                                                              best, comp, groups=of(mask))}
    sick = np.isin(labels, [i for i, c in enumerate(classes) if c not in NO_TUMOUR])
    healthy = np.isin(labels, [i for i, c in enumerate(classes) if c in NO_TUMOUR])
    groups = {"tumour_classes": [c for c in per_class if c not in NO_TUMOUR],
              "no_tumour_classes": [c for c in per_class if c in NO_TUMOUR],
              "tumour": (difference(d[sick], np.zeros(int(sick.sum())), best, comp, groups=of(sick))
                         if sick.any() else None),
              "no_tumour": (difference(d[healthy], np.zeros(int(healthy.sum())), best, comp, groups=of(healthy))
                            if healthy.any() else None),
              "units": {"tumour": units(of(sick)), "no_tumour": units(of(healthy))},
              "tumour_minus_no_tumour": (difference(d[sick], d[healthy], "tumour classes", "no-tumour class",
                                                    paired=False, groups=None if g is None else (g[sick], g[healthy]))
                                         if sick.any() and healthy.any() else None)}
    return {"per_class": per_class, "groups": groups}


__all__ = ["MAX_GROUP_SHARE", "MIN_UNITS", "NO_TUMOUR", "SigmaResult", "class_gaps", "comparisons",
           "few_units_note", "references", "run_sigma", "selection", "units"]
