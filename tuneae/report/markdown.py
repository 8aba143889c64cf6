"""The text of ``report.md``: the measured numbers, tables and figure links of one report, section by section."""
from __future__ import annotations

from tuneae.report.denoising import class_mean
from tuneae.report.layers import TOP_CHANNELS
from tuneae.report.tables import CSV_TABLES, fmt_stat, md_table
from tuneae.report.targets import NO_TUMOUR, targets_markdown


def report_markdown(m: dict, figures: dict[str, str], gaps: list[dict], layers: list[dict]) -> str:
    """The text of report.md.

    Args:
        m: the report's metrics (``metrics.json``) with ``targets`` and ``wall_time_s`` filled in.
        figures: figure key (``bars``, ``grid``, ``curves``, ``denoise_<sigma>``, ``layers_<kind>``, ``vae``) ->
            PNG file name in the report folder (linked relatively).
        gaps: the ``denoising_classes`` CSV rows (:func:`tuneae.report.tables.csv_tables`).
        layers: the layer rows (:func:`tuneae.report.layers.layer_table`) of every model.
    Returns:
        Markdown text ending with a newline-free last line.
    """
    lines = [*_intro(m), *targets_markdown(m["targets"]), *_reconstruction(m, figures), *_denoising(m, gaps),
             *_classes(m), *_denoising_figures(m, figures), *_layers(m, figures, layers)]
    if "vae" in figures:
        lines += ["## VAE: samples from the prior and a latent interpolation", "",
                  "Top: decoded z ~ N(0, I). Bottom: two test images and the decoded linear interpolation of their "
                  "posterior means.", "", f"![VAE samples and interpolation]({figures['vae']})", ""]
    lines += ["## Files", "", f"metrics.json (every number), {', '.join(CSV_TABLES)} (.csv); report made in "
              f"{m['wall_time_s']} s.", ""]
    return "\n".join(lines)


def _intro(m: dict) -> list[str]:
    d = m["data"]
    return [f"# Report: {m['name']}", "",
            f"Run `{m['name']}`" + (f", made by `{m['command']}`" if m["command"] else "") + ".",
            f"Data: `{d['source']}` at {d['image_size']} px, classes {', '.join(d['classes'])}. Every metric is on "
            f"{d['test_images']} of the {d['test_total']} held-out **test** images, which the search never saw; "
            f"the classical denoisers were tuned on {d['tuning_val_images']} validation images. PSNR in dB (data "
            f"range 1), SSIM after Wang et al. 2004; mean ± std over images.", *_split(d), ""]


def _split(d: dict) -> list[str]:
    """One line: the split rule and the images per class in each split (absent in older metrics files)."""
    if not d.get("split") or not d.get("per_class"):
        return []
    rule = {"group": "by duplicate group (no group in two splits)", "original": "the folders' own, cross-split "
            "copies removed", "manifest": "read from a manifest"}.get(d["split"], d["split"])
    counts = "; ".join(f"{name} " + ", ".join(f"{c} {n}" for c, n in per.items())
                       for name, per in d["per_class"].items())
    return ["", f"Split: {rule}; images per class: {counts}."]


def _reload(r: dict) -> list[str]:
    """Reported val/loss, reloaded val/loss and their relative difference, flagged when not reproduced."""
    if r["rel_diff"] is None:
        return ["-", f"{r['reloaded_val_loss']:.6g}", "-"]
    flag = "" if r["reproduced"] else " NOT REPRODUCED"
    return [f"{r['reported_val_loss']:.6g}", f"{r['reloaded_val_loss']:.6g}", f"{r['rel_diff']:.1e}{flag}"]


def _reconstruction(m: dict, figures: dict[str, str]) -> list[str]:
    mm = m["models"]
    kinds = list(mm)
    return ["## Reconstruction (clean input)", "",
            md_table(["model", "trial", "MSE", "PSNR (dB)", "SSIM", "val/loss reported", "reloaded", "rel. diff"],
                     [[k, mm[k]["trial"], *[fmt_stat(mm[k]["test"][q]) for q in ("mse", "psnr", "ssim")],
                       *_reload(mm[k]["reload_check"])] for k in kinds]),
            "", "Per class, PSNR (dB) / SSIM:", "",
            md_table(["model", *mm[kinds[0]]["test"]["per_class"]],
                     [[k, *[f"{v['psnr']['mean']:.2f} / {v['ssim']['mean']:.3f}"
                            for v in mm[k]["test"]["per_class"].values()]] for k in kinds]),
            "", f"![test PSNR and SSIM]({figures['bars']})", "",
            f"![test images, each model's output and absolute error]({figures['grid']})", ""]


def _denoising(m: dict, gaps: list[dict]) -> list[str]:
    den = m["denoising"]
    sig = list(den)
    methods = [k for k in next(iter(den.values())) if k not in m["models"] and k != "noisy"]
    lines = ["## Denoising", "",
             "Gaussian noise of sd sigma on the [0, 1] scale, clipped to [0, 1], added to the test images; every "
             "model gets the noisy image as input (only dae and dunet were trained for it). Test PSNR (dB):", ""]
    for met in ("psnr", "ssim"):
        lines += [md_table(["method", *[f"sigma {s}" for s in sig]],
                           [[n, *[fmt_stat(den[s][n][met]) for s in sig]] for n in den[sig[0]]]), ""]
        lines += ["SSIM:", ""] if met == "psnr" else []
    lines += [
        "Classical parameters, tuned per sigma on the validation images (nl_means: h / sigma; tv_chambolle: "
        "weight / sigma; wavelet: rule and sigma scale): " + "; ".join(
            f"sigma {s}: " + ", ".join(f"{k} {den[s][k]['param']}" for k in methods) for s in sig) + ".", "",
        "Per class: PSNR gain over the noisy input (dB) of the best learned and the best classical method:", "",
        md_table(["sigma", "class", "n", "noisy PSNR", "best learned", "best classical", "learned - classical"],
                 [[r["sigma"], r["class"], r["n"], f"{r['noisy_psnr']:.2f}",
                   f"{r['best_learned']} {r['learned_gain_db']:+.2f}",
                   f"{r['best_classical']} {r['classical_gain_db']:+.2f}",
                   f"{r['learned_minus_classical_db']:+.2f}"] for r in gaps]), ""]
    return lines


def _classes(m: dict) -> list[str]:
    """Per sigma: tumour classes against no-tumour (bullets), then every method per class."""
    lines = []
    for s, by in m["denoising_classes"].items():
        healthy, sick = [c for c in by if c in NO_TUMOUR], [c for c in by if c not in NO_TUMOUR]
        if healthy and sick:
            g = {c: {**v, "gain": v["gain"][v["best_learned"]]} for c, v in by.items()}
            lines.append(f"- sigma {s}: the best learned model gains {class_mean(g, sick, 'gain'):.2f} dB on the "
                         f"tumour/lesion classes ({', '.join(sick)}) vs {class_mean(g, healthy, 'gain'):.2f} dB on "
                         f"{', '.join(healthy)}; relative to the best classical method "
                         f"{class_mean(by, sick):+.2f} vs {class_mean(by, healthy):+.2f} dB (image-weighted means).")
    lines += ["", "Every method per class, test PSNR (dB) / SSIM:", ""]
    den = m["denoising"]
    sig = list(den)
    classes = list(den[sig[0]]["noisy"]["per_class"])
    for s in sig:
        lines += [md_table([f"sigma {s}", *classes],
                           [[n, *[f"{den[s][n]['per_class'][c]['psnr']['mean']:.2f} / "
                                  f"{den[s][n]['per_class'][c]['ssim']['mean']:.3f}" for c in classes]]
                            for n in den[s]]), ""]
    return lines


def _denoising_figures(m: dict, figures: dict[str, str]) -> list[str]:
    return ["", f"![denoising PSNR and SSIM against sigma]({figures['curves']})", "",
            *[f"![sigma {s}: outputs (top), output - clean (bottom)]({figures[f'denoise_{s}']})"
              for s in m["denoising"]]]


def _layers(m: dict, figures: dict[str, str], layers: list[dict]) -> list[str]:
    lines = ["", "## Intermediate layers", "",
             f"For one test image, each layer's channel mean and its {TOP_CHANNELS} most active channels (mean "
             "|activation|). Receptive field: bounding box of the input pixels on which the layer's centre "
             "activation has a non-zero gradient; effective: at least 1% of the largest gradient. Group normalization "
             "and per-image input standardization make every activation depend (weakly) on every pixel through "
             "their statistics, so there the first column is the whole image and the effective one is the "
             "meaningful size.", ""]
    for k in m["models"]:
        lines += [f"### {k}", "", md_table(["layer", "C x H x W", "receptive field", "effective", "captures"],
                                           [[r["layer"], f"{r['channels']} x {r['height']} x {r['width']}",
                                             f"{r['receptive_field_px']} px", f"{r['effective_rf_px']} px",
                                             r["captures"]] for r in layers if r["model"] == k]),
                  "", f"![{k} feature maps]({figures[f'layers_{k}']})", ""]
    return lines
