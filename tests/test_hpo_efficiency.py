"""benchmarks/hpo_efficiency.py's pure parts on synthetic learning curves: the grid's answer (best point, its
position, the interior flag, rank correlations), the traces and the budget to within 1% of the grid's best. No Ray,
no training."""
from __future__ import annotations

import importlib.util
import itertools
import math
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "hpo_efficiency.py"
spec = importlib.util.spec_from_file_location("hpo_efficiency", PATH)
hpo = importlib.util.module_from_spec(spec)
spec.loader.exec_module(hpo)

SPACE = {"train.lr": (1e-3, 1e-2, 1e-1), "train.lr_schedule": ("constant", "cosine")}


def curves_with_best(best_lr: float, epochs: int = 4) -> dict[str, list[float]]:
    """Curves over ``SPACE`` whose final value is lowest at ``best_lr`` with cosine; every curve falls, and
    onecycle-like ones (cosine) start worse than constant ones, so epoch 1 ranks them otherwise."""
    curves = {}
    for p in hpo.grid_points(SPACE):
        final = 1.0 + abs(math.log10(p["train.lr"]) - math.log10(best_lr)) - 0.5 * (p["train.lr_schedule"] == "cosine")
        start = final + (3.0 if p["train.lr_schedule"] == "cosine" else 1.0)
        curves[hpo.point_key(p, list(SPACE))] = [start + (final - start) * e / (epochs - 1) for e in range(epochs)]
    return curves


def test_grid_points_and_keys():
    points = hpo.grid_points(SPACE)
    assert len(points) == 6 and points[0] == {"train.lr": 1e-3, "train.lr_schedule": "constant"}
    assert hpo.point_key(points[1], list(SPACE)) == "0.001|cosine"


def test_default_space_is_a_real_search_space():
    from tuneae.config import ModelConfig, TrainConfig, from_flat

    assert 30 <= math.prod(map(len, hpo.SPACE.values())) <= 60
    assert len(hpo.SPACE["train.lr"]) >= 5 and "model.latent_dim" not in hpo.SPACE
    cfg = from_flat({**hpo.FIXED, **hpo.grid_points(hpo.SPACE)[-1]})  # every key is one the product knows
    assert isinstance(cfg.train, TrainConfig) and isinstance(cfg.model, ModelConfig)


def test_grid_summary_interior_best():
    g = hpo.grid_summary(curves_with_best(1e-2), SPACE, rungs=(1, 2))
    assert g["best_point"] == "0.01|cosine" and g["best_val_mse"] == pytest.approx(0.5)
    assert g["points"] == 6 and g["max_epochs"] == 4 and g["epochs"] == 24
    assert g["position"]["train.lr"] == {"value": 1e-2, "index": 1, "of": 3, "interior": True}
    assert g["position"]["train.lr_schedule"]["interior"] is None  # unordered
    assert g["interior"] is True and g["near_best"] == 1 and g["diverged"] == 0
    assert set(g["spearman"]) == {"epoch_1_vs_final", "epoch_2_vs_final"}
    assert g["spearman"]["epoch_1_vs_final"] < 0.9  # the cosine curves start worse
    assert g["same_best_at_epoch_1"] is False


def test_grid_summary_corner_best_and_divergence():
    curves = curves_with_best(1e-1)
    curves["0.001|constant"] = [2.0, math.inf, math.inf, math.inf]
    g = hpo.grid_summary(curves, SPACE)
    assert g["position"]["train.lr"]["index"] == 2 and g["interior"] is False
    assert g["diverged"] == 1


def test_grid_trace_counts_every_point_to_the_end():
    curves = curves_with_best(1e-2)
    trace = hpo.grid_trace(curves, seed=3)
    assert [t[0] for t in trace] == [4, 8, 12, 16, 20, 24]
    assert trace[-1][1] == pytest.approx(0.5)
    assert all(a[1] >= b[1] for a, b in itertools.pairwise(trace))
    assert trace == hpo.grid_trace(curves, seed=3) and len({str(hpo.grid_trace(curves, s)) for s in range(8)}) > 1


def test_trace_counts_a_trial_at_its_last_report():
    # Trial a: 3 epochs ending at 0.5 (its epoch-2 value 0.4 is not its result); b stopped after 1 epoch at 0.45.
    reports = [(1, "a", 0.9), (2, "a", 0.4), (3, "b", 0.45), (4, "a", 0.5), (5, "c", 0.6), (6, "c", 0.3)]
    trace = hpo.trace_from_reports(reports)
    assert trace == [[3, 0.45], [4, 0.45], [6, 0.3]]
    assert hpo.budget_to_within(trace, 0.45) == 3
    assert hpo.budget_to_within(trace, 0.3 * 1.01) == 6
    assert hpo.budget_to_within(trace, 0.2) is None


def test_summarise_method_over_seeds():
    traces = {0: [[5, 1.2], [10, 1.005]], 1: [[5, 1.0]], 2: [[20, 1.5]]}
    out = hpo.summarise_method(traces, {0: 10, 1: 5, 2: 20}, grid_best=1.0, grid_epochs=100, gap_pct=1.0)
    assert out["seeds"][0]["budget_epochs"] == 10 and out["seeds"][0]["budget_pct"] == 10.0
    assert out["seeds"][1]["budget_pct"] == 5.0 and out["seeds"][2]["budget_epochs"] is None
    assert out["seeds"][2]["final_gap_pct"] == pytest.approx(50.0)
    assert out["found"] == 2 and out["of"] == 3
    assert out["budget_pct"]["median"] == 10.0 and out["budget_pct"]["max"] is None  # a miss counts as never
    assert out["goal_met"] is False


@pytest.mark.parametrize(("values", "q", "want"), [([1, 2, 3], 0.5, 2), ([1, 2, 3, 4], 0.25, 1.75),
                                                   ([1, 2, math.inf], 0.5, 2), ([1, math.inf, math.inf], 0.5,
                                                                                math.inf)])
def test_quantile_with_misses(values, q, want):
    assert hpo.quantile(values, q) == want


def test_tiny_arguments():
    args = hpo.parse_args(["--tiny"])
    assert args.data == "phantom" and len(args.seeds) == 2 and args.threads == 1
    assert args.space == hpo.TINY_SPACE and args.num_samples == 8
    full = hpo.parse_args([])
    assert len(full.seeds) >= 5 and full.num_samples == 60 and full.max_epochs == 9
