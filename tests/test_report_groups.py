"""The report's intervals over test images resample scan groups (the cluster bootstrap of tuneae.metrics): every
summary, paired comparison and class-wise difference passes the groups of exactly its images."""
from __future__ import annotations

import numpy as np

from tuneae.report.denoising import SigmaResult, class_gaps, comparisons, references, selection, units
from tuneae.report.markdown import _intro
from tuneae.report.metrics import summarise
from tuneae.report.statistics import difference

CLASSES = ("glioma", "pituitary", "no_tumor")
LABELS = np.repeat([0, 1, 2], 20)  # 60 test images, 20 per class
GROUPS = np.repeat(np.arange(12), 5)  # 12 scans of 5 slices, 4 scans per class


def _width(d: dict) -> float:
    return d["high"] - d["low"]


def _result() -> SigmaResult:
    """A sigma's result in which the learned model's gain over the comparator varies by scan, not by image: every
    slice of a scan shares its scan's offset."""
    rng = np.random.default_rng(0)
    base = rng.normal(28.0, 2.0, 60)  # (N,) dB, per-image difficulty shared by every method
    scan_gain = np.repeat(rng.normal(0.5, 1.0, 12), 5)  # (N,) dB, one value per scan
    test = {}
    for k, mu in {"noisy": -8.0, "dunet": 0.0, "bm3d": 0.0, "nl_means": -1.0}.items():
        p = base + mu + (scan_gain if k == "dunet" else 0.0) + rng.normal(0.0, 0.05, 60)
        test[k] = {"mse": 10 ** (-p / 10), "psnr": p, "ssim": np.clip(0.6 + 0.01 * (p - 28), -1, 1)}
    return SigmaResult(test, {"noisy": 20.0, "dunet": 30.0, "bm3d": 29.0, "nl_means": 28.0}, {}, {})


def test_summaries_resample_groups_overall_and_per_class():
    values = {"psnr": np.repeat(np.random.default_rng(1).normal(30.0, 2.0, 12), 5), "mse": np.ones(60)}
    iid, clu = summarise(values, LABELS, CLASSES), summarise(values, LABELS, CLASSES, GROUPS)
    assert "groups" not in iid and "groups" not in iid["per_class"]["glioma"]  # without groups: as before
    assert clu["groups"] == 12 and [c["groups"] for c in clu["per_class"].values()] == [4, 4, 4]
    assert clu["psnr"]["mean"] == iid["psnr"]["mean"] and _width(clu["psnr"]) > 1.8 * _width(iid["psnr"])
    assert _width(clu["per_class"]["glioma"]["psnr"]) > 1.8 * _width(iid["per_class"]["glioma"]["psnr"])
    one_scan = summarise(values, LABELS, CLASSES, np.where(LABELS == 2, 99, GROUPS))["per_class"]["no_tumor"]
    assert one_scan["groups"] == 1 and one_scan["psnr"]["low"] is None  # one scan: no interval to give


def test_comparisons_and_class_gaps_pass_the_groups_of_their_images():
    r = _result()
    sel = selection(r, ["dunet"])
    assert (sel["best_learned"], sel["comparator"]) == ("dunet", "bm3d")
    iid, clu = comparisons(r, ["dunet"], "bm3d")["dunet"]["psnr"], comparisons(r, ["dunet"], "bm3d", GROUPS)
    clu = clu["dunet"]["psnr"]
    assert "groups" not in iid and clu["groups"] == 12 and clu["n"] == 60
    assert clu["mean"] == iid["mean"] and _width(clu) > 1.8 * _width(iid)
    assert references(r, ["dunet"], ("bm3d",), GROUPS)["bm3d"]["dunet"]["psnr"] == clu
    gaps = class_gaps(r, LABELS, CLASSES, ["dunet", "bm3d", "nl_means"], sel, GROUPS)
    plain = class_gaps(r, LABELS, CLASSES, ["dunet", "bm3d", "nl_means"], sel)
    for c in CLASSES:
        d, p = gaps["per_class"][c]["learned_minus_classical"], plain["per_class"][c]["learned_minus_classical"]
        assert d["groups"] == 4 and d["mean"] == p["mean"] and _width(d) > _width(p)
    g = gaps["groups"]
    assert (g["tumour"]["groups"], g["no_tumour"]["groups"], g["tumour_minus_no_tumour"]["groups"]) == (8, 4, 12)
    assert _width(g["tumour_minus_no_tumour"]) > 1.8 * _width(plain["groups"]["tumour_minus_no_tumour"])


def test_intervals_over_few_or_dominated_groups_are_flagged_in_the_report():
    from tuneae.report.denoising import few_units_note
    from tuneae.report.markdown import _denoising
    from tuneae.report.tables import csv_tables

    assert units(None) == {} and units(np.arange(30))["few_units"] is False  # 30 groups of one image
    assert units(np.repeat(np.arange(4), 5)) == {"groups": 4, "largest_share": 0.25, "few_units": True}
    dominated = np.concatenate([np.zeros(31), np.arange(1, 21)])  # one group of 31 images, 20 singletons
    assert units(dominated)["groups"] == 21 and units(dominated)["few_units"] is True  # 61% in one group
    r = _result()
    sel = selection(r, ["dunet"])
    gaps = class_gaps(r, LABELS, CLASSES, ["dunet", "bm3d", "nl_means"], sel, GROUPS)
    assert gaps["per_class"]["no_tumor"]["groups"] == 4 and gaps["per_class"]["no_tumor"]["few_units"]
    assert gaps["groups"]["units"]["no_tumour"] == {"groups": 4, "largest_share": 0.25, "few_units": True}
    assert "no-tumour 4 scan groups, largest 25%" in few_units_note(gaps["groups"]["units"])
    m = {"denoising_classes": {"awgn": {"0.1": gaps}}, "denoising": {}, "comparisons": {}, "selection": {},
         "data": {"test_images": 60},
         "pca": {}, "models": {}, "layers": {}}
    rows = csv_tables(m, [])["denoising_classes"]
    assert {r["class"]: (r["scan_groups"], r["few_units"]) for r in rows}["no_tumor"] == (4, True)
    text = "\n".join(_denoising(m, rows))
    assert "| 0.1 | no_tumor | 20 (4 groups, largest 25%) FEW UNITS |" in text


def test_difference_with_a_single_group_gives_no_interval():
    a, b = np.arange(5.0), np.zeros(5)
    one = difference(a, b, groups=np.zeros(5))
    assert one["low"] is None and one["verdict"] == "too few groups" and not one["beats"] and one["groups"] == 1
    two = difference(a, b[:3], paired=False, groups=(np.zeros(5), np.arange(3)))
    assert two["low"] is None and two["verdict"] == "too few groups" and two["groups"] == 4


def test_report_text_says_what_the_intervals_resample():
    m = {"name": "r", "command": None, "data": {"source": "x", "image_size": 32, "classes": list(CLASSES),
                                                  "test_images": 60, "test_total": 60, "tuning_val_images": 8}}
    assert "The intervals resample images." in "\n".join(_intro(m))  # metrics.json of an older report
    m["data"]["test_groups"] = 12
    text = "\n".join(_intro(m))
    assert "resample the test images' 12 scan groups" in text and "Davison & Hinkley 1997" in text
