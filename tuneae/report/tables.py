"""The report's tables: the CSV files' rows from the metrics, and Markdown table text."""
from __future__ import annotations

CSV_TABLES = ("reconstruction", "pca_comparisons", "denoising", "comparisons", "classical_tuning",
              "denoising_classes", "layers")
"""The CSV tables of a report (``<name>.csv``)."""
_STATS = ("mean", "std", "low", "high")


def _stat_rows(summary: dict, keys: tuple[str, ...], n_all: int, **fixed) -> list[dict]:
    """CSV rows (overall, then per class) of one ``summarise`` result: mean, sd and interval bounds per metric."""
    groups = {"all": {**summary, "n": n_all}, **summary["per_class"]}
    return [{**fixed, "class": g, "n": s["n"], **{f"{k}_{q}": s[k].get(q) for k in keys for q in _STATS}}
            for g, s in groups.items()]


def _diff_cols(d: dict | None) -> dict:
    d = d or {}
    return {"mean": d.get("mean"), "low": d.get("low"), "high": d.get("high"), "verdict": d.get("verdict")}


def _pca_comparisons(pca: dict) -> list[dict]:
    """The ``pca_comparisons`` CSV: one row per bottleneck kind and metric, over images and over seeds."""
    rows = []
    for kind, v in (pca.get("vs") or {}).items():
        for q in ("psnr", "ssim"):
            s = (v.get("over_seeds") or {}).get(q) or {}
            d = v[q]
            rows.append({"model": kind, "pca": v["pca"], "latent_dim": v["k"],
                         "components": pca["codes"][str(v["k"])]["components"],
                         "train_images": pca["train_images"], "metric": q, "mean": d["mean"], "low": d["low"],
                         "high": d["high"], "n_images": d["n"], "verdict": d["verdict"], "seeds": s.get("n"),
                         "seeds_mean": s.get("mean"), "seeds_low": s.get("low"), "seeds_high": s.get("high")})
    return rows


def csv_tables(m: dict, layers: list[dict]) -> dict[str, list[dict]]:
    """The CSV tables (``CSV_TABLES``) as lists of rows, from the metrics (see :func:`tuneae.report.make_report`).

    Every mean comes with its 95% bootstrap interval (``_low`` / ``_high``); differences are paired per image.
    ``reconstruction`` holds the PCA rows (``pca-<k>``) beside the models; ``pca_comparisons`` each bottleneck
    model minus PCA at its code size, over images and (``seeds_*``, a t-interval) over final-fit seeds.
    """
    n = m["data"]["test_images"]
    den, pca = m["denoising"], (m.get("pca") or {}).get("codes") or {}
    return {
        "reconstruction": [r for k, v in [*m["models"].items(), *((f"pca-{k}", c) for k, c in pca.items())]
                           for r in _stat_rows(v["test"], ("mse", "psnr", "ssim"), n, model=k)],
        "pca_comparisons": _pca_comparisons(m.get("pca") or {}),
        "denoising": [r for p, by in den.items() for s, res in by.items() for k, v in res.items()
                      for r in _stat_rows(v, ("psnr", "ssim"), n, protocol=p, sigma=s, method=k)],
        "comparisons": [{"protocol": p, "sigma": s, "learned": k, "comparator": m["selection"][p][s]["comparator"],
                         "chosen_learned": k == m["selection"][p][s]["best_learned"], "metric": q, **_diff_cols(d)}
                        for p, by in m["comparisons"].items() for s, ks in by.items() for k, qs in ks.items()
                        for q, d in qs.items()],
        "classical_tuning": [{"protocol": p, "sigma": s, "method": k, **{f: v["tuning"][f] for f in
                                                                          ("factor", "interior", "widenings",
                                                                           "validation_images")},
                              "val_psnr": m["selection"][p][s]["val_psnr"].get(k)}
                             for p, by in den.items() for s, res in by.items() for k, v in res.items()
                             if "tuning" in v],
        "denoising_classes": [{"protocol": p, "sigma": s, "class": c, "n": v["n"], "scan_groups": v.get("groups"),
                               "largest_group_share": v.get("largest_share"), "few_units": v.get("few_units"),
                               "noisy_psnr": round(v["noisy_psnr"], 3), "best_learned": v["best_learned"],
                               "learned_gain_db": round(v["gain"][v["best_learned"]], 3),
                               "best_classical": v["best_classical"],
                               "classical_gain_db": round(v["gain"][v["best_classical"]], 3),
                               **{f"learned_minus_classical_{f}": x for f, x in
                                  _diff_cols(v["learned_minus_classical"]).items()}}
                              for p, by in m["denoising_classes"].items() for s, g in by.items()
                              for c, v in (g.get("per_class") or {}).items()],
        "layers": layers}


def fmt_stat(s: dict, digits: int = 3) -> str:
    """``"mean [low, high]"`` of one summarised statistic (``"mean ± std"`` when it has no interval)."""
    if s.get("low") is None:
        return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"
    return f"{s['mean']:.{digits}f} [{s['low']:.{digits}f}, {s['high']:.{digits}f}]"


def md_table(header: list[str], rows: list[list]) -> str:
    """A Markdown table: ``header`` cells, then one line per row (cells through ``str``)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])
