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
from tuneae.report.errors import ReportError
from tuneae.report.metrics import predict
from tuneae.report.runs import Run
from tuneae.report.statistics import over_seeds


def _mean_metrics(model: torch.nn.Module, x: torch.Tensor, clean: np.ndarray) -> dict[str, float]:
    """Mean PSNR (dB) and SSIM over images of ``model(x)`` against ``clean`` (N, S, S) in [0, 1]."""
    values = image_metrics(predict(model, x)[:, 0].numpy(), clean)
    return {"psnr": float(np.mean(values["psnr"])), "ssim": float(np.mean(values["ssim"]))}


def seed_metrics(run: Run, clean: torch.Tensor, sigmas: tuple[float, ...], seed: int) -> dict[str, Any]:
    """Every final-fit seed of every reported kind on the same test images: clean reconstruction and denoising at
    each sigma (primary protocol, the report's seeded noise), then mean / sd / min / max over seeds.

    Args:
        run: the run; ``run.finalfit`` is ``finalfit.json`` (None: nothing to do).
        clean: (N, 1, S, S) float test images in [0, 1] (the report's).
        sigmas: noise sd on the [0, 1] scale.
        seed: the report's noise seed (:func:`tuneae.noise.eval_noisy`), so each seed sees the same noisy images
            as the report's other sections.
    Returns:
        ``{kind: {"epochs", "best_seed", "seeds": [{"seed", "val_psnr", "test": {"psnr", "ssim"},
        "denoising": {sigma: psnr}}], "over_seeds": {"val_psnr" | "test_psnr" | "test_ssim" | "denoising_<sigma>":
        {"mean", "sd", "min", "max", "n"}}}}``; PSNR in dB, SSIM in [-1, 1]. Empty without a final fit.
    Raises:
        ReportError: a seed's checkpoint is missing or unreadable (names it).
    """
    ff = run.finalfit or {}
    noisy = {f"{s:g}": eval_noisy(clean, s, PRIMARY, seed, "test") for s in sigmas}
    clean_np = clean[:, 0].numpy()
    out: dict[str, Any] = {}
    for kind, k in (ff.get("kinds") or {}).items():
        if kind not in run.trials:
            continue
        rows = []
        for s in k["seeds"]:
            path = run.layout.checkpoint(s["checkpoint"])
            try:
                model, _ = load_checkpoint(path)
            except CheckpointError as exc:
                raise ReportError(f"{kind} final fit, seed {s['seed']}: {exc}") from exc
            rows.append({"seed": s["seed"], "val_psnr": s["metrics"]["val/psnr"],
                         "test": _mean_metrics(model, clean, clean_np),
                         "denoising": {key: _mean_metrics(model, x, clean_np)["psnr"] for key, x in noisy.items()}})
        over = {"val_psnr": over_seeds([r["val_psnr"] for r in rows]),
                "test_psnr": over_seeds([r["test"]["psnr"] for r in rows]),
                "test_ssim": over_seeds([r["test"]["ssim"] for r in rows]),
                **{f"denoising_{key}": over_seeds([r["denoising"][key] for r in rows]) for key in noisy}}
        out[kind] = {"epochs": k["train_config"]["epochs"], "best_seed": k["best_seed"], "seeds": rows,
                     "over_seeds": over}
    return out


def seeds_markdown(seeds: dict[str, Any]) -> list[str]:
    """The report's "Final fit" section (empty without one): per kind, mean +- sd [min, max] over seeds."""
    if not seeds:
        return []
    sigma_keys = sorted({k.removeprefix("denoising_") for s in seeds.values() for k in s["over_seeds"]
                         if k.startswith("denoising_")}, key=float)

    def cell(st: dict, digits: int = 2) -> str:
        return f"{st['mean']:.{digits}f} +- {st['sd']:.{digits}f} [{st['min']:.{digits}f}, {st['max']:.{digits}f}]"

    head = ["model", "seeds", "epochs", "best seed (val)", "val PSNR", "test PSNR", "test SSIM",
            *[f"denoised PSNR, sigma {k}" for k in sigma_keys]]
    rows = [[kind, str(s["over_seeds"]["test_psnr"]["n"]), str(s["epochs"]), str(s["best_seed"]),
             cell(s["over_seeds"]["val_psnr"]), cell(s["over_seeds"]["test_psnr"]),
             cell(s["over_seeds"]["test_ssim"], 3), *[cell(s["over_seeds"][f"denoising_{k}"]) for k in sigma_keys]]
            for kind, s in seeds.items()]
    return ["## Final fit: spread over training seeds", "",
            "Each kind's best configuration (chosen on validation by the search) trained again from scratch with "
            "several seeds (`python -m tuneae.finalfit`). Mean +- sample sd [min, max] over seeds, each seed on the "
            f"same test images and the same seeded noise ({PRIMARY}) as the rest of this report; PSNR in dB. Every "
            "other section reloads the seed with the best validation loss; its test numbers were not used to choose "
            "it. The sd over seeds (training) adds to the bootstrap intervals over images (test set).", "",
            "| " + " | ".join(head) + " |", "|" + "---|" * len(head),
            *["| " + " | ".join(r) + " |" for r in rows], ""]


__all__ = ["seed_metrics", "seeds_markdown"]
