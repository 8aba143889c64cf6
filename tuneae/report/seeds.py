"""The final fit's seeds in the report: every seed's checkpoint measured on the report's own test images, with the
mean and spread over seeds (``python -m tuneae.finalfit`` trains them; the rest of the report reloads the best seed).

The spread over seeds is the variability due to training (weights, shuffling, noise); the bootstrap intervals of
the other sections are the variability due to the choice of test images. A claim should survive both.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from tuneae.checkpoint import CheckpointError, load_checkpoint
from tuneae.metrics import image_metrics
from tuneae.noise import PRIMARY, eval_noisy
from tuneae.report.metrics import predict
from tuneae.report.statistics import difference, fmt_interval, seed_interval
from tuneae.run import FinalFit, RunError, over_seeds
from tuneae.run.find import Run


def _measure(model: torch.nn.Module, x: torch.Tensor, clean: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image PSNR (dB) and SSIM of ``model(x)`` against ``clean`` (N, S, S) in [0, 1]; (N,) each."""
    values = image_metrics(predict(model, x)[:, 0].numpy(), clean)
    return {"psnr": values["psnr"], "ssim": values["ssim"]}


def _entry(run: Run, label: str, k: FinalFit, clean: torch.Tensor, noisy: dict[str, torch.Tensor],
           denoised: dict[str, dict[int, np.ndarray]] | None = None) -> tuple[dict[str, Any], dict[int, np.ndarray]]:
    """One fitted configuration (a kind's best or a baseline), every seed measured.

    Args:
        run: the run (its layout resolves the seeds' checkpoints).
        label: the kind or baseline label.
        k: its final fit.
        clean: (N, 1, S, S) float test images in [0, 1].
        noisy: sigma key -> the noisy test images, (N, 1, S, S).
        denoised: filled, when given, with sigma key -> seed -> that seed's per-image denoised test PSNR (dB, (N,)).
    Returns:
        (its report entry, seed -> per-image clean-test PSNR in dB, (N,), for paired comparisons).
    Raises:
        RunError: a seed's checkpoint is missing or unreadable, or is not the one ``finalfit.json`` recorded (another
            epoch or validation MSE: a fit of it running or cut short).
    """
    clean_np = clean[:, 0].numpy()
    rows, per_image = [], {}
    for s in k.seeds:
        path = run.layout.checkpoint(s.checkpoint)
        try:
            model, payload = load_checkpoint(path)
        except CheckpointError as exc:
            raise RunError(f"{label} final fit, seed {s.seed}: {exc}") from exc
        saved, recorded = payload.get("metrics", {}).get("val/mse"), s.metrics.get("val/mse")
        if payload.get("epoch") != k.epochs or (saved is not None and recorded is not None
                                                and not np.isclose(saved, recorded, rtol=1e-6, atol=0)):
            raise RunError(f"{label} final fit, seed {s.seed}: the checkpoint {path} holds epoch "
                           f"{payload.get('epoch')} (val/mse {saved}), finalfit.json records epoch {k.epochs} "
                           f"(val/mse {recorded}): a fit of it is running or was cut short; let "
                           "`python -m tuneae.finalfit` finish first")
        test = _measure(model, clean, clean_np)
        per_image[s.seed] = test["psnr"]
        den = {key: _measure(model, x, clean_np)["psnr"] for key, x in noisy.items()}  # key -> (N,) dB
        if denoised is not None:
            for key, v in den.items():
                denoised.setdefault(key, {})[s.seed] = v
        rows.append({"seed": s.seed, "val_psnr": s.metrics["val/psnr"],
                     "test": {q: float(v.mean()) for q, v in test.items()},
                     "denoising": {key: float(v.mean()) for key, v in den.items()}})
    over = {"val_psnr": over_seeds([r["val_psnr"] for r in rows]),
            "test_psnr": over_seeds([r["test"]["psnr"] for r in rows]),
            "test_ssim": over_seeds([r["test"]["ssim"] for r in rows]),
            **{f"denoising_{key}": over_seeds([r["denoising"][key] for r in rows]) for key in noisy}}
    entry = {"kind": k.kind, "source_trial": k.source_trial, "epochs": k.epochs, "best_seed": k.best_seed,
             "seeds": rows, "over_seeds": over}
    return entry, per_image


def seed_metrics(run: Run, clean: torch.Tensor, sigmas: tuple[float, ...], seed: int,
                 images: dict[str, dict[int, np.ndarray]] | None = None,
                 groups: np.ndarray | None = None,
                 denoised: dict[str, dict[str, dict[int, np.ndarray]]] | None = None) -> dict[str, Any]:
    """Every final-fit seed of every reported kind, and of every baseline, on the same test images: clean
    reconstruction and denoising at each sigma (primary protocol, the report's seeded noise), then mean / sd /
    min / max over seeds; each baseline also against its kind's best, seed by seed and paired over images.

    Args:
        run: the run; ``run.finalfit`` is its final fit (None: nothing to do).
        clean: (N, 1, S, S) float test images in [0, 1] (the report's).
        sigmas: noise sd on the [0, 1] scale.
        seed: the report's noise seed (:func:`tuneae.noise.eval_noisy`), so each seed sees the same noisy images
            as the report's other sections.
        images: filled, when given, with kind -> seed -> that seed's per-image clean-test PSNR (dB, (N,) in the
            order of ``clean``), for comparisons paired over images seed by seed (PCA, :mod:`tuneae.report.pca`);
            kinds only, not baselines.
        groups: (N,) scan group of each test image: ``vs_best``'s interval over images resamples whole groups
            (None: images).
        denoised: filled, when given, with kind -> sigma key -> seed -> per-image denoised test PSNR (dB, (N,)),
            for :func:`seeds_vs_comparator`'s comparison paired over images; kinds only.
    Returns:
        ``{kind or baseline label: {"kind", "source_trial", "epochs", "best_seed", "seeds": [{"seed", "val_psnr",
        "test": {"psnr", "ssim"}, "denoising": {sigma: psnr}}], "over_seeds": {"val_psnr" | "test_psnr" |
        "test_ssim" | "denoising_<sigma>": {"mean", "sd", "min", "max", "n"}}}}``; a baseline also has
        ``"vs_best": {"per_seed": [best - baseline test PSNR of each shared seed], "seed_mean": difference of the
        per-image PSNR averaged over the shared seeds, paired over images (:func:`statistics.difference`),
        "over_seeds": t-interval over the per-seed differences (:func:`statistics.seed_interval`)}`` when both
        trained the same epochs (else ``"vs_best_skipped"`` says why).
        PSNR in dB, SSIM in [-1, 1]. Empty without a final fit.
    Raises:
        RunError: a seed's checkpoint is missing or unreadable (names it).
    """
    if run.finalfit is None:
        return {}
    ff = run.finalfit
    noisy = {f"{s:g}": eval_noisy(clean, s, PRIMARY, seed, "test") for s in sigmas}
    out: dict[str, Any] = {}
    per_image: dict[str, dict[int, np.ndarray]] = {}
    for kind, k in ff.kinds.items():
        if kind in run.trials:
            den = {} if denoised is None else denoised.setdefault(kind, {})
            out[kind], per_image[kind] = _entry(run, kind, k, clean, noisy, den)
    if images is not None:
        images.update(per_image)
    for label, k in ff.baselines.items():
        kind = k.kind
        if kind not in out:
            continue
        out[label], base = _entry(run, label, k, clean, noisy)
        shared = sorted(set(base) & set(per_image[kind]))
        epochs = (k.epochs, ff.kinds[kind].epochs)
        if epochs[0] != epochs[1]:  # fitted by different calls with other budgets: not a like-for-like comparison
            out[label]["vs_best_skipped"] = f"{label} trained {epochs[0]} epochs, {kind} {epochs[1]}"
        elif shared:
            best = np.mean([per_image[kind][s] for s in shared], axis=0)
            other = np.mean([base[s] for s in shared], axis=0)
            per_seed = [float(per_image[kind][s].mean() - base[s].mean()) for s in shared]
            out[label]["vs_best"] = {"seeds": shared, "per_seed": per_seed,
                                     "seed_mean": difference(best, other, f"{kind} best", label, groups=groups),
                                     "over_seeds": seed_interval(per_seed)}
    return out


def seeds_vs_comparator(seeds: dict[str, Any], m: dict[str, Any],
                        denoised: dict[str, dict[str, dict[int, np.ndarray]]] | None = None,
                        references: dict[str, dict[str, np.ndarray]] | None = None,
                        groups: np.ndarray | None = None) -> None:
    """Add to each final-fit kind that was a sigma's best learned model ``"vs_comparator": {sigma: {"comparator",
    "per_seed": [seed's mean denoised test PSNR - the comparator's, dB], "mean", "low", "high"}}``: the
    comparison of :mod:`tuneae.report.denoising` (best seed only) repeated for every training seed, with a t-interval
    over seeds (:func:`statistics.seed_interval`; the test images fixed, the comparator deterministic). With the
    per-image values, also ``"seed_mean_paired": {sigma: {method: difference}}`` for the comparator and every other
    method of ``references``: the per-image denoised PSNR averaged over the seeds minus the method's, paired over
    test images with the cluster bootstrap over ``groups`` (:func:`statistics.difference`). The t-interval sees only
    the seeds' spread with the test images fixed; this one sees how few independent scans the test set holds, and
    a claim needs both.

    Args:
        seeds: :func:`seed_metrics`' result (changed in place).
        m: the report's metrics with ``selection`` and ``denoising`` of the primary protocol.
        denoised: kind -> sigma key -> seed -> per-image denoised test PSNR (dB, (N,); :func:`seed_metrics`).
        references: sigma key -> method -> its per-image test PSNR under the primary protocol (dB, (N,), the same
            noisy images).
        groups: (N,) scan group of each test image (None: the interval resamples images).
    """
    for key, sel in (m.get("selection", {}).get(PRIMARY) or {}).items():
        learned, comparator = sel.get("best_learned"), sel.get("comparator")
        entry = seeds.get(learned)
        res = (m.get("denoising", {}).get(PRIMARY) or {}).get(key) or {}
        if entry is None or comparator not in res or not all(key in r["denoising"] for r in entry["seeds"]):
            continue
        ref = res[comparator]["psnr"]["mean"]
        entry.setdefault("vs_comparator", {})[key] = {
            "comparator": comparator, **seed_interval([r["denoising"][key] - ref for r in entry["seeds"]])}
        per_seed = ((denoised or {}).get(learned) or {}).get(key) or {}
        if per_seed and (references or {}).get(key):
            mean = np.mean([per_seed[r["seed"]] for r in entry["seeds"]], axis=0)  # (N,) dB, over the seeds
            entry.setdefault("seed_mean_paired", {})[key] = {
                name: difference(mean, v, f"{learned} seed mean", name, groups=groups)
                for name, v in references[key].items()}


def seeds_markdown(seeds: dict[str, Any]) -> list[str]:
    """The report's "Final fit" section (empty without one): per kind, mean +- sd [min, max] over seeds."""
    if not seeds:
        return []
    sigma_keys = sorted({k.removeprefix("denoising_") for s in seeds.values() for k in s["over_seeds"]
                         if k.startswith("denoising_")}, key=float)

    def cell(st: dict, digits: int = 2) -> str:
        return f"{st['mean']:.{digits}f} +- {st['sd']:.{digits}f} [{st['min']:.{digits}f}, {st['max']:.{digits}f}]"

    head = ["model", "seeds", "epochs", "best seed (val)", "val PSNR", "test PSNR, clean input",
            "test SSIM, clean input", *[f"denoised PSNR, sigma {k}" for k in sigma_keys]]
    rows = [[kind, str(s["over_seeds"]["test_psnr"]["n"]), str(s["epochs"]), str(s["best_seed"]),
             cell(s["over_seeds"]["val_psnr"]), cell(s["over_seeds"]["test_psnr"]),
             cell(s["over_seeds"]["test_ssim"], 3), *[cell(s["over_seeds"][f"denoising_{k}"]) for k in sigma_keys]]
            for kind, s in seeds.items()]
    versus = [f"- {s['kind']}'s best configuration minus {label} (trial {s['source_trial']}), clean test PSNR "
              f"with the same seeds: {fmt_interval(s['vs_best']['seed_mean'], signed=True)} dB (per-image PSNR "
              f"averaged over seeds {s['vs_best']['seeds']}, paired over images); per seed "
              + ", ".join(f"{d:+.2f}" for d in s["vs_best"]["per_seed"]) + " dB."
              + (f" Mean over seeds {s['vs_best']['over_seeds']['mean']:+.2f} dB, t-interval over the seeds "
                 f"[{s['vs_best']['over_seeds']['low']:+.2f}, {s['vs_best']['over_seeds']['high']:+.2f}]."
                 if (s["vs_best"].get("over_seeds") or {}).get("low") is not None else "")
              for label, s in seeds.items() if "vs_best" in s]
    versus += [f"- {label}: not compared with its kind's best ({s['vs_best_skipped']}: fit both with the same "
              f"`--epochs`)." for label, s in seeds.items() if "vs_best_skipped" in s]
    versus += [f"- {kind} minus {c['comparator']} (the classical comparator), mean denoised test PSNR at sigma {key}, "
               f"per seed: " + ", ".join(f"{d:+.2f}" for d in c["per_seed"]) + f" dB; mean {c['mean']:+.2f}"
               + (f", t-interval over the seeds [{c['low']:+.2f}, {c['high']:+.2f}]" if c["low"] is not None else "")
               + " dB."
               for kind, s in seeds.items() for key, c in sorted(s.get("vs_comparator", {}).items())]
    return ["## Final fit: spread over training seeds", "",
            "Each kind's best configuration (chosen on validation by the search) trained again from scratch with "
            "several seeds (`python -m tuneae.finalfit`). Mean +- sample sd [min, max] over seeds, each seed on the "
            f"same test images and the same seeded noise ({PRIMARY}) as the rest of this report; PSNR in dB. Every "
            "other section reloads the seed with the best validation MSE; its test numbers were not used to choose "
            "it. The sd over seeds (training) adds to the bootstrap intervals over images (test set). Rows named "
            "`<kind>-trial-<id>` are baselines: that trial's configuration fitted with the same seeds "
            "(`--baseline`). \"val PSNR\" is the final fit's own, each kind on its own input: the clean "
            "validation image for ae / vae / unet, a noisy one (the kind's validation sigma) for dae / dunet, so "
            "it compares seeds, not kinds; the test columns are the same for every kind.", "",
            "| " + " | ".join(head) + " |", "|" + "---|" * len(head),
            *["| " + " | ".join(r) + " |" for r in rows], "",
            *([*versus, "", "A bracketed interval after a paired difference is over test images only (the seeds "
               "fixed); the t-interval over seeds is over training runs (the test images fixed). With 3 seeds it "
               "is wide; a difference of one sign in every seed is the stronger sign.", ""] if versus else [])]


__all__ = ["seed_metrics", "seeds_markdown", "seeds_vs_comparator"]
