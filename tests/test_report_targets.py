"""The report's claims without a search: selection on validation (never test), paired differences with intervals,
the targets built from them (tuneae.report.denoising / statistics / targets)."""
from __future__ import annotations

import numpy as np
import pytest

from tuneae.classical import METHODS
from tuneae.noise import PRIMARY
from tuneae.report.denoising import SigmaResult, class_gaps, comparisons, selection
from tuneae.report.metrics import summarise
from tuneae.report.statistics import difference, fmt_interval, seed_interval, select_best, threshold_status
from tuneae.report.targets import DENOISING_TARGETS_DB, TARGET_MARGIN_DB, check_targets, targets_markdown

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
    md = "\n".join(targets_markdown(check_targets(m)))
    assert "dunet, mean of 3 seeds: 29.97 [" in md and "seed 1: " in md
