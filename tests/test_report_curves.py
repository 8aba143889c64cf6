"""The final fit's learning curves and what they say about a missed target (tuneae.report.curves), and the
targets' margin rule (mean difference >= the margin, interval excluding 0)."""
from __future__ import annotations

import math

import pytest

from tuneae.report.curves import MIN_POINTS, epochs_to_close, learning_curves, plot_learning_curves
from tuneae.report.targets import TARGET_MARGIN_DB, _denoising_target, check_targets, target_gaps, targets_markdown


def _seed(seed: int, epochs: range, offset: float, gain: float = 1.5) -> dict:
    return {"seed": seed, "history": [{"epoch": e, "val/psnr": 20 + offset + gain * math.log2(e)} for e in epochs]}


def _finalfit(epochs=range(1, 17)) -> dict:
    return {"kinds": {"ae": {"kind": "ae", "seeds": [_seed(1, epochs, -0.2), _seed(2, epochs, 0.2),
                                                     _seed(3, range(1, 13), 0.0)]}},  # seed 3 stopped at 12
            "baselines": {"ae-trial-x": {"kind": "ae", "seeds": [_seed(1, range(1, 4), 0.0, 0.5)]}}}


def test_gain_per_doubling_is_fitted_on_the_second_half_of_the_epochs_all_seeds_reached():
    c = learning_curves(_finalfit())
    ae = c["ae"]
    assert ae["epochs"] == list(range(1, 13)) and set(ae["val_psnr"]) == {"1", "2", "3"}
    assert ae["val_psnr_mean"][-1] == pytest.approx(20 + 1.5 * math.log2(12))
    g = ae["gain_per_doubling"]
    assert g["db"] == pytest.approx(1.5) and g["stderr"] == pytest.approx(0, abs=1e-9)
    assert (g["from_epoch"], g["to_epoch"]) == (6, 12) and g["per_seed_db"] == pytest.approx([1.5] * 3)
    assert c["ae-trial-x"]["gain_per_doubling"] is None  # epochs 2-3: fewer than MIN_POINTS
    assert MIN_POINTS == 3 and learning_curves(None) == {} and learning_curves({"kinds": {"ae": {"seeds": []}}}) == {}


def test_epochs_to_close_turns_a_gap_into_epochs_at_the_fitted_gain():
    ae = learning_curves(_finalfit())["ae"]
    e = epochs_to_close(ae, 3.0)  # two doublings of 12 epochs
    assert e["doublings"] == pytest.approx(2.0) and e["epochs_needed"] == pytest.approx(48.0)
    assert "about 48 epochs (4.0x" in e["verdict"] and e["epochs_range"] == ["48", "48"]  # every seed gains 1.5
    assert epochs_to_close(ae, -0.1)["verdict"] == "reached"
    flat = {**ae, "gain_per_doubling": {**ae["gain_per_doubling"], "db": -0.01}}
    assert epochs_to_close(flat, 1.0)["epochs_needed"] is None and "not reach" in epochs_to_close(flat, 1.0)["verdict"]
    short = learning_curves(_finalfit())["ae-trial-x"]
    assert epochs_to_close(short, 1.0)["epochs_needed"] is None
    assert "too short" in epochs_to_close(short, 1.0)["verdict"]
    assert "over a million" in epochs_to_close(ae, 40.0)["verdict"]


def test_missed_target_gets_the_epochs_its_model_would_need_and_the_figure(tmp_path):
    m = {"models": {"ae": {"model_config": {"latent_dim": 512}, "val": {"psnr": 23.0},
                           "test": {"psnr": {"mean": 23.0, "low": 22.8, "high": 23.2},
                                    "ssim": {"mean": 0.6, "low": 0.59, "high": 0.61}}}},
         "denoising": {}, "learning_curves": learning_curves(_finalfit())}
    t = check_targets(m)
    r = t["reconstruction"]
    assert not r["met"] and r["gap_db"] == pytest.approx(3.0)
    assert r["more_epochs"]["curve"] == "ae" and r["more_epochs"]["epochs_needed"] == pytest.approx(48.0)
    assert target_gaps(t) == {"ae": pytest.approx(3.0)}
    t["learning_curves_figure"] = plot_learning_curves(m["learning_curves"], target_gaps(t), tmp_path / "lc.png")
    assert (tmp_path / "lc.png").stat().st_size > 1000
    md = "\n".join(targets_markdown(t))
    assert "3.00 dB short after 12 epochs" in md and "+1.50 +- 0.00 (se) dB per doubling" in md
    assert "from a curve of only 12 epochs" in md  # shorter than EXTRAPOLATE_FROM: flagged
    assert "![final-fit learning curves](lc.png)" in md
    assert "reconstruction (SSIM): ae's outlook is unknown" in md  # these histories have no val/ssim
    assert plot_learning_curves({}, {}, tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()


def _sigma_metrics(diff: dict, bm3d: float = 30.0) -> dict:
    res = {"dunet": {"psnr": {"mean": 31.0, "low": 30.0, "high": 32.0}},
           "bm3d": {"psnr": {"mean": bm3d, "low": bm3d - 1, "high": bm3d + 1}}}
    return {"denoising": {"awgn": {"0.1": res}},
            "selection": {"awgn": {"0.1": {"best_learned": "dunet", "comparator": "bm3d"}}},
            "comparisons": {"awgn": {"0.1": {"dunet": {"psnr": diff}}}}, "models": {}}


def test_denoising_target_needs_the_margin_and_an_interval_excluding_0():
    assert TARGET_MARGIN_DB == 1.0
    wide = _denoising_target(_sigma_metrics({"mean": 1.1, "low": -0.05, "high": 2.2}), "0.1", 28.3)
    assert not wide["met"] and wide["status"] == "not met (interval includes 0)" and wide["gap_db"] == 0
    tight = _denoising_target(_sigma_metrics({"mean": 1.1, "low": 0.9, "high": 1.3}), "0.1", 28.3)
    assert tight["met"] and tight["status"] == "met" and tight["target"] == pytest.approx(31.0)
    fixed_higher = _denoising_target(_sigma_metrics({"mean": 1.1, "low": -0.05, "high": 2.2}, 29.0), "0.1", 30.5)
    assert fixed_higher["judged_on"] == "test PSNR >= fixed target" and not fixed_higher["met"]  # 31.0 >= 30.5, but
    assert fixed_higher["status"] == "not met (interval includes 0)"  # the paired interval must still exclude 0
    clear = _denoising_target(_sigma_metrics({"mean": 1.1, "low": -0.05, "high": 2.2}, 29.0), "0.1", 29.5)
    assert not clear["met"] and clear["status"] == "not met (interval includes 0)"  # 'met (clearly)' by PSNR alone
    short = _denoising_target(_sigma_metrics({"mean": 0.4, "low": 0.3, "high": 0.5}), "0.1", 28.3)
    assert not short["met"] and short["gap_db"] == pytest.approx(0.6) and short["status"] == "not met (clearly)"


def test_seed_interval_and_the_per_seed_comparisons_in_the_report():
    from tuneae.report.seeds import seeds_markdown, seeds_vs_comparator
    from tuneae.report.statistics import seed_interval

    s = seed_interval([1.65, 1.62, 1.35])  # t_{0.975, 2} = 4.303
    assert s["mean"] == pytest.approx(1.54) and (s["low"], s["high"]) == pytest.approx((1.1296, 1.9504), abs=1e-3)
    assert seed_interval([0.3])["low"] is None
    with pytest.raises(ValueError, match="no values"):
        seed_interval([])

    def entry(kind, test, den):
        return {"kind": kind, "source_trial": "t", "epochs": 2, "best_seed": 1,
                "seeds": [{"seed": i + 1, "val_psnr": 20.0, "test": {"psnr": p, "ssim": 0.5},
                           "denoising": {"0.1": d}} for i, (p, d) in enumerate(zip(test, den))],
                "over_seeds": {k: {"mean": 1.0, "sd": 0.1, "min": 0.9, "max": 1.1, "n": 2}
                               for k in ("val_psnr", "test_psnr", "test_ssim", "denoising_0.1")}}

    seeds = {"ae": entry("ae", [24.0, 25.0], [23.0, 23.5]), "dunet": entry("dunet", [35.0, 36.0], [30.0, 29.0]),
             "ae-trial-x": entry("ae", [22.0, 22.5], [21.0, 21.0])}
    seeds["ae-trial-x"]["vs_best"] = {"seeds": [1, 2], "per_seed": [2.0, 2.5], "over_seeds": seed_interval([2.0, 2.5]),
                                      "seed_mean": {"mean": 2.25, "low": 2.1, "high": 2.4}}
    m = {"selection": {"awgn": {"0.1": {"best_learned": "dunet", "comparator": "bm3d"}}},
         "denoising": {"awgn": {"0.1": {"bm3d": {"psnr": {"mean": 29.5}}}}}}
    seeds_vs_comparator(seeds, m)
    c = seeds["dunet"]["vs_comparator"]["0.1"]
    assert c["comparator"] == "bm3d" and c["per_seed"] == pytest.approx([0.5, -0.5]) and c["mean"] == pytest.approx(0)
    assert "vs_comparator" not in seeds["ae"]  # not the chosen learned model
    md = "\n".join(seeds_markdown(seeds))
    assert "dunet minus bm3d (the classical comparator)" in md and "per seed: +0.50, -0.50 dB" in md
    assert "Mean over seeds +2.25 dB, t-interval over the seeds [" in md

    model = {"model_config": {"latent_dim": 512}, "val": {"psnr": 24.0},
             "test": {"psnr": {"mean": 25.0, "low": 24.8, "high": 25.2}, "ssim": {"mean": 0.7, "low": 0.69,
                                                                                  "high": 0.71}}}
    t = check_targets({"models": {"ae": model}, "denoising": {}, "finalfit": seeds})
    above = t["reconstruction"]["above_baselines"]["ae-trial-x"]
    assert above["mean"] == pytest.approx(2.25) and above["status"].startswith("met")
    # the kind's baselines are the target 3, for every kind, judged on the t-interval over seeds (> 0)
    md = "\n".join(targets_markdown(t))
    assert "issue 3: ae's found configuration vs ae-trial-x, same seeds, same 2 epochs, clean test PSNR" in md
    assert "ae above ae-trial-x" not in md  # not twice


def test_ssim_curve_where_the_final_fit_measured_it_gives_the_ssim_target_its_epochs(tmp_path):
    ff = _finalfit()
    for k, seed in enumerate(ff["kinds"]["ae"]["seeds"]):  # val/ssim only from epoch 4 on (a resumed older fit)
        for h in seed["history"]:
            if h["epoch"] >= 4:
                h["val/ssim"] = 0.5 + 0.01 * (k - 1) + 0.05 * math.log2(h["epoch"])
    curves = learning_curves(ff)
    s = curves["ae"]["ssim"]
    assert s["epochs"] == list(range(4, 13)) and s["gain_per_doubling"]["db"] == pytest.approx(0.05)
    assert "ssim" not in curves["ae-trial-x"]
    m = {"models": {"ae": {"model_config": {"latent_dim": 512}, "val": {"psnr": 23.0},
                           "test": {"psnr": {"mean": 27.0, "low": 26.8, "high": 27.2},
                                    "ssim": {"mean": 0.65, "low": 0.64, "high": 0.66}}}},
         "denoising": {}, "learning_curves": curves}
    r = check_targets(m)["reconstruction"]
    assert not r["met"] and r["gap_db"] == 0 and r["gap_ssim"] == pytest.approx(0.10)
    e = r["more_epochs_ssim"]
    assert e["doublings"] == pytest.approx(2.0) and e["epochs_needed"] == pytest.approx(48.0)
    png = plot_learning_curves(curves, {}, tmp_path / "lc.png", {"ae": r["gap_ssim"]})
    assert png == "lc.png" and (tmp_path / "lc.png").stat().st_size > 1000
    md = "\n".join(targets_markdown(check_targets(m)))
    assert "reconstruction (SSIM): 0.100 SSIM short after 12 epochs" in md and "+0.0500" in md


def test_per_seed_range_says_never_only_for_a_curve_that_does_not_rise():
    ae = learning_curves(_finalfit())["ae"]
    g = ae["gain_per_doubling"]
    tiny = {**ae, "gain_per_doubling": {**g, "per_seed_db": [1e-4, 1.5, -0.2]}}
    assert epochs_to_close(tiny, 3.0)["epochs_range"] == ["48", "never"]
    tiny["gain_per_doubling"]["per_seed_db"] = [1e-4, 1.5]
    assert epochs_to_close(tiny, 3.0)["epochs_range"] == ["48", "over a million"]


def test_a_denoising_bottleneck_model_s_curve_is_flagged_as_a_proxy_for_the_clean_target():
    ff = _finalfit()
    ff["kinds"]["dae"] = {**ff["kinds"].pop("ae"), "kind": "dae"}
    m = {"models": {"dae": {"model_config": {"latent_dim": 512}, "val": {"psnr": 23.0},
                            "train_config": {"val_noise_sigma": 0.1},
                            "test": {"psnr": {"mean": 23.0, "low": 22.8, "high": 23.2},
                                     "ssim": {"mean": 0.8, "low": 0.79, "high": 0.81}}}},
         "denoising": {}, "learning_curves": learning_curves(ff)}
    r = check_targets(m)["reconstruction"]
    assert r["best_bottleneck"] == "dae" and "noisy validation input at sigma 0.1" in r["more_epochs"]["proxy"]
    assert "more_epochs_ssim" not in r  # SSIM reached: no line for it
