"""The project's targets, kept apart from the library code: what a report's measured numbers are judged against.

Two sets, each target its own entry and row. The fixed targets (this module): the best learned denoiser's test PSNR
per sigma (:data:`DENOISING_TARGETS_DB`, raised to the classical comparator + :data:`TARGET_MARGIN_DB`), and the best
bottleneck model's clean test PSNR / SSIM (:data:`RECONSTRUCTION_TARGET`) and its difference to PCA at its code size
(> 0). The margin targets, "a search that finds better models than the default recipe, PCA and BM3D"
(:mod:`tuneae.report.versus`): the best bottleneck model >= PCA + 1 dB with every seed's paired interval excluding 0;
the best learned denoiser >= BM3D + 0.5 dB at sigma 0.1 and 0.2, and the best one other than DnCNN >= DnCNN; each
kind's found configuration above the default recipe at equal budget; and, where one is missed, the learning curve
and the gpu commands that would settle it.

Every model or method judged here was chosen on VALIDATION images (the report's ``selection`` and each model's
``val`` entry), never on test; every test number carries its 95% interval (bootstrap over images, or t over
final-fit seeds), and a status says ``(clearly)`` only when the whole interval lies on that side of the target. The
denoising targets are judged under the primary noise protocol (AWGN, :data:`tuneae.noise.PRIMARY`).
"""
from __future__ import annotations

from typing import Any

from tuneae.models import BOTTLENECK
from tuneae.noise import PRIMARY
from tuneae.report.curves import add_more_epochs, clean_proxy, epochs_to_close, sigma_proxy
from tuneae.report.denoising import NO_TUMOUR, few_units_note
from tuneae.report.statistics import (
    MIN_SEEDS,
    excludes_0_status,
    final_seeds,
    fmt_interval,
    seed_interval,
    select_best,
    threshold_status,
)
from tuneae.report.tables import md_table
from tuneae.report.versus import (
    BM3D_MARGIN_DB,
    ISSUE_SIGMAS,
    PCA_MARGIN_DB,
    bm3d_target,
    dncnn_target,
    gpu_commands,
    gpu_markdown,
    pca_margin,
    recipe_targets,
    versus_rows,
)

DENOISING_TARGETS_DB: dict[float, float] = {0.1: 28.3, 0.2: 24.0}
"""Project targets for the best learned denoiser, test PSNR in dB per sigma: the best scikit-image method measured
on this test set when the targets were set (TV Chambolle, 26.3 / 22.0 dB, with the weight chosen on training
images) + 2 dB."""
TARGET_MARGIN_DB = 1.0
"""Margin over the classical comparator of this report (the best learned denoiser >= BM3D + 1 dB, paired interval
excluding 0): a target rises to ``comparator + margin`` when that is above the fixed one; it is then judged
on the paired difference learned - comparator, whose mean must reach the margin and whose interval must exclude 0."""
RECONSTRUCTION_TARGET = {"psnr": 26.0, "ssim": 0.75, "max_latent_dim": 2048}
"""Project target for the best bottleneck model (no skip connections, latent dimension <= 2048) on clean test
images: PSNR in dB and SSIM (the seed project's setting, an AE trained 40 epochs, measured 21.7 dB /
0.58)."""

__all__ = ["DENOISING_TARGETS_DB", "MIN_SEEDS", "NO_TUMOUR", "RECONSTRUCTION_TARGET", "TARGET_MARGIN_DB",
           "check_targets", "target_gaps", "targets_markdown"]


def _basis(m: dict, kind: str, seeds: list[dict] | None) -> dict[str, Any]:
    """What a target's headline is: the mean over the final fit's seeds (a t-interval over seeds) or one run (a
    bootstrap interval over test images)."""
    if seeds:
        return {"basis": "seed mean", "n_seeds": len(seeds), "interval": "t over seeds",
                "best_seed": (m.get("finalfit") or {}).get(kind, {}).get("best_seed")}
    return {"basis": "single run", "n_seeds": 1, "interval": "bootstrap over images", "best_seed": None}


def _denoising_target(m: dict, key: str, fixed: float) -> dict | None:
    """One sigma's denoising target: the validation-chosen learned model's test PSNR against
    max(fixed, comparator + margin), the difference learned - comparator, and the class condition; judged on the
    mean over final-fit seeds where the model has them (:data:`MIN_SEEDS`), else on the one run."""
    res = m["denoising"].get(PRIMARY, {}).get(key)
    sel = m.get("selection", {}).get(PRIMARY, {}).get(key, {})
    learned, classical = sel.get("best_learned"), sel.get("comparator")
    if res is None or learned is None or classical is None:
        return None
    target = max(fixed, res[classical]["psnr"]["mean"] + TARGET_MARGIN_DB)
    diff = m.get("comparisons", {}).get(PRIMARY, {}).get(key, {}).get(learned, {}).get("psnr")
    seeds = final_seeds(m, learned, key)
    psnr, headline_diff = res[learned]["psnr"], diff
    if seeds:  # the comparator is deterministic and the noisy test images the same for every seed
        psnr = seed_interval([r["denoising"][key] for r in seeds])
        headline_diff = seed_interval([r["denoising"][key] - res[classical]["psnr"]["mean"] for r in seeds])
    # where the comparator sets the target, judge the difference learned - comparator against the margin:
    # the learned model's own interval alone would ignore the comparator's uncertainty
    by_margin = diff is not None and res[classical]["psnr"]["mean"] + TARGET_MARGIN_DB >= fixed
    judged, threshold = (headline_diff, TARGET_MARGIN_DB) if by_margin else (psnr, fixed)
    status = threshold_status(judged, threshold)
    # the interval of learned - comparator must exclude 0 whichever target is the higher
    excludes_0 = headline_diff is None or (headline_diff.get("low") is not None and headline_diff["low"] > 0)
    if status.startswith("met") and not excludes_0:
        status = "not met (interval includes 0)"
    # over seeds the t-interval sees only the seeds' spread on fixed test images: the seed mean paired over images
    # (cluster bootstrap over scan groups) must exclude 0 as well
    paired = (((m.get("finalfit") or {}).get(learned) or {}).get("seed_mean_paired") or {}).get(key, {}).get(
        classical) if seeds else None
    if paired is not None and (paired.get("low") is None or paired["low"] <= 0):
        excludes_0 = False
        if status.startswith("met"):
            status = "not met (the seed mean paired over images includes 0: too few independent scans)"
    groups = m.get("denoising_classes", {}).get(PRIMARY, {}).get(key, {}).get("groups", {})
    gap = groups.get("tumour_minus_no_tumour")
    no_worse = None if gap is None else gap["mean"] >= 0
    return {
        "best_learned": learned, "psnr": res[learned]["psnr"], "best_classical": classical,
        "classical_psnr": res[classical]["psnr"], "target": target,
        "headline": {**_basis(m, learned, seeds), "psnr": psnr, "learned_minus_classical": headline_diff},
        "met": judged["mean"] >= threshold and excludes_0, "status": status,
        "gap_db": max(0.0, threshold - judged["mean"]),
        "judged_on": "paired difference >= margin" if by_margin else "test PSNR >= fixed target",
        "learned_minus_classical": diff, "seed_mean_paired": paired,
        "chosen_on": "validation", "healthy_classes": groups.get("no_tumour_classes", []),
        "tumour_minus_classical": groups.get("tumour"), "no_tumour_minus_classical": groups.get("no_tumour"),
        "tumour_minus_no_tumour": gap, "tumour_classes_no_worse": no_worse,
        "tumour_status": None if gap is None else threshold_status(gap, 0.0) + few_units_note(groups.get("units"))}


def _vs_pca(m: dict, best: str) -> dict | None:
    """The best bottleneck model minus PCA at its code size (:mod:`tuneae.report.pca`): the mean over final-fit
    seeds with its t-interval where there are ``MIN_SEEDS``, else the paired difference over images."""
    v = ((m.get("pca") or {}).get("vs") or {}).get(best)
    if not v:
        return None
    seeds = v.get("over_seeds")
    on_seeds = seeds is not None and seeds["psnr"]["n"] >= MIN_SEEDS
    headline = seeds["psnr"] if on_seeds else v["psnr"]
    return {"pca": v["pca"], "k": v["k"], "headline": headline, "paired_over_images": v["psnr"],
            "basis": "seed mean" if on_seeds else "single run", "n_seeds": seeds["psnr"]["n"] if on_seeds else 1,
            "interval": "t over seeds" if on_seeds else "bootstrap over images",
            "met": headline.get("low") is not None and headline["low"] > 0, "status": excludes_0_status(headline)}


def _reconstruction_target(m: dict) -> dict | None:
    """The bottleneck model (latent <= the target's) with the best validation PSNR on clean images, judged on its
    test PSNR and SSIM (the mean over final-fit seeds where it has ``MIN_SEEDS``, else the one run), and against
    PCA at its code size."""
    goal, models = RECONSTRUCTION_TARGET, m["models"]
    eligible = [k for k in models
                if k in BOTTLENECK and models[k]["model_config"]["latent_dim"] <= goal["max_latent_dim"]]
    best = select_best({k: (models[k].get("val") or {}).get("psnr") for k in eligible}, eligible)
    if best is None:
        return None
    t = models[best]["test"]
    seeds = final_seeds(m, best)
    h = ({q: seed_interval([r["test"][q] for r in seeds]) for q in ("psnr", "ssim")} if seeds
         else {q: t[q] for q in ("psnr", "ssim")})
    met = h["psnr"]["mean"] >= goal["psnr"] and h["ssim"]["mean"] >= goal["ssim"]
    # also above the seed project's recipe trained on the same split: each baseline of the kind in the final fit,
    # fitted with the same seeds (python -m tuneae.finalfit --baseline), by the t-interval over the per-seed
    # differences
    above = {label: {"trial": s.get("source_trial"), **s["vs_best"]["over_seeds"],
                     "status": threshold_status(s["vs_best"]["over_seeds"], 0.0)}
             for label, s in (m.get("finalfit") or {}).items()
             if s.get("kind") == best and label != best and "over_seeds" in s.get("vs_best", {})}
    return {"best_bottleneck": best, "chosen_on": "validation", "val_psnr": models[best]["val"]["psnr"],
            "psnr": t["psnr"], "ssim": t["ssim"], "target_psnr": goal["psnr"], "target_ssim": goal["ssim"],
            "headline": {**_basis(m, best, seeds), **h}, "vs_pca": _vs_pca(m, best),
            "pca_margin": pca_margin(m, best), "above_baselines": above,
            "met": met, "gap_db": max(0.0, goal["psnr"] - h["psnr"]["mean"]),
            "gap_ssim": max(0.0, goal["ssim"] - h["ssim"]["mean"]),
            "status": {"psnr": threshold_status(h["psnr"], goal["psnr"]),
                       "ssim": threshold_status(h["ssim"], goal["ssim"])}}


def target_gaps(t: dict[str, Any]) -> dict[str, float]:
    """label -> the largest dB gap of any missed target judged on that model (for the learning-curve figure): the
    fixed targets and the margins over PCA and BM3D (not those over a trained reference, DnCNN or the
    recipe, which more epochs would also train)."""
    gaps: dict[str, float] = {}
    entries = [(d["best_learned"], d) for d in t["denoising"].values()]
    if t.get("reconstruction"):
        entries.append((t["reconstruction"]["best_bottleneck"], t["reconstruction"]))
        p = t["reconstruction"].get("pca_margin") or {}
        if p.get("measured"):
            entries.append((p["learned"], p))
    entries += [(e["learned"], e) for e in (t.get("vs_bm3d") or {}).values() if e["measured"]]
    for label, d in entries:
        if not d["met"]:
            gaps[label] = max(gaps.get(label, 0.0), d["gap_db"])
    return gaps


def check_targets(m: dict[str, Any]) -> dict[str, Any]:
    """Compare a report's measured test numbers with the project's targets.

    Denoising, per sigma of ``DENOISING_TARGETS_DB`` that the report measured under the primary protocol: the
    learned model with the best validation PSNR (``m["selection"]``), its mean test PSNR (dB, with interval) against
    the target, raised to the comparator's test PSNR + ``TARGET_MARGIN_DB`` where that is higher (the comparator:
    the classical method with the best validation PSNR; then the status is the paired difference learned -
    comparator, with its interval, against the margin, so the comparator's own uncertainty counts); and
    whether the tumour classes fare no worse than the
    no-tumour class relative to the comparator: the per-image PSNR difference learned - comparator pooled over the
    tumour classes minus the same over the no-tumour class(es), >= 0 (with its unpaired bootstrap interval).
    Reconstruction (``RECONSTRUCTION_TARGET``): the bottleneck model (ae / vae / dae, latent dimension <= 2048)
    with the best validation PSNR on clean images, met when its test PSNR and SSIM means reach both values; and
    that model minus PCA at its code size (``m["pca"]``), met only where the interval excludes 0.

    The margin targets (:mod:`tuneae.report.versus`, each its own entry): (1) the same bottleneck model minus PCA
    at its code size >= ``PCA_MARGIN_DB`` (1 dB) by the headline mean, with every final-fit seed's paired interval
    over images (the reported run's without a final fit) above 0 (``reconstruction.pca_margin``); (2) per sigma of
    ``ISSUE_SIGMAS`` (0.1, 0.2), the validation-chosen best learned denoiser minus ``bm3d`` >= ``BM3D_MARGIN_DB``
    (0.5 dB) with an interval excluding 0 (``vs_bm3d``), and the best learned denoiser other than ``dncnn`` minus
    ``dncnn`` >= 0 by the mean, its interval reported (``vs_dncnn``: Welch's t over seeds where both have
    ``MIN_SEEDS``, else the reported models paired over images); (3) each kind's found configuration minus each of
    its ``finalfit --baseline`` fits (the default recipe: the kind's first trial), same seeds and epochs, met where
    the t-interval over seeds of the per-seed difference excludes 0 (``vs_recipe``); (4) ``gpu``: the commands of a
    run with the gpu budget that would settle the missed ones. A target this run cannot measure (no dncnn, no
    baseline, a sigma not reported) gets an entry with ``measured`` False and a ``status`` saying why.

    Headlines: where the judged model was final-fitted with ``MIN_SEEDS`` or more seeds (``m["finalfit"]``), every
    number judged is the mean over its seeds with a Student-t interval over seeds (the comparator, BM3D and PCA are
    deterministic, the test images and noise fixed); otherwise the single run's, with its bootstrap interval over
    images. The tumour-class condition is measured on the reported model only (the best-validation seed).

    Args:
        m: the report's metrics (``metrics.json``) with ``models`` (each with ``val`` and ``test``),
            ``denoising``, ``selection``, ``comparisons`` and ``denoising_classes`` filled in; ``finalfit``
            (:func:`tuneae.report.seeds.seed_metrics`), ``pca`` (:func:`tuneae.report.pca.pca_baselines`),
            ``reference_comparisons`` (:func:`tuneae.report.denoising.references`), ``search`` (the studies, for
            the default-recipe trial ids), ``learning_curves`` and ``data`` where measured.
    Returns:
        ``{"denoising": {sigma: {...}}, "reconstruction": {...} | None, "vs_bm3d": {sigma: {...}}, "vs_dncnn":
        {sigma: {...}}, "vs_recipe": {"rows": [...], "same": [...], "missing": {...} | None}, "gpu": {"kinds", "data",
        "data_note", "commands"} | None}``; every entry has ``met`` (bool) and a
        ``status`` text, judged on its ``headline`` (``{"basis": "seed mean" | "single run", "n_seeds",
        "interval", "best_seed", "psnr", ...}``, PSNR in dB), while ``psnr`` / ``ssim`` /
        ``learned_minus_classical`` stay the reported model's (the best-validation seed's) with intervals over
        images; the reconstruction entry's ``vs_pca`` (``{"pca", "k", "headline", "paired_over_images", "basis",
        "n_seeds", "interval", "met", "status"}``) is None without PCA. Sigmas not measured, or without a learned
        model or a comparator, are left out; ``tumour_classes_no_worse`` is None when either class group is
        missing. A missed target also has ``gap_db`` (dB still missing, on the headline quantity it is judged on)
        and, when its model has a final-fit learning curve
        (``m["learning_curves"]``, :mod:`tuneae.report.curves`), ``more_epochs``: the epochs that the curve's gain
        per doubling would need to close the gap (an extrapolation); a missed SSIM target also has ``gap_ssim`` and
        ``more_epochs_ssim`` (from the validation-SSIM curve, or a verdict that the fit did not measure it).
    """
    curves = m.get("learning_curves") or {}
    out: dict[str, Any] = {"denoising": {}, "reconstruction": _reconstruction_target(m)}
    rec = out["reconstruction"]
    best = (rec or {}).get("best_bottleneck")
    noisy = clean_proxy(m, best)
    if rec is not None and rec["gap_db"] > 0:
        add_more_epochs(rec, best, curves, noisy)
    if rec is not None and rec["gap_ssim"] > 0 and best in curves:
        c = curves[best]
        rec["more_epochs_ssim"] = ({**epochs_to_close(c["ssim"], rec["gap_ssim"], "SSIM"), "curve": best,
                                    **({"proxy": noisy} if noisy else {})} if c.get("ssim") else
                                   {"curve": best, "verdict": "unknown: this final fit did not "
                                    "measure validation SSIM per epoch (run it again to add the curve)"})
    for sigma, fixed in DENOISING_TARGETS_DB.items():
        d = _denoising_target(m, f"{sigma:g}", fixed)
        if d is not None:
            out["denoising"][f"{sigma:g}"] = d
            add_more_epochs(d, d["best_learned"], curves, sigma_proxy(m, d["best_learned"], f"{sigma:g}"))
    _issue_targets(m, out, curves)
    return out


def _issue_targets(m: dict[str, Any], out: dict[str, Any], curves: dict[str, Any]) -> None:
    """Add the margin targets (:mod:`tuneae.report.versus`) to ``out``: ``vs_bm3d`` / ``vs_dncnn`` per sigma of
    ``ISSUE_SIGMAS``, ``vs_recipe``, ``gpu``; ``more_epochs`` on a missed margin over PCA or BM3D (the references
    that more epochs leave unchanged); and the gpu commands for every kind of a missed target that a run with the
    gpu budget would settle."""
    keys = [f"{s:g}" for s in ISSUE_SIGMAS]
    out["vs_bm3d"] = {k: bm3d_target(m, k) for k in keys}
    out["vs_dncnn"] = {k: dncnn_target(m, k) for k in keys}
    out["vs_recipe"] = recipe_targets(m)
    rec = out["reconstruction"]
    p = (rec or {}).get("pca_margin")
    if p and p["measured"] and p["gap_db"] > 0:
        add_more_epochs(p, p["learned"], curves, clean_proxy(m, p["learned"]))
    for k, e in out["vs_bm3d"].items():
        if e["measured"] and e["gap_db"] > 0:
            add_more_epochs(e, e["learned"], curves, sigma_proxy(m, e["learned"], k))
    recipe_entries = [*out["vs_recipe"]["rows"], *out["vs_recipe"]["same"]]
    entries = [p or {}, *out["vs_bm3d"].values(), *out["vs_dncnn"].values(), *recipe_entries]
    kinds = list(dict.fromkeys(k for e in entries if not e.get("met", True) for k in e.get("settle") or []))
    recipe_missed = any(not e["met"] and e.get("settle") for e in recipe_entries)
    out["gpu"] = gpu_commands(kinds, m, baseline=recipe_missed)


def _required(d: dict, sigma: str) -> str:
    """The "required" cell of one denoising target: the margin over the comparator (judged on the paired
    difference) or the fixed target (judged on the learned model's test PSNR), whichever is higher."""
    if d.get("judged_on", "").startswith("paired"):
        return (f"learned - {d['best_classical']} >= +{TARGET_MARGIN_DB:g} dB, paired (i.e. >= {d['target']:.2f} dB; "
                f"the fixed {DENOISING_TARGETS_DB[float(sigma)]:g} dB is lower)")
    return (f">= {d['target']:.2f} dB (the fixed target; comparator {d['best_classical']} "
            f"{d['classical_psnr']['mean']:.2f} + {TARGET_MARGIN_DB:g} is lower)")


def _yes(status: str) -> str:
    """A status cell, bold where met."""
    return f"**{status}**" if status.startswith("met") else status


def _who(d: dict, name: str) -> str:
    """``"<name>, mean of N seeds"`` or ``"<name>, single run"``: whose number a headline cell is."""
    return f"{name}, mean of {d['n_seeds']} seeds" if d["basis"] == "seed mean" else f"{name}, single run"


def _denoising_rows(t: dict) -> list[list[str]]:
    """Targets-table rows of the denoising targets and their tumour-class conditions."""
    rows = []
    for s, d in t["denoising"].items():
        h = d.get("headline") or {"basis": "single run", "n_seeds": 1, "psnr": d["psnr"],
                                  "learned_minus_classical": d["learned_minus_classical"]}
        on_seeds = h["basis"] == "seed mean"
        best = (f"seed {h['best_seed']}: {fmt_interval(d['psnr'])} dB; - {d['best_classical']}: "
                f"{fmt_interval(d['learned_minus_classical'], signed=True)} dB" if on_seeds else "-")
        if d.get("seed_mean_paired"):
            best += (f"; seed mean - {d['best_classical']} paired over images (scan-group bootstrap): "
                     f"{fmt_interval(d['seed_mean_paired'], signed=True)} dB")
        rows.append([f"denoising, sigma {s}", f"{_who(h, d['best_learned'])}: {fmt_interval(h['psnr'])} dB; - "
                     f"{d['best_classical']}: {fmt_interval(h['learned_minus_classical'], signed=True)} dB",
                     best, _required(d, s), _yes(d["status"])])
    for s, d in t["denoising"].items():
        if d["tumour_status"] is None:
            continue
        who = (f"{d['best_learned']}, best-validation seed (not measured per seed)"
               if (d.get("headline") or {}).get("basis") == "seed mean" else f"{d['best_learned']}, single run")
        rows.append([f"tumour classes vs {', '.join(d['healthy_classes'])}, sigma {s}",
                     f"{who}: learned - classical: {fmt_interval(d['tumour_minus_classical'], signed=True)} vs "
                     f"{fmt_interval(d['no_tumour_minus_classical'], signed=True)} dB; difference "
                     f"{fmt_interval(d['tumour_minus_no_tumour'], signed=True)}", "-",
                     "tumour classes no worse off (difference >= 0)", _yes(d["tumour_status"])])
    return rows


def _reconstruction_rows(r: dict | None) -> list[list[str]]:
    """Targets-table rows of the reconstruction target and PCA at the same code size (> 0)."""
    if not r:
        return []
    name = r["best_bottleneck"]
    h = r.get("headline") or {"basis": "single run", "n_seeds": 1, "psnr": r["psnr"], "ssim": r["ssim"]}
    on_seeds = h["basis"] == "seed mean"
    status = "met" if r["met"] else "not met"
    rows = [["reconstruction, best bottleneck model",
             f"{_who(h, name)}: {fmt_interval(h['psnr'])} dB / {fmt_interval(h['ssim'], 3)} SSIM",
             f"seed {h['best_seed']}: {fmt_interval(r['psnr'])} dB / {fmt_interval(r['ssim'], 3)} SSIM"
             if on_seeds else "-", f">= {r['target_psnr']:g} dB and >= {r['target_ssim']:g} SSIM",
             _yes(f"{status} (PSNR {r['status']['psnr']}, SSIM {r['status']['ssim']})")]]
    p = r.get("vs_pca")
    if p:
        rows.append([f"reconstruction, {name} vs {p['pca']} (PCA at the same code size, fitted on the training "
                     "images)", f"{_who(p, name + ' - ' + p['pca'])}: "
                     f"{fmt_interval(p['headline'], signed=True)} dB"
                     + (" (t-interval over seeds)" if p["basis"] == "seed mean" else " (paired over images)"),
                     f"{fmt_interval(p['paired_over_images'], signed=True)} dB, paired over images"
                     if p["basis"] == "seed mean" else "-", "> 0 dB, interval excluding 0", _yes(p["status"])])
    # the kind's baselines (above_baselines) are margin target 3, in versus_rows for every kind
    return rows


def targets_markdown(t: dict) -> list[str]:
    """The "Targets" section of report.md from :func:`check_targets`' result."""
    rows = _denoising_rows(t) + _reconstruction_rows(t["reconstruction"])
    rows += [[*r[:-1], _yes(r[-1])] for r in versus_rows(t)]
    if not rows:
        return []
    more = _more_epochs_markdown(t)
    return ["## Targets", "",
            "Measured on the test images under the primary protocol (AWGN, not clipped); the learned model, the "
            "classical comparator and the bottleneck model judged were each chosen on validation images. Where a "
            f"model was final-fitted with {MIN_SEEDS} or more seeds, its headline is the mean over those seeds with "
            "a 95% t-interval over seeds (training variability, the test images fixed), and the status is judged "
            "on it; the best-validation seed (the model the other sections reload) stands beside it with its 95% "
            "bootstrap intervals over test images. Otherwise the headline is the single run, with its bootstrap "
            "interval over images. 'clearly': the whole interval is on that side of the target. Rows 'issue N' are "
            "the margin targets (a search that finds better models than the default recipe, PCA and BM3D): "
            f"(1) the best bottleneck model at least PCA at the same code size + {PCA_MARGIN_DB:g} dB, with a paired "
            f"interval over images excluding 0 in every seed; (2) the best learned denoiser at least BM3D + "
            f"{BM3D_MARGIN_DB:g} dB at sigma {' and '.join(f'{x:g}' for x in ISSUE_SIGMAS)}, and the best one "
            "other than DnCNN at least DnCNN (two configurations each trained with its "
            "own seeds: Welch's t-interval over seeds, unpaired); (3) each kind's found configuration above the "
            "default recipe (its first trial) fitted with the same seeds and epochs, the t-interval over the "
            "per-seed differences excluding 0. A target this run cannot measure says so.", "",
            md_table(["target", "measured (headline)", "best-validation seed (intervals over images)", "required",
                      "status"], rows), "", *more, *gpu_markdown(t.get("gpu"), bool(more))]


def _more_epochs_markdown(t: dict) -> list[str]:
    """The "would more epochs reach it?" lines under the targets table, and the learning-curve figure."""
    named = [(f"denoising, sigma {s}", d.get("more_epochs"), "dB") for s, d in t["denoising"].items()]
    if t.get("reconstruction"):
        named += [("reconstruction (PSNR)", t["reconstruction"].get("more_epochs"), "dB"),
                  ("reconstruction (SSIM)", t["reconstruction"].get("more_epochs_ssim"), "SSIM"),
                  (f"issue 1, vs PCA + {PCA_MARGIN_DB:g} dB",
                   (t["reconstruction"].get("pca_margin") or {}).get("more_epochs"), "dB")]
    named += [(f"issue 2, vs bm3d + {BM3D_MARGIN_DB:g} dB, sigma {s}", e.get("more_epochs"), "dB")
              for s, e in (t.get("vs_bm3d") or {}).items()]
    lines = []
    for name, e, unit in named:
        if not e:
            continue
        if "gap_db" not in e:  # no curve of that metric
            lines.append(f"- {name}: {e['curve']}'s outlook is {e['verdict']}.")
            continue
        g = e["gain_per_doubling_db"]
        se = e.get("gain_stderr_db")
        prec = 2 if unit == "dB" else 4
        rate = ("" if g is None else f"gains {g:+.{prec}f}" + (f" +- {se:.{prec}f} (se)" if se is not None else "")
                + f" {unit} per doubling of epochs over its second half; ")
        at = (f"at that rate it needs {e['doublings']:.1f} more doublings: "
              if e["doublings"] is not None and e["gap_db"] > 0 else "")
        short = f"{e['gap_db']:.2f} dB" if unit == "dB" else f"{e['gap_db']:.3f} SSIM"
        lines.append(f"- {name}: {short} short after {e['epochs_now']} epochs; {e['curve']}'s "
                     f"validation curve {rate}{at}{e['verdict']}" + (f" ({e['proxy']})" if e.get("proxy") else "")
                     + ".")
    fig = t.get("learning_curves_figure")
    if not lines and not fig:
        return []
    return ["Would more epochs of the same configuration reach a missed target? The final fit's validation curves "
            "(`learning_curves` in metrics.json) rise about linearly in log(epochs) late in training; the gain per "
            "doubling, fitted on each curve's second half (least squares on the seed mean), turns a gap into "
            "epochs: `epochs * 2 ** (gap / gain)`, with the range the seeds' own slopes give. An extrapolation, not a "
            "bound: the gain usually shrinks (more epochs needed), a noisy curve can hide a steeper one, and the "
            "fitting window matters; the gap is the test gap of the headline (the mean over seeds where there is a "
            "final fit) while the curve is the validation mean over seeds; read it as an order of magnitude.", "",
            *lines, "",
            *([f"![final-fit learning curves]({fig})", ""] if fig else [])]
