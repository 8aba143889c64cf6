"""The report's tables: the CSV files' rows from the metrics, and Markdown table text."""
from __future__ import annotations

CSV_TABLES = ("reconstruction", "denoising", "denoising_classes", "layers")
"""The CSV tables of a report (``<name>.csv``)."""


def _stat_rows(summary: dict, keys: tuple[str, ...], n_all: int, **fixed) -> list[dict]:
    """CSV rows (overall, then per class) of one ``summarise`` result."""
    groups = {"all": {**summary, "n": n_all}, **summary["per_class"]}
    return [{**fixed, "class": g, "n": s["n"], **{f"{k}_{q}": s[k][q] for k in keys for q in ("mean", "std")}}
            for g, s in groups.items()]


def csv_tables(m: dict, layers: list[dict]) -> dict[str, list[dict]]:
    """The CSV tables (``CSV_TABLES``) as lists of rows, from the metrics."""
    n = m["data"]["test_images"]
    return {
        "reconstruction": [r for k, v in m["models"].items()
                           for r in _stat_rows(v["test"], ("mse", "psnr", "ssim"), n, model=k)],
        "denoising": [r for s, res in m["denoising"].items() for k, v in res.items()
                      for r in _stat_rows(v, ("psnr", "ssim"), n, sigma=s, method=k)],
        "denoising_classes": [{"sigma": s, "class": c, "n": v["n"], "noisy_psnr": round(v["noisy_psnr"], 3),
                               "best_learned": v["best_learned"],
                               "learned_gain_db": round(v["gain"][v["best_learned"]], 3),
                               "best_classical": v["best_classical"],
                               "classical_gain_db": round(v["gain"][v["best_classical"]], 3),
                               "learned_minus_classical_db": round(v["learned_minus_classical"], 3)}
                              for s, by in m["denoising_classes"].items() for c, v in by.items()],
        "layers": layers}


def fmt_stat(s: dict) -> str:
    """``"mean ± std"`` of one ``summarise`` statistic ``{"mean", "std"}``, 3 decimals."""
    return f"{s['mean']:.3f} ± {s['std']:.3f}"


def md_table(header: list[str], rows: list[list]) -> str:
    """A Markdown table: ``header`` cells, then one line per row (cells through ``str``)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])
