"""PCA at each bottleneck model's code size (tuneae.pca, tuneae.report.pca) on tiny synthetic images whose rank is
known, so PCA-k is exact at the data's rank and not below it."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import hadamard

from tuneae.metrics import image_metrics
from tuneae.pca import fit_pca, max_components, pca_reconstruct
from tuneae.report.metrics import summarise
from tuneae.report.pca import pca_baselines, pca_markdown, pca_table_rows
from tuneae.report.tables import csv_tables

SIDE, RANK = 16, 3
CLASSES = ("a", "b")


def _rank_k(n: int, seed: int, basis: np.ndarray) -> np.ndarray:
    """n images (n, 1, SIDE, SIDE) in [0, 1]: 0.5 + a combination of the ``basis`` rows (an affine rank-k set)."""
    coef = np.random.default_rng(seed).uniform(-2, 2, (n, len(basis)))
    return (0.5 + coef @ basis).reshape(n, 1, SIDE, SIDE)


@pytest.fixture(scope="module")
def data() -> dict:
    basis = hadamard(SIDE * SIDE)[1:RANK + 1] / SIDE  # (RANK, P) orthonormal rows of +-1/16: |pixel - 0.5| <= 0.375
    return {"train": _rank_k(40, 1, basis), "test": _rank_k(10, 2, basis)}


def test_pca_is_exact_at_the_data_rank_and_not_below(data):
    train, test = data["train"], data["test"]
    assert train.min() > 0 and train.max() < 1  # no clipping: exactness is the projection's
    basis = fit_pca(train, RANK)
    assert np.abs(basis.reconstruct(test) - test).max() < 1e-5
    assert np.abs(basis.reconstruct(test, RANK - 1) - test).max() > 1e-2  # one dimension short: not exact
    assert np.abs(pca_reconstruct(train, test, RANK) - test).max() < 1e-4  # the randomized solver agrees
    nested = fit_pca(train, RANK - 1).reconstruct(test)  # the exact solver's components are nested
    assert np.allclose(nested, basis.reconstruct(test, RANK - 1), atol=1e-6)
    assert max_components(40, 256) == 39 and max_components(300, 256) == 256
    with pytest.raises(ValueError, match="between 1 and min"):
        fit_pca(train, 41)
    with pytest.raises(ValueError, match="has 3 components"):
        basis.reconstruct(test, 4)


def _entry(latent: int, out: np.ndarray, clean: np.ndarray, labels: np.ndarray) -> tuple[dict, dict]:
    values = image_metrics(out[:, 0], clean)
    return {"model_config": {"latent_dim": latent}, "test": summarise(values, labels, CLASSES)}, values


def test_report_rows_paired_sign_and_seeds(data):
    train, test = data["train"], data["test"]
    clean, labels = test[:, 0], np.repeat([0, 1], 5)
    rng = np.random.default_rng(3)
    outs = {"ae": (RANK, np.clip(test + rng.normal(0, 0.003, test.shape), 0, 1)),  # worse than exact PCA-3
            "vae": (RANK - 1, np.clip(test + rng.normal(0, 0.001, test.shape), 0, 1)),  # better than PCA-2
            "dae": (16, test.copy()), "dunet": (RANK, test.copy())}  # dae: code larger than the training set allows
    models, per_image = {}, {}
    for kind, (latent, out) in outs.items():
        models[kind], per_image[kind] = _entry(latent, out, clean, labels)
    seeds = {"vae": {"seeds": [{"seed": 1, "test": {"psnr": 40.0, "ssim": 0.9}},
                               {"seed": 2, "test": {"psnr": 41.0, "ssim": 0.91}}]}}
    small = train[:5]  # 5 training images: at most 4 components carry variance
    p = pca_baselines(models, per_image, train, clean, labels, CLASSES, seeds)
    assert set(p["vs"]) == {"ae", "vae", "dae"} and p["train_images"] == 40  # dunet has skips: no code to match
    assert set(p["codes"]) == {"3", "2", "16"} and p["codes"]["3"]["kinds"] == ["ae"]
    assert p["codes"]["3"]["test"]["psnr"]["mean"] > 90  # exact at the data's rank
    assert p["codes"]["2"]["test"]["psnr"]["mean"] < 40  # one component short
    assert p["codes"]["16"]["components"] == 16 and not p["codes"]["16"]["capped"]
    ae, vae = p["vs"]["ae"], p["vs"]["vae"]
    assert ae["psnr"]["mean"] < 0 and ae["psnr"]["high"] < 0 and not ae["psnr"]["beats"]
    assert vae["psnr"]["mean"] > 0 and vae["psnr"]["low"] > 0 and vae["psnr"]["beats"]
    expected = per_image["vae"]["psnr"] - image_metrics(fit_pca(train, 2).reconstruct(test)[:, 0], clean)["psnr"]
    assert vae["psnr"]["mean"] == pytest.approx(expected.mean())
    pca2 = p["codes"]["2"]["test"]["psnr"]["mean"]
    assert vae["over_seeds"]["psnr"]["per_seed"] == pytest.approx([40.0 - pca2, 41.0 - pca2])
    assert vae["over_seeds"]["psnr"]["low"] < vae["over_seeds"]["psnr"]["mean"] < vae["over_seeds"]["psnr"]["high"]
    assert ae["over_seeds"] is None  # no final fit
    assert "paired" not in vae["over_seeds"]  # no per-image PSNR per seed given
    # with each seed's per-image PSNR: each seed minus PCA paired over images (the "in every seed")
    pca2_images = per_image["vae"]["psnr"] - expected  # PCA-2's per-image PSNR
    seed_images = {"vae": {1: per_image["vae"]["psnr"], 2: pca2_images - 40.0}}  # seed 2: 40 dB below, every image
    paired = pca_baselines(models, per_image, train, clean, labels, CLASSES, seeds, seed_images)["vs"]["vae"]
    s1, s2 = paired["over_seeds"]["paired"]
    assert (s1["seed"], s2["seed"]) == (1, 2) and s1["mean"] == pytest.approx(vae["psnr"]["mean"])
    assert s1["low"] > 0 and s1["beats"]  # seed 1 is the reported model: better than PCA-2 on every image
    assert s2["mean"] == pytest.approx(-40.0) and s2["high"] < 0 and not s2["beats"]
    md = "\n".join(pca_markdown({"train_images": 40, "vs": {"vae": paired}}))
    assert "seed 1: +" in md and "seed 2: -40.00 [-40.00, -40.00]" in md
    capped = pca_baselines(models, per_image, small, clean, labels, CLASSES)["codes"]["16"]
    assert capped["components"] == 4 and capped["capped"]
    rows = pca_table_rows(p)
    assert [r[0] for r in rows] == ["pca-3", "pca-2", "pca-16"] and "fit on 40 training images" in rows[0][1]
    md = "\n".join(pca_markdown(p))
    assert "| vae - pca-2 |" in md and "vae better" in md and "training images only" in md
    m = {"data": {"test_images": 10}, "models": models, "pca": p, "denoising": {}, "comparisons": {},
         "denoising_classes": {}}
    tables = csv_tables(m, [])
    assert {r["model"] for r in tables["reconstruction"]} == {*outs, "pca-3", "pca-2", "pca-16"}
    row = next(r for r in tables["pca_comparisons"] if r["model"] == "vae" and r["metric"] == "psnr")
    assert row["mean"] == vae["psnr"]["mean"] and row["seeds"] == 2 and row["seeds_low"] is not None
    assert pca_baselines({"dunet": models["dunet"]}, per_image, train, clean, labels, CLASSES)["vs"] == {}
