"""The final fit's learning curves, and what they say about a target that was not reached: would more epochs of the
same configuration reach it?

A validation-PSNR curve of a fixed configuration at a constant learning rate rises roughly linearly in log(epochs)
late in training, by a gain per doubling that shrinks as it goes (the power-law learning curves of Hestness et al.
2017, "Deep Learning Scaling is Predictable, Empirically", in the epoch dimension). This module fits that gain on the
second half of the curve (``scipy.stats.linregress`` of the seed-mean validation PSNR on log2(epoch)) and turns a gap
in dB into the epochs it would take at that gain: ``epochs_now * 2 ** (gap / gain)``, with the range the seeds' own
slopes give. It is an extrapolation, not a bound: the gain per doubling usually shrinks (more epochs needed), a noisy
curve can hide a steeper one (fewer), and the fitting window matters; read it as an order of magnitude.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from tuneae.models import DENOISING
from tuneae.report.plots import _figure, _save

MIN_POINTS = 3
"""Epochs needed in the fitted (second) half of a curve; shorter curves get no gain per doubling."""
HORIZON = 8
"""The figure draws each fitted line on to ``HORIZON`` x the last epoch ..."""
EXTRAPOLATE_FROM = 16
"""... for curves of at least this many epochs; a shorter curve's line stays over its fitted window (early slopes
overstate later gains: the AE's own fell from +1.2 dB per doubling over epochs 5-9 to +0.7 over 20-40 here)."""


def _series(k: dict[str, Any], key: str) -> tuple[list[int], dict[str, list[float]], np.ndarray,
                                                   dict[str, Any] | None] | None:
    """One metric's curve of one fitted configuration: the epochs every seed measured it at, per-seed values, the
    seed mean, and its gain per doubling over the second half (None with fewer than :data:`MIN_POINTS` points).
    None when no seed measured ``key``."""
    seeds = {s["seed"]: {h["epoch"]: h[key] for h in s.get("history") or [] if key in h}
             for s in k.get("seeds") or []}
    seeds = {s: h for s, h in seeds.items() if h}
    if not seeds:
        return None
    epochs = sorted(set.intersection(*(set(h) for h in seeds.values())))
    if not epochs:
        return None
    per_seed = {str(s): [float(h[e]) for e in epochs] for s, h in seeds.items()}
    mean = np.mean(list(per_seed.values()), axis=0)
    gain = None
    half = [i for i, e in enumerate(epochs) if e >= epochs[-1] / 2]
    if len(half) >= MIN_POINTS:
        x = np.log2([epochs[i] for i in half])
        fit = stats.linregress(x, mean[half])
        gain = {"db": float(fit.slope), "stderr": float(fit.stderr), "intercept": float(fit.intercept),
                "per_seed_db": [float(stats.linregress(x, np.asarray(v)[half]).slope) for v in per_seed.values()],
                "from_epoch": epochs[half[0]], "to_epoch": epochs[-1]}
    return epochs, per_seed, mean, gain


def _curve(k: dict[str, Any]) -> dict[str, Any] | None:
    """One fitted configuration's curves: validation PSNR (dB) and, where the final fit measured it, validation
    SSIM, each with its gain per doubling over the second half. None when no seed has a PSNR history."""
    psnr = _series(k, "val/psnr")
    if psnr is None:
        return None
    epochs, per_seed, mean, gain = psnr
    out = {"kind": k.get("kind"), "epochs": epochs, "val_psnr": per_seed,
           "val_psnr_mean": [float(v) for v in mean], "gain_per_doubling": gain}
    ssim = _series(k, "val/ssim")
    if ssim is not None:  # a final fit from before val/ssim was measured has none; a resumed one, its later epochs
        e, per_seed, mean, gain = ssim
        out["ssim"] = {"epochs": e, "val_ssim": per_seed, "val_ssim_mean": [float(v) for v in mean],
                       "gain_per_doubling": gain}  # "db" holds SSIM per doubling here
    return out


def learning_curves(finalfit: dict[str, Any] | None) -> dict[str, Any]:
    """Every final-fit kind's and baseline's validation-PSNR learning curve, with its gain per doubling of epochs.

    Args:
        finalfit: ``finalfit.json``'s contents (:meth:`tuneae.run.FinalFits.to_json`): ``kinds`` and ``baselines``,
            each with ``seeds`` holding a ``history`` of per-epoch metrics (``epoch``, ``val/psnr`` in dB: clean
            validation images for the bottleneck kinds, noisy ones at the run's ``val_noise_sigma`` for the
            denoisers). None: no final fit.
    Returns:
        ``{label: {"kind", "epochs": [int], "val_psnr": {seed: [dB per epoch]}, "val_psnr_mean": [dB],
        "gain_per_doubling": {"db", "stderr", "intercept", "per_seed_db", "from_epoch", "to_epoch"} | None,
        "ssim": {"epochs", "val_ssim", "val_ssim_mean", "gain_per_doubling"} (only where the seeds' histories have
        ``val/ssim``; its gain is in SSIM per doubling, under the same keys)}}`` over the epochs
        that every seed reached; ``gain_per_doubling`` is the least-squares slope (dB per doubling of epochs) of
        the seed-mean on log2(epoch) over the epochs >= half the last one, and each seed's own slope there (None with
        fewer than :data:`MIN_POINTS` of them). Empty without a final fit.
    """
    ff = finalfit or {}
    out = {}
    for label, k in {**(ff.get("kinds") or {}), **(ff.get("baselines") or {})}.items():
        c = _curve(k)
        if c is not None:
            out[label] = c
    return out


def epochs_to_close(curve: dict[str, Any], gap_db: float, unit: str = "dB") -> dict[str, Any]:
    """How many epochs the curve's gain per doubling needs to close a gap.

    Args:
        curve: one entry of :func:`learning_curves` (PSNR), or its ``"ssim"`` entry with ``unit="SSIM"``.
        gap_db: what is still missing (target minus measured), in ``unit``; <= 0 means reached.
        unit: the gap's and the gain's unit in the verdict: ``"dB"`` or ``"SSIM"``.
    Returns:
        ``{"gap_db", "epochs_now", "gain_per_doubling_db", "gain_stderr_db", "epochs_needed": float | None,
        "doublings": float | None, "verdict"}``: ``epochs_needed = epochs_now * 2 ** (gap / gain)`` (an
        extrapolation, see the module's docstring), None
        when the curve has no fitted gain or does not rise (then ``verdict`` says so); ``epochs_range`` [fastest,
        slowest] from the per-seed slopes ("never" for a slope <= 0, "over a million" for a tiny positive one) when
        there are several seeds.
    """
    now = curve["epochs"][-1]
    gain = (curve.get("gain_per_doubling") or {}).get("db")
    out = {"gap_db": float(gap_db), "epochs_now": now, "gain_per_doubling_db": gain,
           "gain_stderr_db": (curve.get("gain_per_doubling") or {}).get("stderr"), "epochs_needed": None,
           "doublings": None}
    if gap_db <= 0:
        return {**out, "epochs_needed": float(now), "doublings": 0.0, "verdict": "reached"}
    if gain is None:
        return {**out, "verdict": f"too short to fit (needs {MIN_POINTS} epochs in its second half)"}
    if gain <= 0:
        return {**out, "verdict": "no longer rising: more epochs alone will not reach it"}
    doublings = gap_db / gain
    needed = now * 2 ** min(doublings, 1000.0)
    verdict = (f"about {needed:,.0f} epochs ({needed / now:,.1f}x this fit's {now})" if needed < 1e6
               else "over a million epochs")
    seeds = list((curve.get("gain_per_doubling") or {}).get("per_seed_db") or [])
    if len(seeds) > 1:
        lo, hi = min(seeds), max(seeds)
        fast, slow = _epochs_at(now, gap_db, hi), _epochs_at(now, gap_db, lo)
        out["epochs_range"] = [fast, slow]
        prec = 2 if unit == "dB" else 4
        verdict += (f"; the seeds' own slopes ({lo:+.{prec}f} to {hi:+.{prec}f} {unit} per doubling) give {fast} "
                    f"to {slow}")
    if now < EXTRAPOLATE_FROM:
        verdict += f" (from a curve of only {now} epochs: early slopes overstate later gains, so more than that)"
    return {**out, "epochs_needed": float(needed) if math.isfinite(needed) else None, "doublings": float(doublings),
            "verdict": verdict}


def _epochs_at(now: int, gap: float, gain: float) -> str:
    """The epochs one slope needs, as text: "never" only for a slope <= 0 (a curve that does not rise), "over a
    million" for a tiny positive one."""
    if gain <= 0:
        return "never"
    doublings = gap / gain
    return f"{now * 2 ** doublings:,.0f}" if doublings < math.log2(1e6 / now) else "over a million"


def _panel(ax, curves: dict[str, Any], kind: str, gaps: dict[str, float], metric: str) -> None:
    """One kind's panel of :func:`plot_learning_curves` for ``metric`` ("psnr" or "ssim")."""
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]
    unit = "dB" if metric == "psnr" else "SSIM"
    for j, (label, c) in enumerate((lb, c) for lb, c in curves.items() if c["kind"] == kind):
        col = colours[j % len(colours)]
        c = c if metric == "psnr" else c.get("ssim")
        if not c:
            continue
        for ys in c[f"val_{metric}"].values():
            ax.plot(c["epochs"], ys, color=col, lw=0.7, alpha=0.45)
        mean = c[f"val_{metric}_mean"]
        ax.plot(c["epochs"], mean, color=col, lw=2, label=f"{label} (mean of {len(c[f'val_{metric}'])})")
        g = c.get("gain_per_doubling")
        if g:
            x = np.geomspace(g["from_epoch"], g["to_epoch"] * (HORIZON if g["to_epoch"] >= EXTRAPOLATE_FROM else 1),
                             30)
            ax.plot(x, g["intercept"] + g["db"] * np.log2(x), color=col, ls="--", lw=1,
                    label=f"{g['db']:+.{2 if metric == 'psnr' else 4}f} {unit} per doubling")
        if gaps.get(label, 0) > 0:
            ax.axhline(mean[-1] + gaps[label], color=col, ls=":", lw=1.2,
                       label=f"needed (+{gaps[label]:.{2 if metric == 'psnr' else 3}f} {unit})")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"validation {'PSNR (dB)' if metric == 'psnr' else 'SSIM'}")
    ax.set_title(kind)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def plot_learning_curves(curves: dict[str, Any], gaps: dict[str, float], path: Path,
                         ssim_gaps: dict[str, float] | None = None) -> str | None:
    """One panel per kind: each seed's validation PSNR per epoch (thin), the seed mean (bold), the fitted gain per
    doubling drawn on to :data:`HORIZON` x the last epoch (dashed; over its window only for curves shorter than
    :data:`EXTRAPOLATE_FROM` epochs), and, where a target was missed, the level the
    mean must reach (the test gap added to its last value; dotted). Baselines share their kind's panel. A second
    row shows validation SSIM the same way where the final fit measured it.

    Args:
        curves: :func:`learning_curves`' result.
        gaps: label -> dB missing to its target (only the labels judged by a target).
        path: the PNG to write (atomically).
        ssim_gaps: label -> SSIM missing to its target (the SSIM row's dotted line).
    Returns:
        The file name, or None when there is no curve.
    """
    if not curves:
        return None
    kinds = list(dict.fromkeys(c["kind"] for c in curves.values()))
    with_ssim = [k for k in kinds if any(c.get("ssim") for c in curves.values() if c["kind"] == k)]
    fig, axes = _figure(2 if with_ssim else 1, len(kinds), 4.2, 3.2)
    for i, kind in enumerate(kinds):
        _panel(axes[0][i], curves, kind, gaps, "psnr")
        if with_ssim:
            if kind in with_ssim:
                _panel(axes[1][i], curves, kind, ssim_gaps or {}, "ssim")
            else:
                axes[1][i].axis("off")
    fig.tight_layout()
    return _save(fig, path)


def add_more_epochs(entry: dict | None, label: str | None, curves: dict[str, Any], proxy: str = "") -> None:
    """Add ``more_epochs`` (:func:`tuneae.report.curves.epochs_to_close`) to a missed target whose model has a
    final-fit learning curve; ``proxy`` says when the curve measures something else than the target."""
    if entry is None or entry["met"] or label not in curves:
        return
    entry["more_epochs"] = {**epochs_to_close(curves[label], entry["gap_db"]), "curve": label,
                            **({"proxy": proxy} if proxy else {})}


def clean_proxy(m: dict, best: str | None) -> str:
    """The proxy note of a clean-input target judged on ``best``: a dae is judged on clean input, but its
    validation curve is measured on noisy input."""
    if best not in DENOISING:
        return ""
    sigma = (m["models"][best].get("train_config") or {}).get("val_noise_sigma", 0.1)
    return f"the curve is measured on noisy validation input at sigma {sigma:g}, the target on clean"


def sigma_proxy(m: dict, label: str, sigma: str) -> str:
    """The proxy note of a denoising target at ``sigma`` judged on ``label``, whose validation curve is measured at
    its own validation noise."""
    val_sigma = ((m.get("models") or {}).get(label, {}).get("train_config") or {}).get("val_noise_sigma")
    return ("" if val_sigma is None or f"{val_sigma:g}" == sigma else
            f"the curve is validation PSNR at sigma {val_sigma:g}, the model's validation noise")


__all__ = ["EXTRAPOLATE_FROM", "HORIZON", "MIN_POINTS", "add_more_epochs", "clean_proxy", "epochs_to_close",
           "learning_curves", "plot_learning_curves", "sigma_proxy"]
