"""The report's claims without a search: selection on validation (never test), paired differences with intervals,
the targets built from them (tuneae.report.denoising / statistics / targets)."""
from __future__ import annotations

import numpy as np
import pytest

from tuneae.classical import METHODS
from tuneae.noise import PRIMARY
from tuneae.report.denoising import SigmaResult, class_gaps, comparisons, references, selection
from tuneae.report.metrics import summarise
from tuneae.report.statistics import (
    difference,
    fmt_interval,
    seed_interval,
    select_best,
    threshold_status,
    welch_interval,
)
from tuneae.report.targets import DENOISING_TARGETS_DB, TARGET_MARGIN_DB, check_targets, target_gaps, targets_markdown
from tuneae.report.versus import BM3D_MARGIN_DB, PCA_MARGIN_DB, REFERENCES

CLASSES = ("glioma", "pituitary", "no_tumor")
LABELS = np.repeat([0, 1, 2], 20)  # 60 test images, 20 per class


def _per_image(mean: float, seed: int, sd: float = 1.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = mean + sd * rng.standard_normal(len(LABELS))
    return {"mse": 10 ** (-p / 10), "psnr": p, "ssim": np.clip(0.6 + 0.01 * (p - mean), -1, 1)}


def _result(test_means: dict[str, float], val_psnr: dict[str, float]) -> SigmaResult:
    """A sigma's result: per-image test metrics around the given means (shared per-image difficulty), and the
    validation scores that alone may choose."""
    shared = np.random.default_rng(0).normal(0, 2.0, len(LABELS))
    test = {}
    for i, (k, mu) in enumerate(test_means.items()):
        t = _per_image(mu, 10 + i, 0.3)
        t["psnr"] = t["psnr"] + shared
        test[k] = t
    return SigmaResult(test, val_psnr, {}, {})


def _metrics(r: SigmaResult, learned: list[str], key: str = "0.1") -> dict:
    """The report's metrics for one sigma, built by the same functions as make_report."""
    sel = selection(r, learned)
    return {"denoising": {PRIMARY: {key: {k: summarise(v, LABELS, CLASSES) for k, v in r.test.items()}}},
            "selection": {PRIMARY: {key: sel}},
            "comparisons": {PRIMARY: {key: comparisons(r, learned, sel["comparator"])}},
            "reference_comparisons": {PRIMARY: {key: references(r, learned, REFERENCES)}},
            "denoising_classes": {PRIMARY: {key: class_gaps(r, LABELS, CLASSES, [*learned, *METHODS], sel)}},
            "models": {}}


def _test_means(dunet: float, ae: float, bm3d: float, nlm: float) -> dict[str, float]:
    return {"noisy": 20.0, "ae": ae, "dunet": dunet, "nl_means": nlm, "tv_chambolle": nlm - 1, "wavelet": nlm - 2,
            "bm3d": bm3d}


def test_best_model_and_comparator_are_chosen_on_validation_even_when_test_disagrees():
    # on test, ae beats dunet and bm3d beats nl_means; on validation it is the other way round
    r = _result(_test_means(dunet=27.0, ae=29.0, bm3d=28.0, nlm=26.0),
                {"noisy": 20.0, "ae": 24.0, "dunet": 27.5, "nl_means": 26.5, "tv_chambolle": 25.0, "wavelet": 24.0,
                 "bm3d": 26.0})
    sel = selection(r, ["ae", "dunet"])
    assert sel["best_learned"] == "dunet" and sel["comparator"] == "nl_means"
    t = check_targets(_metrics(r, ["ae", "dunet"]))["denoising"]["0.1"]
    assert t["best_learned"] == "dunet" and t["best_classical"] == "nl_means" and t["chosen_on"] == "validation"
    assert t["psnr"]["mean"] == pytest.approx(r.test["dunet"]["psnr"].mean())
    assert t["target"] == pytest.approx(max(DENOISING_TARGETS_DB[0.1], r.test["nl_means"]["psnr"].mean()
                                            + TARGET_MARGIN_DB))
    assert t["met"] == (t["psnr"]["mean"] >= t["target"])
    d = t["learned_minus_classical"]  # paired: the shared per-image difficulty cancels, the interval is tight
    assert d["low"] < d["mean"] < d["high"] and d["high"] - d["low"] < 0.5 and d["beats"]
    if t["target"] > DENOISING_TARGETS_DB[0.1]:  # the comparator sets the target: judged on the paired difference
        assert t["judged_on"].startswith("paired") and t["status"] == threshold_status(d, TARGET_MARGIN_DB)
    else:
        assert t["status"] == threshold_status(t["psnr"], t["target"])


def test_reconstruction_target_judges_the_bottleneck_model_best_on_validation():
    def model(latent, val_psnr, test_psnr, test_ssim):
        return {"model_config": {"latent_dim": latent}, "val": {"psnr": val_psnr},
                "test": {"psnr": {"mean": test_psnr, "low": test_psnr - 0.3, "high": test_psnr + 0.3},
                         "ssim": {"mean": test_ssim, "low": test_ssim - 0.01, "high": test_ssim + 0.01}}}

    m = {"models": {"ae": model(1024, 22.0, 27.0, 0.80),  # best on test, not on validation
                    "dae": model(2048, 23.0, 26.5, 0.70),  # best on validation: judged, misses SSIM
                    "vae": model(4096, 30.0, 30.0, 0.90),  # latent too large to count
                    "dunet": model(0, 35.0, 35.0, 0.95)},  # skips: not a bottleneck model
         "denoising": {}}
    r = check_targets(m)["reconstruction"]
    assert r["best_bottleneck"] == "dae" and r["chosen_on"] == "validation" and not r["met"]
    assert r["status"] == {"psnr": "met (clearly)", "ssim": "not met (clearly)"}
    del m["models"]["dae"], m["models"]["ae"]
    assert check_targets(m)["reconstruction"] is None


def test_tumour_class_condition_uses_an_interval():
    r = _result(_test_means(dunet=27.0, ae=25.0, bm3d=26.0, nlm=26.5),
                {"ae": 24.0, "dunet": 27.5, "nl_means": 26.5, "tv_chambolle": 25.0, "wavelet": 24.0, "bm3d": 26.0})
    r.test["dunet"]["psnr"][LABELS == 2] += 1.0  # the learned model gains more on no_tumor
    t = check_targets(_metrics(r, ["ae", "dunet"]))["denoising"]["0.1"]
    gap = t["tumour_minus_no_tumour"]
    assert t["healthy_classes"] == ["no_tumor"] and gap["mean"] == pytest.approx(-1.0, abs=0.3)
    assert gap["high"] < 0 and t["tumour_classes_no_worse"] is False and t["tumour_status"] == "not met (clearly)"
    md = "\n".join(targets_markdown(check_targets(_metrics(r, ["ae", "dunet"]))))
    assert "## Targets" in md and "no_tumor" in md and "[" in md and "validation" in md


def test_targets_skip_unmeasured_sigmas_and_missing_classes():
    r = _result(_test_means(dunet=30.0, ae=25.0, bm3d=26.0, nlm=26.5),
                {"ae": 24.0, "dunet": 27.5, "nl_means": 26.5, "tv_chambolle": 25.0, "wavelet": 24.0, "bm3d": 26.0})
    m = _metrics(r, ["ae", "dunet"])
    m["denoising_classes"] = {}
    t = check_targets(m)
    assert set(t["denoising"]) == {"0.1"} and t["denoising"]["0.1"]["tumour_classes_no_worse"] is None
    assert t["denoising"]["0.1"]["status"].startswith("met")


def test_statistics_helpers():
    assert select_best({"a": 1.0, "b": 3.0, "c": float("nan")}, ["a", "b", "c"]) == "b"
    assert select_best({"a": 2.0, "b": 2.0}, ["b", "a"]) == "b"  # ties: the first listed
    assert select_best({}, ["a"]) is None
    few = difference(np.array([1.0]), np.array([0.0]))
    assert few["low"] is None and few["verdict"] == "too few images" and not few["beats"]
    s = {"mean": 28.5, "low": 28.1, "high": 28.9}
    assert threshold_status(s, 28.0) == "met (clearly)" and threshold_status(s, 28.3) == "met"
    assert threshold_status(s, 28.7) == "not met" and threshold_status(s, 29.0) == "not met (clearly)"
    assert fmt_interval(s) == "28.50 [28.10, 28.90]" and fmt_interval(None) == "-"
    assert fmt_interval({"mean": 0.5, "low": None}, signed=True) == "+0.50"


def _seed_rows(test_psnr: list[float], test_ssim: list[float], den: list[float]) -> dict:
    """A kind's final-fit entry (:func:`tuneae.report.seeds.seed_metrics`): one row per seed, seed 1 the best."""
    return {"kind": "x", "best_seed": 1, "seeds": [{"seed": i + 1, "test": {"psnr": p, "ssim": s},
                                                    "denoising": {"0.1": d}}
                                                   for i, (p, s, d) in enumerate(zip(test_psnr, test_ssim, den))]}


def _bottleneck(test_psnr: float, test_ssim: float) -> dict:
    return {"model_config": {"latent_dim": 512}, "val": {"psnr": 24.0},
            "test": {"psnr": {"mean": test_psnr, "low": test_psnr - 0.2, "high": test_psnr + 0.2},
                     "ssim": {"mean": test_ssim, "low": test_ssim - 0.01, "high": test_ssim + 0.01}}}


def test_reconstruction_headline_is_the_seed_mean_and_is_what_is_judged():
    # the best-validation seed alone meets both targets; the mean over its three seeds misses PSNR
    m = {"models": {"ae": _bottleneck(26.5, 0.80)}, "denoising": {},
         "finalfit": {"ae": _seed_rows([26.5, 25.0, 25.3], [0.80, 0.78, 0.79], [20.0] * 3)}}
    r = check_targets(m)["reconstruction"]
    h = r["headline"]
    assert h["basis"] == "seed mean" and h["n_seeds"] == 3 and h["best_seed"] == 1
    assert h["psnr"]["mean"] == pytest.approx(25.6) and h["psnr"]["low"] < 25.6 < h["psnr"]["high"]
    assert h["ssim"]["mean"] == pytest.approx(0.79)
    assert not r["met"] and r["gap_db"] == pytest.approx(0.4) and r["status"]["psnr"].startswith("not met")
    assert r["psnr"]["mean"] == 26.5  # the best-validation seed's number stays beside it
    md = "\n".join(targets_markdown(check_targets(m)))
    assert "ae, mean of 3 seeds: 25.60 [" in md and "seed 1: 26.50 [26.30, 26.70] dB" in md
    assert "best-validation seed" in md
    m["finalfit"]["ae"]["seeds"] = m["finalfit"]["ae"]["seeds"][:1]  # one seed: the single run is the headline
    r = check_targets(m)["reconstruction"]
    assert r["headline"]["basis"] == "single run" and r["met"]
    assert r["headline"]["psnr"] == m["models"]["ae"]["test"]["psnr"]
    del m["finalfit"]
    r = check_targets(m)["reconstruction"]
    assert r["headline"]["basis"] == "single run" and r["met"] and r["vs_pca"] is None
    assert "ae, single run: 26.50 [26.30, 26.70] dB" in "\n".join(targets_markdown(check_targets(m)))


def test_reconstruction_against_pca_beats_only_when_the_interval_excludes_0():
    def pca(per_seed: list[float] | None, over_images: dict) -> dict:
        seeds = None if per_seed is None else {"seeds": list(range(1, len(per_seed) + 1)),
                                               "psnr": seed_interval(per_seed), "ssim": seed_interval([0.0] * 2)}
        return {"vs": {"ae": {"k": 512, "pca": "pca-512", "psnr": over_images, "over_seeds": seeds}}}

    clear = {"mean": 0.5, "low": 0.3, "high": 0.7, "verdict": "ae better"}
    m = {"models": {"ae": _bottleneck(25.0, 0.7)}, "denoising": {}, "pca": pca(None, clear)}
    p = check_targets(m)["reconstruction"]["vs_pca"]
    assert p["basis"] == "single run" and p["met"] and p["status"] == "met (clearly)" and p["headline"] == clear
    m["pca"] = pca([0.4, -0.1, 0.5], clear)  # the best seed's images say "beats", the seeds do not
    p = check_targets(m)["reconstruction"]["vs_pca"]
    assert p["basis"] == "seed mean" and p["n_seeds"] == 3 and p["headline"]["mean"] == pytest.approx(0.2667, abs=1e-3)
    assert not p["met"] and p["status"] == "not met (interval includes 0)" and p["paired_over_images"] == clear
    m["pca"] = pca([-1.0, -1.1, -0.9], clear)
    p = check_targets(m)["reconstruction"]["vs_pca"]
    assert not p["met"] and p["status"] == "not met (clearly)" and p["headline"]["high"] < 0
    md = "\n".join(targets_markdown(check_targets(m)))
    assert "ae vs pca-512 (PCA at the same code size, fitted on the training images)" in md
    assert "ae - pca-512, mean of 3 seeds: -1.00 [" in md and "+0.50 [+0.30, +0.70] dB, paired over images" in md


def test_denoising_headline_is_the_seed_mean_of_the_chosen_model():
    r = _result(_test_means(dunet=30.0, ae=25.0, bm3d=26.0, nlm=26.5),
                {"ae": 24.0, "dunet": 27.5, "nl_means": 26.5, "tv_chambolle": 25.0, "wavelet": 24.0, "bm3d": 26.0})
    m = _metrics(r, ["ae", "dunet"])
    single = check_targets(m)["denoising"]["0.1"]
    assert single["met"] and single["headline"]["basis"] == "single run"
    assert single["headline"]["psnr"] == single["psnr"]
    # the fixed target (28.3) is above the comparator + 1: judged on the learned model's PSNR, here its mean over seeds
    m["finalfit"] = {"dunet": _seed_rows([35.0] * 3, [0.9] * 3, [30.0, 28.0, 27.0]),
                     "ae": _seed_rows([25.0] * 3, [0.7] * 3, [40.0] * 3)}  # ae is not the chosen model
    t = check_targets(m)["denoising"]["0.1"]
    h = t["headline"]
    assert h["basis"] == "seed mean" and h["psnr"]["mean"] == pytest.approx(28.3333, abs=1e-3)
    ref = m["denoising"][PRIMARY]["0.1"][t["best_classical"]]["psnr"]["mean"]  # the comparator, deterministic
    assert h["learned_minus_classical"]["per_seed"] == pytest.approx([30.0 - ref, 28.0 - ref, 27.0 - ref])
    assert t["psnr"] == single["psnr"]  # the best-validation seed's, over images
    # mean 28.33 >= 28.3 but the t-interval of dunet - bm3d over 3 seeds includes 0 -> not met
    assert h["learned_minus_classical"]["low"] < 0 and not t["met"] and t["status"] == "not met (interval includes 0)"
    m["finalfit"]["dunet"] = _seed_rows([35.0] * 3, [0.9] * 3, [30.0, 29.8, 30.1])
    t = check_targets(m)["denoising"]["0.1"]
    assert t["met"] and t["status"] == "met (clearly)" and t["gap_db"] == 0
    comparator = t["best_classical"]
    m["finalfit"]["dunet"]["seed_mean_paired"] = {"0.1": {comparator: {"mean": 3.5, "low": -0.1, "high": 7.0}}}
    t = check_targets(m)["denoising"]["0.1"]  # the seeds agree, the scans do not: not met
    assert not t["met"] and t["status"].startswith("not met (the seed mean paired over images includes 0")
    m["finalfit"]["dunet"]["seed_mean_paired"]["0.1"][comparator]["low"] = 2.0
    t = check_targets(m)["denoising"]["0.1"]
    assert t["met"] and t["seed_mean_paired"]["low"] == 2.0
    del m["finalfit"]["dunet"]["seed_mean_paired"]
    md = "\n".join(targets_markdown(check_targets(m)))
    assert "dunet, mean of 3 seeds: 29.97 [" in md and "seed 1: " in md


# --- the issue's targets (tuneae.report.versus): PCA + 1 dB in every seed, BM3D + 0.5 dB, DnCNN, the recipe, gpu


def _pca_m(over_images: dict, per_seed: list[float] | None = None, paired: list[tuple] | None = None,
           test_psnr: float = 27.0) -> dict:
    """Metrics with ae (the best bottleneck model) against pca-512: over images, per seed and paired per seed."""
    seeds = None
    if per_seed is not None:
        seeds = {"seeds": list(range(1, len(per_seed) + 1)), "psnr": seed_interval(per_seed),
                 "ssim": seed_interval([0.0] * len(per_seed))}
        if paired is not None:
            seeds["paired"] = [{"seed": i + 1, "mean": mu, "low": lo, "high": hi} for i, (mu, lo, hi) in
                               enumerate(paired)]
    return {"models": {"ae": _bottleneck(test_psnr, 0.8)}, "denoising": {},
            "pca": {"vs": {"ae": {"k": 512, "pca": "pca-512", "psnr": over_images, "over_seeds": seeds}}}}


def test_issue_pca_margin_needs_1_db_and_every_seed_s_paired_interval_above_0():
    assert PCA_MARGIN_DB == 1.0
    p = check_targets(_pca_m({"mean": 1.5, "low": 1.3, "high": 1.7}))["reconstruction"]["pca_margin"]
    assert p["basis"] == "single run" and p["met"] and p["status"] == "met (clearly)"
    assert p["per_seed"][0]["seed"] is None and p["every_seed_excludes_0"]  # the reported run is the one seed
    p = check_targets(_pca_m({"mean": 0.8, "low": 0.6, "high": 0.95}))["reconstruction"]["pca_margin"]
    assert not p["met"] and p["status"] == "not met (clearly)" and p["gap_db"] == pytest.approx(0.2)
    p = check_targets(_pca_m({"mean": 1.5, "low": -0.1, "high": 3.1}))["reconstruction"]["pca_margin"]
    assert not p["met"] and "reported run" in p["status"]  # the mean is there, the interval includes 0
    ok = [(1.5, 1.3, 1.7), (1.6, 1.4, 1.8), (1.4, 1.2, 1.6)]
    m = _pca_m({"mean": 1.5, "low": 1.3, "high": 1.7}, [1.5, 1.6, 1.4], ok)
    t = check_targets(m)
    p = t["reconstruction"]["pca_margin"]
    assert p["basis"] == "seed mean" and p["n_seeds"] == 3 and p["headline"]["mean"] == pytest.approx(1.5)
    assert p["met"] and p["status"] == "met (clearly)" and t["gpu"] is None
    md = "\n".join(targets_markdown(t))
    assert "issue 1: best bottleneck model vs PCA at the same code size + 1 dB" in md
    assert "ae - pca-512, mean of 3 seeds: +1.50 [" in md and "seed 2: +1.60 [+1.40, +1.80]" in md
    assert "--preset gpu" not in md  # every issue target measured here is met: no gpu run to ask for
    # one seed whose paired interval includes 0: not met although the mean over seeds clears the margin
    t = check_targets(_pca_m(m["pca"]["vs"]["ae"]["psnr"], [1.5, 1.6, 1.4], [ok[0], (1.6, -0.1, 3.3), ok[2]]))
    p = t["reconstruction"]["pca_margin"]
    assert not p["met"] and p["every_seed_excludes_0"] is False and p["status"].endswith("for seed 2)")
    assert t["gpu"]["kinds"] == ["ae"]
    p = check_targets(_pca_m(m["pca"]["vs"]["ae"]["psnr"], [0.5, 0.6, 0.4], [ok[0], (0.6, -0.1, 1.2), ok[2]]))
    assert p["reconstruction"]["pca_margin"]["status"] == ("not met (clearly); the paired interval over images does "
                                                           "not exclude 0 for seed 2")  # both reasons
    # no per-seed paired intervals (an older report): not met, and not a matter for a gpu run
    t = check_targets(_pca_m(m["pca"]["vs"]["ae"]["psnr"], [1.5, 1.6, 1.4]))
    p = t["reconstruction"]["pca_margin"]
    assert not p["met"] and p["status"] == "not met (no per-seed paired interval measured)" and t["gpu"] is None
    del m["pca"]
    p = check_targets(m)["reconstruction"]["pca_margin"]
    assert not p["measured"] and not p["met"] and p["status"].startswith("not measured")


def _curves(kind: str) -> dict:
    """A final fit's learning curves for ``kind``: 16 epochs, +1.5 dB per doubling."""
    from tuneae.report.curves import learning_curves

    seeds = [{"seed": s, "history": [{"epoch": e, "val/psnr": 20 + s * 0.1 + 1.5 * np.log2(e)} for e in range(1, 17)]}
             for s in (1, 2)]
    return learning_curves({"kinds": {kind: {"kind": kind, "seeds": seeds}}})


def test_a_missed_pca_margin_gets_the_learning_curve_and_the_gpu_commands():
    m = _pca_m({"mean": 0.5, "low": 0.3, "high": 0.7}, [0.5, 0.6, 0.4], [(0.5, 0.3, 0.7)] * 3)
    m["learning_curves"] = _curves("ae")
    m["data"] = {"source": "benschill/brain-tumor-collection"}
    t = check_targets(m)
    p = t["reconstruction"]["pca_margin"]
    assert not p["met"] and p["gap_db"] == pytest.approx(0.5) and t["reconstruction"]["met"]
    assert p["more_epochs"]["curve"] == "ae" and p["more_epochs"]["doublings"] == pytest.approx(0.5 / 1.5)
    assert target_gaps(t) == {"ae": pytest.approx(0.5)}  # the figure's "needed" line
    g = t["gpu"]
    assert g["commands"] == ["python -m tuneae.search --preset gpu --model ae --data benschill/brain-tumor-collection",
                             "python -m tuneae.finalfit results/gpu --seeds 3", "python -m tuneae.report results/gpu"]
    md = "\n".join(targets_markdown(t))
    table_end = md.index("| issue 1:")
    assert md.index("issue 1, vs PCA + 1 dB: 0.50 dB short after 16 epochs") > table_end
    assert md.index("```\npython -m tuneae.search --preset gpu --model ae") > table_end
    assert "the learning curves above say whether more epochs" in md
    # the lines are the real command lines: each entry point's own parser reads them
    import shlex

    from tuneae.finalfit import _parser as finalfit_parser
    from tuneae.report.make import build_parser as report_parser
    from tuneae.search.cli import build_parser as search_parser

    search, fit, report = (shlex.split(c)[3:] for c in g["commands"])
    args = search_parser().parse_args(search)
    assert args.preset == "gpu" and vars(args)["search.models"] == ["ae"]
    assert vars(args)["data.source"] == "benschill/brain-tumor-collection"
    assert finalfit_parser().parse_args(fit).seeds == 3 and report_parser().parse_args(report).run == "results/gpu"
    m["data"] = {"source": "phantom (synthetic head phantoms, not MRI)", "synthetic": True}
    t = check_targets(m)
    assert t["gpu"]["commands"][0].endswith("--data PATH") and "phantoms" in t["gpu"]["data_note"]


def _issue_result(means: dict[str, float], val: dict[str, float]) -> SigmaResult:
    return _result({"noisy": 20.0, **means, "tv_chambolle": 25.0, "wavelet": 24.0},
                   {"noisy": 20.0, **val, "tv_chambolle": 25.0, "wavelet": 24.0})


def test_issue_bm3d_margin_is_against_bm3d_whichever_method_the_comparator_is():
    assert BM3D_MARGIN_DB == 0.5
    val = {"ae": 24.0, "dunet": 27.5, "nl_means": 26.5, "bm3d": 26.0}  # nl_means is the comparator (validation)
    r = _issue_result({"ae": 25.0, "dunet": 30.0, "nl_means": 26.5, "bm3d": 28.0}, val)
    m = _metrics(r, ["ae", "dunet"])
    t = check_targets(m)
    e = t["vs_bm3d"]["0.1"]
    assert m["selection"][PRIMARY]["0.1"]["comparator"] == "nl_means" and e["reference"] == "bm3d"
    assert e["learned"] == "dunet" and e["basis"] == "single run"
    assert e["headline"]["mean"] == pytest.approx(r.test["dunet"]["psnr"].mean() - r.test["bm3d"]["psnr"].mean())
    assert e["met"] and e["status"] == "met (clearly)"
    assert t["vs_bm3d"]["0.2"]["status"].startswith("not measured (sigma 0.2 not in this report")
    r = _issue_result({"ae": 25.0, "dunet": 28.3, "nl_means": 26.5, "bm3d": 28.0}, val)
    m = _metrics(r, ["ae", "dunet"])
    e = check_targets(m)["vs_bm3d"]["0.1"]
    assert not e["met"] and e["status"] == "not met (clearly)" and e["gap_db"] == pytest.approx(0.2, abs=0.1)
    ref = m["denoising"][PRIMARY]["0.1"]["bm3d"]["psnr"]["mean"]
    m["finalfit"] = {"dunet": _seed_rows([35.0] * 3, [0.9] * 3, [ref + 2.0, ref - 0.8, ref + 0.4])}
    t = check_targets(m)
    e = t["vs_bm3d"]["0.1"]
    assert e["basis"] == "seed mean" and e["headline"]["mean"] == pytest.approx(0.5333, abs=1e-3)
    assert e["headline"]["low"] < 0 and not e["met"] and e["status"] == "not met (interval includes 0)"
    assert "dunet" in t["gpu"]["kinds"]
    md = "\n".join(targets_markdown(t))
    assert "issue 2: best learned denoiser vs bm3d + 0.5 dB, sigma 0.1" in md and "dunet - bm3d, mean of 3 seeds" in md
    assert "the reported models paired over images" in md
    m["finalfit"] = {"dunet": _seed_rows([35.0] * 3, [0.9] * 3, [ref + 0.9, ref + 1.0, ref + 1.1])}
    e = check_targets(m)["vs_bm3d"]["0.1"]
    assert e["met"] and e["status"] == "met (clearly)" and e["seed_mean_paired"] is None
    # three consistent seeds, but paired over the few scans of the test set the seed mean's interval includes 0
    m["finalfit"]["dunet"]["seed_mean_paired"] = {"0.1": {"bm3d": {"mean": 1.0, "low": -0.2, "high": 2.2}}}
    t = check_targets(m)
    e = t["vs_bm3d"]["0.1"]
    assert not e["met"] and e["status"].startswith("not met (the seed mean paired over images includes 0")
    assert "dunet" in t["gpu"]["kinds"]
    assert "+1.00 [-0.20, +2.20] dB, the seed mean paired over images (scan-group bootstrap)" in \
        "\n".join(targets_markdown(t))
    m["finalfit"]["dunet"]["seed_mean_paired"]["0.1"]["bm3d"]["low"] = 0.3
    assert check_targets(m)["vs_bm3d"]["0.1"]["met"]


def test_issue_dncnn_row_compares_the_best_other_learned_denoiser_with_dncnn():
    val = {"ae": 24.0, "dunet": 27.0, "dncnn": 27.5, "nl_means": 26.5, "bm3d": 26.0}
    r = _issue_result({"ae": 25.0, "dunet": 29.0, "dncnn": 28.5, "nl_means": 26.5, "bm3d": 27.0}, val)
    m = _metrics(r, ["ae", "dunet", "dncnn"])
    e = check_targets(m)["vs_dncnn"]["0.1"]
    assert e["best_learned"] == "dncnn" and e["learned"] == "dunet" and e["basis"] == "reported models"
    assert e["headline"] == m["reference_comparisons"][PRIMARY]["0.1"]["dncnn"]["dunet"]["psnr"]
    assert e["headline"]["mean"] == pytest.approx(0.5, abs=0.15) and e["met"] and e["status"] == "met (clearly)"
    r = _issue_result({"ae": 25.0, "dunet": 28.0, "dncnn": 28.5, "nl_means": 26.5, "bm3d": 27.0}, val)
    m = _metrics(r, ["ae", "dunet", "dncnn"])
    e = check_targets(m)["vs_dncnn"]["0.1"]
    assert not e["met"] and e["status"] == "not met (clearly)"
    # both final-fitted: the difference of the seed means, Welch's interval (each trained with its own seeds)
    m["finalfit"] = {"dunet": _seed_rows([30.0] * 3, [0.9] * 3, [29.0, 28.0, 29.5]),
                     "dncnn": _seed_rows([30.0] * 3, [0.9] * 3, [28.5, 28.4, 28.6])}
    t = check_targets(m)
    e = t["vs_dncnn"]["0.1"]
    assert e["basis"] == "seed means" and e["interval"] == "Welch t over seeds"
    assert e["headline"] == welch_interval([29.0, 28.0, 29.5], [28.5, 28.4, 28.6])
    assert e["headline"]["mean"] == pytest.approx(1 / 3) and e["headline"]["low"] < 0 < e["headline"]["high"]
    assert e["met"] and e["status"] == "met"  # met by the mean; the interval includes 0 and is reported
    md = "\n".join(targets_markdown(t))
    assert "issue 2: best learned denoiser other than dncnn vs dncnn, sigma 0.1" in md
    assert "dunet - dncnn, difference of the seed means (3 and 3 seeds): +0.33 [" in md
    assert "Welch t-interval over seeds, unpaired" in md and "met by the mean; the interval is reported" in md
    m["finalfit"]["dunet"] = _seed_rows([30.0] * 3, [0.9] * 3, [27.0, 27.5, 28.0])
    t = check_targets(m)
    assert not t["vs_dncnn"]["0.1"]["met"] and {"dunet", "dncnn"} <= set(t["gpu"]["kinds"])
    # a run without dncnn: the row says so instead of disappearing, and the gpu run would search it
    val.pop("dncnn")
    r = _issue_result({"ae": 25.0, "dunet": 29.0, "nl_means": 26.5, "bm3d": 27.0}, val)
    t = check_targets(_metrics(r, ["ae", "dunet"]))
    e = t["vs_dncnn"]["0.1"]
    assert not e["measured"] and not e["met"] and e["status"] == "not measured (no dncnn in this run)"
    assert "dncnn" in t["gpu"]["kinds"]
    md = "\n".join(targets_markdown(t))
    assert "| issue 2: best learned denoiser other than dncnn vs dncnn, sigma 0.1 | not measured (no dncnn in this " \
           "run) |" in md


def _fit(kind: str, test: list[float], den: dict[str, list[float]] | None = None, trial: str = "t") -> dict:
    """A final-fit entry: one row per seed with clean test PSNR and denoised PSNR per sigma."""
    den = den or {}
    return {"kind": kind, "source_trial": trial, "epochs": 9, "best_seed": 1,
            "seeds": [{"seed": i + 1, "test": {"psnr": p, "ssim": 0.7},
                       "denoising": {k: v[i] for k, v in den.items()}} for i, p in enumerate(test)]}


def _recipe_m() -> dict:
    best, base = [30.0, 30.2, 30.1], [29.0, 29.5, 29.9]  # dunet at 0.1: +1.0, +0.7, +0.2, the interval includes 0
    ff = {"ae": _fit("ae", [25.0, 25.2, 25.1]), "ae-trial-x": _fit("ae", [23.0, 23.0, 23.0], trial="x"),
          "dunet": _fit("dunet", [30.0] * 3, {"0.1": best, "0.2": [25.0] * 3}),
          "dunet-trial-y": _fit("dunet", [29.0] * 3, {"0.1": base, "0.2": [24.0, 24.1, 23.9]}, trial="y")}
    ff["ae-trial-x"]["vs_best"] = {"seeds": [1, 2, 3], "per_seed": [2.0, 2.2, 2.1],
                                   "over_seeds": seed_interval([2.0, 2.2, 2.1]),
                                   "seed_mean": {"mean": 2.1, "low": 2.0, "high": 2.2}}
    ff["dunet-trial-y"]["vs_best"] = {"seeds": [1, 2, 3], "per_seed": [1.0] * 3, "over_seeds": seed_interval([1.0] * 3)}
    search = {k: {"trials": [{"number": 0, "tune_trial_id": first, "origin": "seed recipe"},
                             {"number": 1, "tune_trial_id": k + "-2", "origin": "sampler"}]}
              for k, first in (("ae", "x"), ("vae", "v0"), ("dunet", "w"))}
    models = {"ae": _bottleneck(27.0, 0.8), "vae": {**_bottleneck(26.0, 0.8), "val": {"psnr": 20.0}},
              "dunet": {"model_config": {"latent_dim": 0}, "val": {"psnr": 35.0}}}
    return {"name": "cpu", "models": models, "denoising": {}, "finalfit": ff, "search": search}


def test_issue_recipe_rows_for_every_kind_with_a_baseline_and_one_row_for_the_rest():
    m = _recipe_m()
    t = check_targets(m)
    rows = {(e["label"], e["metric"]): e for e in t["vs_recipe"]["rows"]}
    assert set(rows) == {("ae-trial-x", "clean"), ("dunet-trial-y", "0.1"), ("dunet-trial-y", "0.2")}
    ae = rows["ae-trial-x", "clean"]
    assert ae["is_recipe"] and ae["met"] and ae["status"] == "met (clearly)" and ae["headline"]["mean"] == 2.1
    d1, d2 = rows["dunet-trial-y", "0.1"], rows["dunet-trial-y", "0.2"]
    assert d1["is_recipe"] is False  # y is not dunet's first trial (w)
    assert d1["headline"]["per_seed"] == pytest.approx([1.0, 0.7, 0.2]) and d1["headline"]["low"] < 0
    assert not d1["met"] and d1["status"] == "not met (interval includes 0)"
    assert d2["met"] and d2["headline"]["per_seed"] == pytest.approx([1.0, 0.9, 1.1])
    miss = t["vs_recipe"]["missing"]  # vae has no baseline, dunet's is not the recipe
    assert miss["kinds"] == ["vae", "dunet"] and not miss["measured"] and not miss["met"]
    assert miss["command"] == "python -m tuneae.finalfit RESULTS --seeds 3 --baseline v0 w"
    assert t["gpu"]["kinds"] == ["dunet"]  # the one measured recipe target missed
    assert t["gpu"]["commands"][1] == "python -m tuneae.finalfit results/gpu --seeds 3 --baseline recipe"
    md = "\n".join(targets_markdown(t))
    assert "issue 3: ae's found configuration vs ae-trial-x (the default recipe), same seeds, same 9 epochs, clean " \
           "test PSNR | per seed +2.00, +2.20, +2.10 dB; mean +2.10 [" in md
    assert "vs dunet-trial-y (NOT the default-recipe trial)" in md and "denoised test PSNR, sigma 0.1" in md
    assert "not measured: run `python -m tuneae.finalfit RESULTS --seeds 3 --baseline v0 w` (RESULTS: this run's " \
           "results folder, e.g. results/cpu)" in md
    del m["search"]  # no study: the trial ids are placeholders, and whether a baseline is the recipe is unknown
    miss = check_targets(m)["vs_recipe"]["missing"]
    assert miss["kinds"] == ["vae"]
    assert miss["command"].endswith("--baseline <first vae trial id in RESULTS/trials.csv>")
    m["finalfit"]["ae-trial-x"]["vs_best_skipped"] = "ae-trial-x trained 5 epochs, ae 9"
    del m["finalfit"]["ae-trial-x"]["vs_best"]
    e = next(e for e in check_targets(m)["vs_recipe"]["rows"] if e["label"] == "ae-trial-x")
    assert not e["measured"] and not e["met"] and "trained 5 epochs, ae 9" in e["status"]
    del m["finalfit"]
    t = check_targets(m)
    assert t["vs_recipe"]["rows"] == [] and t["vs_recipe"]["missing"]["kinds"] == ["ae", "vae", "dunet"]
    assert "--seeds" not in t["vs_recipe"]["missing"]["command"]


def test_a_best_configuration_that_is_the_default_recipe_misses_target_3_without_a_baseline():
    m = _recipe_m()
    m["finalfit"]["vae"] = _fit("vae", [21.0] * 3, trial="v0")  # vae's best is its recipe trial itself
    m["search"]["dunet"]["trials"] = [{"number": 0, "tune_trial_id": "w", "origin": "seed recipe",
                                       "params": {"train.lr": 5e-4}},
                                      {"number": 1, "tune_trial_id": "t", "origin": "sampler",
                                       "params": {"train.lr": 5e-4}}]  # dunet's best (t) repeats the recipe (w)
    t = check_targets(m)
    same = {e["kind"]: e for e in t["vs_recipe"]["same"]}
    assert set(same) == {"vae", "dunet"} and not any(e["met"] for e in same.values())
    assert "(v0) is the one that ran the default recipe" in same["vae"]["why"]
    assert "(t) has the default recipe's configuration (trial w)" in same["dunet"]["why"]
    assert t["vs_recipe"]["missing"] is None  # nothing left to fit: no command that would refit the same thing
    assert {"vae", "dunet"} <= set(t["gpu"]["kinds"])  # a larger search would settle it
    md = "\n".join(targets_markdown(t))
    assert "| issue 3: vae's found configuration vs the default recipe | the same configuration: the best trial " \
           "(v0) is the one that ran the default recipe; the search found nothing better within its budget |" in md
    m["search"]["dunet"]["trials"][1]["params"] = {"train.lr": 1e-3}  # a different configuration: a baseline to fit
    t = check_targets(m)
    assert {e["kind"] for e in t["vs_recipe"]["same"]} == {"vae"} and t["vs_recipe"]["missing"]["kinds"] == ["dunet"]


def test_welch_interval_matches_scipy_and_handles_few_seeds():
    from scipy import stats

    a, b = [29.0, 28.0, 29.5], [28.5, 28.4, 28.6, 28.2]
    w = welch_interval(a, b)
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert (w["low"], w["high"]) == pytest.approx((ci.low, ci.high)) and w["n"] == [3, 4]
    assert welch_interval([1.0], [0.0, 0.5])["low"] is None
    same = welch_interval([1.0, 1.0], [0.5, 0.5])
    assert same["mean"] == same["low"] == same["high"] == 0.5
    with pytest.raises(ValueError, match="no values"):
        welch_interval([], [1.0])
