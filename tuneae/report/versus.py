"""The margin targets, "a search that finds better models than the default recipe, PCA and BM3D": the search's
best models against those references, each by a margin, on the test images under the primary noise protocol (AWGN,
:data:`tuneae.noise.PRIMARY`). :func:`tuneae.report.targets.check_targets` judges them beside the fixed targets.

1. The best bottleneck model on clean input (chosen on validation by :mod:`tuneae.report.targets`) at least PCA at
   its code size + :data:`PCA_MARGIN_DB`, with each final-fit seed's paired interval over images excluding 0
   (:func:`pca_margin`).
2. At each sigma of :data:`ISSUE_SIGMAS`: the best learned denoiser (chosen on validation) at least BM3D +
   :data:`BM3D_MARGIN_DB`, its interval excluding 0 (:func:`bm3d_target`); and the best learned denoiser other than
   DnCNN at least DnCNN (:func:`dncnn_target`).
3. Each kind's found configuration above the default recipe, fitted with the same seeds and epochs
   (``python -m tuneae.finalfit --baseline``), the t-interval over seeds excluding 0 (:func:`recipe_targets`).
4. Where a model falls short of one of them, the commands of a run with the gpu budget that would settle it
   (:func:`gpu_commands`), beside the learning curves of the targets section.

Headlines: the mean over final-fit seeds where the model has :data:`~tuneae.report.statistics.MIN_SEEDS` of them
(a t-interval over seeds; PCA and BM3D are deterministic, the test images and noise fixed), else the reported run
with its paired bootstrap interval over images. A target this run cannot measure gets an entry that says so
(``measured`` False, never met) rather than no entry.
"""
from __future__ import annotations

from typing import Any

from tuneae.classical import METHODS
from tuneae.config import SearchConfig
from tuneae.data.sources import source_kind
from tuneae.models import BOTTLENECK, DENOISING, MODELS
from tuneae.noise import PRIMARY
from tuneae.presets import PRESETS
from tuneae.report.statistics import (
    MIN_SEEDS,
    excludes_0_status,
    final_seeds,
    fmt_interval,
    margin_status,
    seed_interval,
    select_best,
    threshold_status,
    welch_interval,
)
from tuneae.run.study import recipe_trials, same_as_recipe

PCA_MARGIN_DB = 1.0
"""The margin of the best bottleneck model over PCA with as many components as its code has numbers (mean
clean test PSNR, dB). A learned code must earn its nonlinearity over the linear code of the same size by a gain that
shows, and the linear code is a hard anchor here: PCA-512 reached 24.98 dB where the seed project's best 512-number
AE (40 epochs) reached 24.72 (design/MEASURED.md, "Linear anchor")."""
BM3D_MARGIN_DB = 0.5
"""The margin of the best learned denoiser over BM3D at each of :data:`ISSUE_SIGMAS` (mean test PSNR, dB):
about what the field's learned baseline gains over it, DnCNN over BM3D on BSD68 +0.66 dB at sigma 25/255 and +0.61
at 50/255 (Zhang et al. 2017, IEEE TIP; design/MEASURED.md, "Field anchor")."""
DNCNN_MARGIN_DB = 0.0
"""The margin over the DnCNN baseline: the search's best other learned denoiser at least matches it, judged
on the mean (its interval is reported, not required: the target asks for "at least", not for a win)."""
ISSUE_SIGMAS = (0.1, 0.2)
"""Noise sd on the [0, 1] scale of the margin targets for denoisers."""
BM3D, DNCNN = "bm3d", "dncnn"
"""The references' keys: the classical method (:data:`tuneae.classical.METHODS`) and the learned kind."""
REFERENCES = (BM3D, DNCNN)
"""What every learned model is compared with, paired over images, at each sigma
(:func:`tuneae.report.denoising.references`, ``m["reference_comparisons"]``)."""
GPU_SEEDS = 3
"""Final-fit seeds of the gpu run that would settle a missed target."""
GPU_RESULTS = f"{SearchConfig().results_dir}/{PRESETS['gpu']['search']['name']}"
"""The results folder of a ``--preset gpu`` search (the default ``--results-dir`` and the preset's ``--name``)."""

__all__ = ["BM3D", "BM3D_MARGIN_DB", "DNCNN", "DNCNN_MARGIN_DB", "GPU_RESULTS", "GPU_SEEDS", "ISSUE_SIGMAS",
           "PCA_MARGIN_DB", "REFERENCES", "bm3d_target", "dncnn_target", "gpu_commands", "gpu_markdown", "pca_margin",
           "recipe_targets", "versus_rows"]


def _at(d: Any, *keys: str) -> Any:
    """``d[k1][k2]...``, None where a level is missing."""
    for k in keys:
        d = d.get(k) if isinstance(d, dict) else None
    return d


def _missing(why: str, **info: Any) -> dict[str, Any]:
    """An entry of a target this run cannot measure: never met, and saying why."""
    return {"settle": [], **info, "measured": False, "met": False, "status": f"not measured ({why})"}


def _basis(seeds: list[dict] | None) -> dict[str, Any]:
    """What a headline is: the mean over final-fit seeds (t-interval) or the reported run (paired over images)."""
    if seeds:
        return {"basis": "seed mean", "n_seeds": len(seeds), "interval": "t over seeds"}
    return {"basis": "single run", "n_seeds": 1, "interval": "bootstrap over images, paired"}


def _paired(m: dict, key: str, ref: str, kind: str) -> dict | None:
    """``kind - ref`` test PSNR paired over images at sigma ``key`` (the reported models), from
    ``m["reference_comparisons"]``, or ``m["comparisons"]`` where ``ref`` is the comparator."""
    d = _at(m, "reference_comparisons", PRIMARY, key, ref, kind, "psnr")
    if d is None and _at(m, "selection", PRIMARY, key, "comparator") == ref:
        d = _at(m, "comparisons", PRIMARY, key, kind, "psnr")
    return d


def pca_margin(m: dict, best: str) -> dict[str, Any]:
    """Target 1: ``best`` (the best bottleneck model) minus PCA at its code size, clean test PSNR.

    Met when the headline mean (over final-fit seeds with a t-interval where there are ``MIN_SEEDS``, else the
    reported run paired over images) reaches :data:`PCA_MARGIN_DB` AND the paired interval over images of every
    final-fit seed minus PCA (``m["pca"]["vs"][best]["over_seeds"]["paired"]``; the reported run's own without a
    final fit) lies above 0.
    """
    v = _at(m, "pca", "vs", best)
    if not v:
        return _missing("no PCA at its code size in this report", learned=best)
    seeds = v.get("over_seeds")
    on_seeds = seeds is not None and seeds["psnr"]["n"] >= MIN_SEEDS
    h = seeds["psnr"] if on_seeds else v["psnr"]
    per_seed = (seeds or {}).get("paired") or (None if on_seeds else [{"seed": None, **v["psnr"]}])
    bad = [p["seed"] for p in per_seed or [] if p.get("low") is None or p["low"] <= 0]
    every = None if per_seed is None else not bad
    margin = threshold_status(h, PCA_MARGIN_DB)
    met = margin.startswith("met") and bool(every)
    why = ("no per-seed paired interval measured" if every is None else
           "the paired interval over images does not exclude 0 for "
           + ", ".join("the reported run" if s is None else f"seed {s}" for s in bad) if bad else "")
    status = margin if met or not why else f"not met ({why})" if margin.startswith("met") else f"{margin}; {why}"
    short = not margin.startswith("met") or every is False  # not a report without per-seed intervals: rerun it
    return {"learned": best, "reference": v["pca"], "k": v["k"], "margin_db": PCA_MARGIN_DB, "headline": h,
            **_basis(seeds["seeds"] if on_seeds else None), "per_seed": per_seed, "every_seed_excludes_0": every,
            "measured": True, "met": met, "status": status, "gap_db": max(0.0, PCA_MARGIN_DB - h["mean"]),
            "settle": [best] if short else []}


def bm3d_target(m: dict, key: str) -> dict[str, Any]:
    """Target 2a at sigma ``key``: the validation-chosen best learned denoiser minus BM3D (whichever method the
    comparator is), mean test PSNR: met when it reaches :data:`BM3D_MARGIN_DB` with an interval excluding 0 (a
    t-interval over the learned model's final-fit seeds, BM3D deterministic; else paired over images) and, with
    seeds, the seed-mean difference paired over test images (cluster bootstrap over scan groups,
    ``seed_mean_paired``) excluding 0 too: the t-interval alone ignores how few independent scans are tested."""
    res = _at(m, "denoising", PRIMARY, key)
    learned = _at(m, "selection", PRIMARY, key, "best_learned")
    if res is None:
        return _missing(f"sigma {key} not in this report: add it to --sigmas", reference=BM3D)
    if learned is None:
        return _missing("no learned denoiser", reference=BM3D)
    if BM3D not in res:
        return _missing(f"no {BM3D} in this run", learned=learned, reference=BM3D)
    ref = res[BM3D]["psnr"]["mean"]
    over_images = _paired(m, key, BM3D, learned)
    seeds = final_seeds(m, learned, key)
    h = seed_interval([r["denoising"][key] - ref for r in seeds]) if seeds else over_images
    if h is None:
        return _missing(f"{learned} - {BM3D} not compared paired over images", learned=learned, reference=BM3D)
    met, status = margin_status(h, BM3D_MARGIN_DB)
    paired = _at(m, "finalfit", learned, "seed_mean_paired", key, BM3D) if seeds else None
    if met and paired is not None and (paired.get("low") is None or paired["low"] <= 0):
        met, status = False, "not met (the seed mean paired over images includes 0: too few independent scans)"
    return {"learned": learned, "reference": BM3D, "margin_db": BM3D_MARGIN_DB, "headline": h, **_basis(seeds),
            "paired_over_images": over_images, "seed_mean_paired": paired, "measured": True, "met": met,
            "status": status,
            "gap_db": max(0.0, BM3D_MARGIN_DB - h["mean"]), "settle": [] if met else [learned]}


def dncnn_target(m: dict, key: str) -> dict[str, Any]:
    """Target 2b at sigma ``key``: the learned denoiser other than DnCNN with the best validation PSNR minus DnCNN.

    Both with ``MIN_SEEDS`` final-fit seeds: the difference of their seed means with Welch's t-interval over seeds
    (each configuration trained with its own seeds, so none pairs with another); otherwise the reported models
    (best-validation seeds) paired over test images. Met when the mean reaches :data:`DNCNN_MARGIN_DB` (0); the
    interval is reported beside it.
    """
    sel = _at(m, "selection", PRIMARY, key) or {}
    learned = [k for k in sel.get("val_psnr") or {} if k not in METHODS and k != "noisy"]
    if _at(m, "denoising", PRIMARY, key) is None:
        return _missing(f"sigma {key} not in this report: add it to --sigmas", reference=DNCNN)
    if DNCNN not in learned:
        return _missing(f"no {DNCNN} in this run", reference=DNCNN, settle=[DNCNN])
    challenger = select_best(sel["val_psnr"], [k for k in learned if k != DNCNN])
    if challenger is None:
        return _missing(f"no learned denoiser besides {DNCNN}", reference=DNCNN)
    a, b = final_seeds(m, challenger, key), final_seeds(m, DNCNN, key)
    over_images = _paired(m, key, DNCNN, challenger)
    if a and b:
        h = welch_interval([r["denoising"][key] for r in a], [r["denoising"][key] for r in b])
        basis = {"basis": "seed means", "n_seeds": [len(a), len(b)], "interval": "Welch t over seeds"}
    else:  # the models the rest of the report reloads: the best-validation seed of a final fit, else the search's
        h, basis = over_images, {"basis": "reported models", "n_seeds": 1, "interval": "bootstrap over images, paired"}
    if h is None:
        return _missing(f"{challenger} - {DNCNN} not compared paired over images", learned=challenger,
                        reference=DNCNN)
    met = h["mean"] >= DNCNN_MARGIN_DB
    return {"learned": challenger, "best_learned": sel.get("best_learned"), "reference": DNCNN,
            "margin_db": DNCNN_MARGIN_DB, "headline": h, **basis, "paired_over_images": over_images,
            "measured": True, "met": met, "status": threshold_status(h, DNCNN_MARGIN_DB),
            "gap_db": max(0.0, DNCNN_MARGIN_DB - h["mean"]), "settle": [] if met else [challenger, DNCNN]}


def _recipe_rows(m: dict, label: str, s: dict, recipe: dict[str, str | None]) -> list[dict[str, Any]]:
    """The target-3 entries of one baseline: its kind's best minus it, seed by seed, in test PSNR on clean input
    (every kind but the denoisers without a code, dunet and dncnn) and denoised at each of :data:`ISSUE_SIGMAS`
    (every kind trained on noisy input); the seed rows of ``m["finalfit"]``, the same seeds and epochs."""
    kind, ff = s["kind"], m.get("finalfit") or {}
    info = {"label": label, "kind": kind, "trial": s.get("source_trial"), "epochs": s.get("epochs"),
            "is_recipe": None if recipe.get(kind) is None else s.get("source_trial") == recipe[kind]}
    metrics = ([] if kind in DENOISING and kind not in BOTTLENECK else ["clean"]) + \
              ([f"{x:g}" for x in ISSUE_SIGMAS] if kind in DENOISING else [])
    vs = s.get("vs_best") or {}
    if "over_seeds" not in vs:
        why = s.get("vs_best_skipped") or "no seed shared with the kind's final fit"
        return [_missing(f"{why}: fit both with the same --seeds and --epochs", **info, metric=q) for q in metrics]
    best = {r["seed"]: r for r in (ff.get(kind) or {}).get("seeds") or []}
    base = {r["seed"]: r for r in s.get("seeds") or []}
    rows = []
    for q in metrics:
        if q == "clean":
            h, paired = vs["over_seeds"], vs.get("seed_mean")
        else:
            shared = [x for x in vs.get("seeds") or [] if q in best.get(x, {}).get("denoising", {})
                      and q in base.get(x, {}).get("denoising", {})]
            if not shared:
                rows.append(_missing(f"sigma {q} not measured per seed", **info, metric=q))
                continue
            h, paired = seed_interval([best[x]["denoising"][q] - base[x]["denoising"][q] for x in shared]), None
        met = h.get("low") is not None and h["low"] > 0
        rows.append({**info, "metric": q, "headline": h, "seed_mean_paired": paired, "basis": "seed mean",
                     "n_seeds": h["n"], "interval": "t over seeds", "measured": True, "met": met,
                     "status": excludes_0_status(h), "settle": [] if met else [kind]})
    return rows


def recipe_targets(m: dict) -> dict[str, Any]:
    """Target 3: each kind's found configuration (its final fit) minus each of its baselines fitted with the same
    seeds and epochs (``finalfit --baseline``, ``m["finalfit"][label]["vs_best"]``), per seed, met when the
    t-interval over seeds of the per-seed difference excludes 0 (> 0). A reported kind whose configuration is the
    default recipe itself (its trial, or a repeat of it) has nothing to compare and misses the target ("same"); a
    reported kind without a baseline that is its default-recipe trial gets one shared "not measured" entry with
    the command that would fit it.

    Returns:
        ``{"rows": [entry per baseline and metric ("clean" or a sigma)], "same": [{"kind", "why", "measured",
        "met", "status", "settle"}], "missing": entry | None}``.
    """
    recipe = recipe_trials(m.get("search") or {})
    rows = [r for label, s in (m.get("finalfit") or {}).items() if s.get("kind") not in (None, label)
            for r in _recipe_rows(m, label, s, recipe)]
    covered = {r["kind"] for r in rows if r["is_recipe"] is not False}
    kinds = [k for k in m.get("models") or {} if k not in covered]
    ff, studies = m.get("finalfit") or {}, m.get("search") or {}
    best = {k: (ff.get(k) or {}).get("source_trial") or ((m.get("models") or {}).get(k) or {}).get("trial")
            for k in kinds}
    same = [{"kind": k, "why": why, "measured": True, "met": False, "settle": [k],
             "status": "not met (the search's best is the default recipe)"}
            for k in kinds if (why := same_as_recipe(studies.get(k), best[k], recipe.get(k)))]
    kinds = [k for k in kinds if k not in {e["kind"] for e in same}]
    if not kinds:
        return {"rows": rows, "same": same, "missing": None}
    ids = [recipe.get(k) or f"<first {k} trial id in RESULTS/trials.csv>" for k in kinds]
    n = max((len(s.get("seeds") or []) for s in (m.get("finalfit") or {}).values()), default=0)
    command = (f"python -m tuneae.finalfit RESULTS{f' --seeds {n}' if n else ''} --baseline {' '.join(ids)}")
    results = f"{SearchConfig().results_dir}/{m['name']}" if m.get("name") else None
    return {"rows": rows, "same": same,
            "missing": _missing("no default-recipe baseline fitted", kinds=kinds, command=command, results=results)}


def _data_arg(d: dict) -> tuple[str, str]:
    """The ``--data`` of the gpu commands: the run's hub id as the report recorded it, else ``PATH`` and what it
    stands for."""
    src = str(d.get("source") or "")
    if d.get("synthetic"):
        return "PATH", "PATH: brain-MRI data (this run's synthetic phantoms settle nothing about MRI)"
    if not src:
        return "PATH", "PATH: the run's data source (not recorded in this report)"
    if "://" not in src and source_kind(src) == "hub":
        return src, ""
    return "PATH", f"PATH: the run's data folder, recorded as `{src}` (relative to the report folder)"


def gpu_commands(kinds: list[str], m: dict, baseline: bool = False) -> dict[str, Any] | None:
    """The commands of a run with the gpu budget (``--preset gpu``: more trials and the seed project's epochs) that
    would settle the missed targets of ``kinds``: search, final fit with :data:`GPU_SEEDS` seeds (with the default
    recipe as baseline when ``baseline``), report. None without a kind."""
    if not kinds:
        return None
    order = [k for k in MODELS if k in kinds] + sorted(set(kinds) - set(MODELS))
    data, note = _data_arg(m.get("data") or {})
    fit = f"python -m tuneae.finalfit {GPU_RESULTS} --seeds {GPU_SEEDS}" + (
        " --baseline recipe" if baseline else "")
    return {"kinds": order, "data": data, "data_note": note,
            "commands": [f"python -m tuneae.search --preset gpu --model {' '.join(order)} --data {data}", fit,
                         f"python -m tuneae.report {GPU_RESULTS}"]}


def gpu_markdown(g: dict | None, curves: bool = False) -> list[str]:
    """The commands of a gpu run that would settle the missed margin targets (none when every one is met);
    ``curves``: the lines above say what the final fit's learning curves extrapolate."""
    if not g:
        return []
    cpu, gpu = PRESETS["cpu"]["search"], PRESETS["gpu"]
    epochs = max(gpu["space"]["train.epochs"])
    outlook = ("the learning curves above say whether more epochs of the same configuration would" if curves else
               "no final-fit learning curve here says whether more epochs would (python -m tuneae.finalfit adds them)")
    return [f"Margin targets missed by {', '.join(g['kinds'])}: a 2-CPU budget (the cpu preset: {cpu['num_samples']} "
            f"trials per kind, a few epochs each) may not reach them; {outlook}. A run with the gpu budget "
            f"(`--preset gpu`: {gpu['search']['num_samples']} trials per kind, {epochs} epochs, the architecture "
            f"and training recipe searched too, {gpu['search']['gpus_per_trial']:g} GPU per trial) would settle "
            "them; from the "
            f"repository root (`{GPU_RESULTS}` is the gpu preset's run; a finished run there makes the search name "
            "the new one with a suffix, `-2`):",
            "", "```", *g["commands"], "```", "", *([g["data_note"], ""] if g["data_note"] else [])]


def _who(e: dict, name: str) -> str:
    """Whose number a headline is."""
    if e["basis"] == "seed means":
        return f"{name}, difference of the seed means ({e['n_seeds'][0]} and {e['n_seeds'][1]} seeds)"
    if e["basis"] == "seed mean":
        return f"{name}, mean of {e['n_seeds']} seeds"
    if e["basis"] == "reported models":
        return f"{name}, the reported models (a final fit's best-validation seed, else the search's)"
    return f"{name}, single run"


def _interval(e: dict) -> str:
    return {"t over seeds": "t-interval over seeds", "Welch t over seeds": "Welch t-interval over seeds, "
            "unpaired: each trained with its own seeds", "bootstrap over images, paired": "paired over images"}[
        e["interval"]]


def _not_measured(name: str, e: dict, required: str) -> list[str]:
    return [name, e["status"], "-", required, "not measured"]


def versus_rows(t: dict) -> list[list[str]]:
    """Targets-table rows (target, headline, best-validation seed, required, status) of the margin targets in
    :func:`tuneae.report.targets.check_targets`' result; statuses plain (the caller bolds a met one)."""
    rows = []
    p = (t.get("reconstruction") or {}).get("pca_margin")
    if p:
        name = f"issue 1: best bottleneck model vs PCA at the same code size + {PCA_MARGIN_DB:g} dB (clean input)"
        need = (f"mean >= +{PCA_MARGIN_DB:g} dB, and every seed's paired interval over images above 0")
        if not p["measured"]:
            rows.append(_not_measured(name, p, need))
        else:
            seeds = "; ".join(("reported run" if s["seed"] is None else f"seed {s['seed']}") + ": "
                              + fmt_interval(s, signed=True) for s in p["per_seed"] or []) or "not measured per seed"
            rows.append([name, f"{_who(p, p['learned'] + ' - ' + p['reference'])}: "
                         f"{fmt_interval(p['headline'], signed=True)} dB ({_interval(p)})",
                         f"paired over images, per seed: {seeds} dB", need, p["status"]])
    for s, e in (t.get("vs_bm3d") or {}).items():
        rows.append(_denoising_row(f"issue 2: best learned denoiser vs {BM3D} + {BM3D_MARGIN_DB:g} dB, sigma {s}", e,
                                   f"mean >= +{BM3D_MARGIN_DB:g} dB, interval excluding 0"))
    for s, e in (t.get("vs_dncnn") or {}).items():
        rows.append(_denoising_row(f"issue 2: best learned denoiser other than {DNCNN} vs {DNCNN}, sigma {s}", e,
                                   f"mean >= {DNCNN_MARGIN_DB:g} dB (met by the mean; the interval is reported, "
                                   "not required)"))
    return rows + _recipe_table_rows(t.get("vs_recipe") or {})


def _denoising_row(name: str, e: dict, need: str) -> list[str]:
    """The row of a sigma's learned denoiser against a reference: the headline, and beside a headline over seeds
    the reported models' difference paired over images."""
    if not e["measured"]:
        return _not_measured(name, e, need)
    beside = (f"{fmt_interval(e['seed_mean_paired'], signed=True)} dB, the seed mean paired over images "
              "(scan-group bootstrap)" if e.get("seed_mean_paired") else
              f"{fmt_interval(e['paired_over_images'], signed=True)} dB, the reported models paired over images"
              if e["basis"] in ("seed mean", "seed means") and e["paired_over_images"] else "-")
    return [name, f"{_who(e, e['learned'] + ' - ' + e['reference'])}: {fmt_interval(e['headline'], signed=True)} dB "
            f"({_interval(e)})", beside, need, e["status"]]


def _recipe_table_rows(r: dict) -> list[list[str]]:
    """Rows of target 3: one per baseline and metric, and the shared "not measured" row."""
    rows = []
    for e in r.get("rows") or []:
        what = "clean test PSNR" if e["metric"] == "clean" else f"denoised test PSNR, sigma {e['metric']}"
        who = (" (the default recipe)" if e["is_recipe"] else
               " (NOT the default-recipe trial)" if e["is_recipe"] is False else "")
        name = (f"issue 3: {e['kind']}'s found configuration vs {e['label']}{who}, same seeds, same {e['epochs']} "
                f"epochs, {what}")
        need = "> 0 dB, t-interval over seeds excluding 0"
        if not e["measured"]:
            rows.append(_not_measured(name, e, need))
            continue
        h = e["headline"]
        rows.append([name, "per seed " + ", ".join(f"{d:+.2f}" for d in h["per_seed"])
                     + f" dB; mean {fmt_interval(h, signed=True)} (t-interval over seeds)",
                     "-" if not e["seed_mean_paired"] else
                     f"{fmt_interval(e['seed_mean_paired'], signed=True)} dB, per-image PSNR averaged over the seeds, "
                     "paired over images", need, e["status"]])
    for e in r.get("same") or []:
        rows.append([f"issue 3: {e['kind']}'s found configuration vs the default recipe",
                     f"the same configuration: {e['why']}; the search found nothing better within its budget", "-",
                     "> 0 dB, t-interval over seeds excluding 0", e["status"]])
    miss = r.get("missing")
    if miss:
        where = f" (RESULTS: this run's results folder, e.g. {miss['results']})" if miss.get("results") else ""
        rows.append([f"issue 3: found configuration vs the default recipe ({', '.join(miss['kinds'])})",
                     f"not measured: run `{miss['command']}`{where}; finished seeds are read back", "-",
                     "> 0 dB, t-interval over seeds excluding 0", "not measured"])
    return rows
