"""The text of ``report.md``: the measured numbers, tables and figure links of one report, section by section."""
from __future__ import annotations

from tuneae.models import BOTTLENECK
from tuneae.noise import PRIMARY
from tuneae.report.denoising import MAX_GROUP_SHARE, MIN_UNITS, few_units_note
from tuneae.report.layers import TOP_CHANNELS
from tuneae.report.pca import label as pca_label
from tuneae.report.pca import pca_markdown, pca_table_rows
from tuneae.report.seeds import seeds_markdown
from tuneae.report.statistics import fmt_interval, select_best
from tuneae.report.tables import CSV_TABLES, fmt_stat, md_table
from tuneae.report.targets import targets_markdown


def report_markdown(m: dict, figures: dict[str, str], gaps: list[dict], layers: list[dict],
                    search_md: list[str] = ()) -> str:
    """The text of report.md.

    Args:
        m: the report's metrics (``metrics.json``) with ``targets`` and ``wall_time_s`` filled in.
        figures: figure key (``bars``, ``grid``, ``curves``, ``denoise_<sigma>``, ``layers_<kind>``, ``vae``) ->
            PNG file name in the report folder (linked relatively).
        gaps: the ``denoising_classes`` CSV rows (:func:`tuneae.report.tables.csv_tables`).
        layers: the layer rows (:func:`tuneae.report.layers.layer_table`) of every model.
        search_md: the lines of the Search section (:func:`tuneae.report.search_plots.search_report`), placed
            before the closing Files section.
    Returns:
        Markdown text ending with a newline-free last line.
    """
    lines = [*_intro(m), *targets_markdown(m["targets"]), *seeds_markdown(m.get("finalfit") or {}),
             *_reconstruction(m, figures), *_denoising(m, gaps),
             *_classes(m), *_denoising_figures(m, figures), *_layers(m, figures, layers)]
    if "vae" in figures:
        lines += ["## VAE: samples from the prior and a latent interpolation", "",
                  "Top: decoded z ~ N(0, I). Bottom: two test images and the decoded linear interpolation of their "
                  "posterior means.", "", f"![VAE samples and interpolation]({figures['vae']})", ""]
    lines += [*search_md, "", "## Files", "",
              f"metrics.json (every number), {', '.join(CSV_TABLES)} (.csv); report made in {m['wall_time_s']} s.", ""]
    return "\n".join(lines)


def _intro(m: dict) -> list[str]:
    d = m["data"]
    return [f"# Report: {m['name']}", "",
            f"Run `{m['name']}`" + (f", made by `{m['command']}`" if m["command"] else "") + "."
            + (f" This report: `{m['report_command']}`." if m.get("report_command") else ""),
            f"Data: `{d['source']}` at {d['image_size']} px, classes {', '.join(d['classes'])}. Every metric is on "
            f"{d['test_images']} of the {d['test_total']} held-out **test** images, which the search never saw, as "
            f"the mean [95% percentile-bootstrap interval]. {_resampling(d)} {d['tuning_val_images']} validation "
            "images tune the classical denoisers and choose the best learned model, the classical comparator and "
            "the best bottleneck model; test images choose nothing. Differences between methods are paired per "
            "image, and one method 'beats' another only where the interval of the difference excludes 0. PSNR in "
            "dB (data range 1); SSIM as Wang et al. 2004 (11x11 Gaussian window of sd 1.5, population covariance, "
            "data range 1).", *_split(d), *_synthetic(d), ""]


def _resampling(d: dict) -> str:
    """What the intervals over test images resample: the scan groups (with their count), or, in metrics files
    written before groups were carried, the images."""
    if d.get("test_groups") is None:
        return "The intervals resample images."
    return (f"The intervals resample the test images' {d['test_groups']} scan groups, not the images: slices of one "
            "scan are alike, so a scan's images are drawn together (cluster bootstrap, Davison & Hinkley 1997, "
            "section 3.8; a group is an image's split unit, its scan joined with its copies, or the image alone "
            "where no scan is known); a class's interval resamples the groups of that class.")


def _synthetic(d: dict) -> list[str]:
    """A warning for a report on synthetic phantoms (the smoke preset): it checks the plumbing, not the science."""
    if not d.get("synthetic"):
        return []
    return ["", "**Synthetic data (phantoms): this report checks that the pipeline runs end to end. Its models are "
                "tiny and trained for seconds, so no number or target status here says anything about MRI.**"]


def _split(d: dict) -> list[str]:
    """One line: the split rule and the images per class in each split (absent in older metrics files)."""
    if not d.get("split") or not d.get("per_class"):
        return []
    rule = {"group": "by duplicate group (no group in two splits)", "original": "the folders' own, cross-split "
            "copies removed", "manifest": "read from a manifest"}.get(d["split"], d["split"])
    counts = "; ".join(f"{name} " + ", ".join(f"{c} {n}" for c, n in per.items())
                       for name, per in d["per_class"].items())
    if d["split"] != "group":
        limits = ""
    elif d.get("scan_rule"):
        resample = ("the intervals resample scan groups, so they are too narrow only where unlinked scans of one "
                    "patient are alike" if d.get("test_groups") is not None else "the intervals resample images, "
                    "not scans, so they are too narrow where a scan gives several test images")
        limits = (f" Slices of one scan are kept on one side ({d['scan_rule']}); slices of one patient that no rule "
                  f"links can still fall in different splits, and {resample}.")
    else:
        limits = (" Limits of this split that a reader should weigh: duplicates are found per image (equal pixels or "
                  "a difference hash within its distance), not per patient, so neighbouring slices of one scan can "
                  "still fall in different splits, which favours the learned models over the classical ones; and "
                  f"the intervals resample {'duplicate groups' if d.get('test_groups') is not None else 'images'}, "
                  "not patients.")
    return ["", f"Split: {rule}; images per class: {counts}.{limits}"]


def _reload(r: dict) -> list[str]:
    """Reported val/loss, reloaded val/loss and their relative difference, flagged when not reproduced."""
    if r["rel_diff"] is None:
        return ["-", f"{r['reloaded_val_loss']:.6g}", "-"]
    flag = "" if r["reproduced"] else " NOT REPRODUCED"
    return [f"{r['reported_val_loss']:.6g}", f"{r['reloaded_val_loss']:.6g}", f"{r['rel_diff']:.1e}{flag}"]


def _reconstruction(m: dict, figures: dict[str, str]) -> list[str]:
    mm, pca = m["models"], m.get("pca") or {}
    kinds = list(mm)
    per_class = [(k, mm[k]["test"]) for k in kinds] + [(pca_label(int(k)), c["test"])
                                                       for k, c in (pca.get("codes") or {}).items()]
    bottleneck = [k for k in kinds if k in BOTTLENECK]
    best = select_best({k: mm[k]["val"]["psnr"] for k in bottleneck}, bottleneck)
    skips = [k for k in kinds if k not in BOTTLENECK]
    which = (f"Best bottleneck model by validation PSNR (clean validation images): {best}"
             + (f" ({', '.join(skips)} left out: skip connections carry the input past any code, so "
                "their clean-input numbers are not reconstruction through a bottleneck)" if skips else "")
             if best else "No bottleneck model in this run")
    return ["## Reconstruction (clean input)", "",
            md_table(["model", "trial", "MSE", "PSNR (dB)", "SSIM", "val PSNR", "val/loss reported", "reloaded",
                      "rel. diff"],
                     [[k, mm[k]["trial"], fmt_stat(mm[k]["test"]["mse"], 5), fmt_stat(mm[k]["test"]["psnr"], 2),
                       fmt_stat(mm[k]["test"]["ssim"]), f"{mm[k]['val']['psnr']:.2f}", *_reload(mm[k]["reload_check"])]
                      for k in kinds] + pca_table_rows(pca)),
            "", *pca_markdown(pca), f"{which}. Per class, PSNR (dB) / SSIM:", "",
            md_table(["model", *mm[kinds[0]]["test"]["per_class"]],
                     [[k, *[f"{v['psnr']['mean']:.2f} / {v['ssim']['mean']:.3f}"
                            for v in t["per_class"].values()]] for k, t in per_class]),
            "", f"![test PSNR and SSIM]({figures['bars']})", "",
            f"![test images, each model's output and absolute error]({figures['grid']})", ""]


PROTOCOL_TEXT = {
    "awgn": "additive white Gaussian noise of sd sigma on the [0, 1] scale, **not clipped** (the primary protocol, "
            "as in the denoising literature)",
    "clipped8": "the same noise clipped to [0, 1] and quantized to 8 bits (the secondary protocol); the classical "
                "methods are bias-aware here: tuned on validation images with this noise, their output debiased "
                "for clipping (Foi 2009), while the learned denoisers were trained on the primary (unclipped) noise "
                "and see this protocol unadapted",
    "rician": "the magnitude of complex Gaussian noise of sd sigma per channel (Gudbjartsson & Patz 1995), as in "
              "MRI magnitude images; the classical methods get the true sigma and their output is bias-corrected by "
              "inverting the Rician mean, while the learned denoisers were trained on the primary (Gaussian) noise "
              "and see this protocol unadapted"}
"""How report.md describes each noise protocol."""


def _denoising(m: dict, gaps: list[dict]) -> list[str]:
    lines = ["## Denoising", "",
             "Every model gets the noisy image as input (only the denoising kinds were trained for it); each "
             "classical method is tuned per sigma on the validation images over a grid widened until the choice is "
             "interior. The best learned model (**bold** in the comparison) and the classical comparator are the "
             "ones with the best validation PSNR.", ""]
    for p, den in m["denoising"].items():
        sig = list(den)
        lines += [f"### {p}: {PROTOCOL_TEXT.get(p, p)}", ""]
        for met, digits in (("psnr", 2), ("ssim", 3)):
            lines += [f"Test {met.upper()}:", "",
                      md_table(["method", *[f"sigma {s}" for s in sig]],
                               [[n, *[fmt_stat(den[s][n][met], digits) for s in sig]] for n in den[sig[0]]]), ""]
        lines += [*_comparisons(m, p), *_tuning(m, p), ""]
    lines += ["Per class (primary protocol): PSNR gain over the noisy input (dB) of the best learned model and the "
              "comparator, and their paired difference:", "",
              md_table(["sigma", "class", "n (scan groups, largest group's share)", "noisy PSNR", "best learned",
                        "comparator", "learned - comparator"],
                       [[r["sigma"], r["class"], _units_cell(r), f"{r['noisy_psnr']:.2f}",
                         f"{r['best_learned']} {r['learned_gain_db']:+.2f}",
                         f"{r['best_classical']} {r['classical_gain_db']:+.2f}",
                         fmt_interval({"mean": r["learned_minus_classical_mean"],
                                       "low": r["learned_minus_classical_low"],
                                       "high": r["learned_minus_classical_high"]}, signed=True)]
                        for r in gaps if r["protocol"] == PRIMARY]),
              f"A class interval over fewer than {MIN_UNITS} scan groups, or with one group holding more than "
              f"{MAX_GROUP_SHARE:.0%} of its images, is marked FEW UNITS: the cluster bootstrap's interval is "
              "unreliable there (a resample leaves a group out with probability (1 - 1/G)^G), so read its class "
              "difference as descriptive only.", ""]
    return lines


def _units_cell(r: dict) -> str:
    """``n (G groups, largest S%)``, FEW UNITS where the interval rests on few independent groups."""
    if r.get("scan_groups") is None:
        return str(r["n"])
    return (f"{r['n']} ({r['scan_groups']} groups, largest {r['largest_group_share']:.0%})"
            + (" FEW UNITS" if r.get("few_units") else ""))


def _comparisons(m: dict, p: str) -> list[str]:
    """Each learned model minus the comparator (paired, test images), per sigma; says whose checkpoint the rows are
    (after a final fit, the best-validation seed of each kind) and, off the primary protocol, that the comparison
    is not like for like."""
    n = max((len(s.get("seeds") or []) for s in (m.get("finalfit") or {}).values()), default=0)
    whose = (f" Each learned row is one checkpoint, the best-validation seed of its kind's final fit (1 of {n}); "
             "the Targets section judges the mean over seeds." if n > 1 else "")
    unlike = (" Not like for like: the learned models were trained on their own noise protocol (see their "
              "train_config) and meet this one unadapted, while the classical methods were tuned and debiased for it, "
              "so these verdicts describe this test as run, not which method is better at this noise."
              if p != PRIMARY else "")
    rows = []
    for s, by in m["comparisons"][p].items():
        sel = m["selection"][p][s]
        for k, d in by.items():
            name = f"**{k}**" if k == sel["best_learned"] else k
            rows.append([s, f"{name} - {sel['comparator']}", fmt_interval(d["psnr"], signed=True),
                         fmt_interval(d["ssim"], 3, signed=True), d["psnr"]["verdict"]])
    return ["Learned minus classical comparator, paired per test image (PSNR dB, SSIM). The bold row, the learned "
            "model chosen on validation, is the claim; the other rows are for reference (one claim per sigma, so no "
            "correction for multiple comparisons is made). The comparator was chosen and tuned for PSNR, so only "
            "PSNR carries a verdict." + whose + unlike, "",
            md_table(["sigma", "difference", "PSNR", "SSIM", "PSNR verdict"], rows), ""] if rows else []


def _tuning(m: dict, p: str) -> list[str]:
    """The tuned classical parameters (a factor of sigma) and whether each is interior to its grid."""
    den = m["denoising"][p]
    methods = [k for k, v in next(iter(den.values())).items() if "tuning" in v]

    def cell(t):
        return f"{t['factor']:g}" + ("" if t["interior"] else " (grid EDGE)")

    return ["Classical parameters tuned on validation (factor of sigma; see tuneae.classical.METHODS):", "",
            md_table(["method", *[f"sigma {s}" for s in den]],
                     [[k, *[cell(den[s][k]["tuning"]) for s in den]] for k in methods])]


def _classes(m: dict) -> list[str]:
    """Per sigma (primary protocol): tumour classes against no-tumour (bullets), then every method per class."""
    lines = []
    for s, g in m["denoising_classes"].get(PRIMARY, {}).items():
        grp = g.get("groups") or {}
        if grp.get("tumour_minus_no_tumour"):
            lines.append(f"- sigma {s}: learned - comparator on the tumour/lesion classes "
                         f"({', '.join(grp['tumour_classes'])}) {fmt_interval(grp['tumour'], signed=True)} dB vs "
                         f"{fmt_interval(grp['no_tumour'], signed=True)} dB on {', '.join(grp['no_tumour_classes'])};"
                         f" tumour minus no-tumour {fmt_interval(grp['tumour_minus_no_tumour'], signed=True)} dB "
                         f"({grp['tumour_minus_no_tumour']['verdict']})" + few_units_note(grp.get("units")) + ".")
    lines += ["", "Every method per class (primary protocol), test PSNR (dB) / SSIM:", ""]
    den = m["denoising"][PRIMARY]
    sig = list(den)
    classes = list(den[sig[0]]["noisy"]["per_class"])
    for s in sig:
        lines += [md_table([f"sigma {s}", *classes],
                           [[n, *[f"{den[s][n]['per_class'][c]['psnr']['mean']:.2f} / "
                                  f"{den[s][n]['per_class'][c]['ssim']['mean']:.3f}" for c in classes]]
                            for n in den[s]]), ""]
    return lines


def _denoising_figures(m: dict, figures: dict[str, str]) -> list[str]:
    return ["", f"![denoising PSNR and SSIM against sigma (primary protocol)]({figures['curves']})", "",
            *[f"![sigma {s}: outputs (top), output - clean (bottom)]({figures[f'denoise_{s}']})"
              for s in m["denoising"][PRIMARY]]]


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
