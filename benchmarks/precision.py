"""Does bf16 training cost quality? The same short run of each kind in fp32 and in bf16 (plain PyTorch, no Ray).

    python benchmarks/precision.py [--data phantom|FOLDER] [--size 128] [--train-images 512] [--epochs 3]
                                   [--kinds ae vae dae dunet] [--seeds 0 1] [--device cpu|cuda]
                                   [--out results/bench-precision.json]

Each run is :func:`tuneae.train.fit` (the loop of every trial) from the same seeded weights on the same images; the
only difference is ``TrainConfig.precision``. Validation is fp32 in both (as in every trial), so ``val/psnr``
(dB; noisy sigma 0.1 input for dae / dunet) compares directly. Writes per kind and seed: val/psnr and val/loss
of both, their difference, seconds per epoch, and per kind the mean |difference| against the 0.1 dB goal and the
fp32 spread between seeds (the size of a difference that means nothing).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from tuneae.config import DataConfig, ModelConfig, TrainConfig
from tuneae.data import load_splits, phantom_images
from tuneae.train import fit, seeded_model

GOAL_DB = 0.1
"""The goal: bf16's val/psnr within 0.1 dB of fp32's."""
KINDS = {"ae": {"latent_dim": 1024}, "vae": {"latent_dim": 1024}, "dae": {"latent_dim": 1024},
         "dunet": {"base_channels": 16, "depth": 3, "norm": "group", "input_norm": "standardize"}}
"""The model of each kind: the cpu preset's usual winners (README)."""


def run(kind: str, train: np.ndarray, val: np.ndarray, size: int, cfg: TrainConfig, device: str) -> dict:
    """One short fit; returns its last metrics and the seconds per epoch."""
    model_cfg = ModelConfig(kind=kind, image_size=size, **KINDS[kind])
    if model_cfg.depth > 3 and size < 2 ** model_cfg.depth:
        model_cfg = replace(model_cfg, depth=int(np.log2(size)))
    model = seeded_model(model_cfg, cfg)
    t = time.perf_counter()
    metrics = fit(model, train, val, cfg, device)
    return {**metrics, "s_per_epoch": round((time.perf_counter() - t) / max(cfg.epochs, 1), 2)}


def images(source: str, size: int, n_train: int, n_val: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed subset: the first ``n_train`` training and ``n_val`` validation images of ``source`` (uint8
    (N, 1, size, size)); synthetic head phantoms (seed 0) for ``phantom``."""
    if source == "phantom":
        imgs, _, _ = phantom_images(n_train + n_val, size, seed=0)
        return imgs[:n_train], imgs[n_train:]
    splits = load_splits(DataConfig(source=source, image_size=size))
    return splits.train[:n_train], splits.val[:n_val]


def main(argv: list[str] | None = None) -> dict:
    """Run every kind and seed in fp32 and bf16 and write the JSON file; returns what it wrote."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="phantom", help="data source (tuneae.data.load_splits): phantom or a folder")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--train-images", type=int, default=512, help="first N training images (fixed subset)")
    ap.add_argument("--val-images", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", default="results/bench-precision.json")
    args = ap.parse_args(argv)
    train, val = images(args.data, args.size, args.train_images, args.val_images)
    rows, summary = [], {}
    for kind in args.kinds:
        for seed in args.seeds:
            base = TrainConfig(lr=args.lr, epochs=args.epochs, batch_size=args.batch_size, seed=seed)
            got = {p: run(kind, train, val, args.size, replace(base, precision=p), args.device)
                   for p in ("fp32", "bf16")}
            rows.append({"kind": kind, "seed": seed, **{f"{p}_{k}": v for p, m in got.items() for k, v in m.items()
                                                        if k in ("val/psnr", "val/loss", "s_per_epoch")},
                         "psnr_diff_db": got["bf16"]["val/psnr"] - got["fp32"]["val/psnr"]})
            print(rows[-1], flush=True)
        diffs = [abs(r["psnr_diff_db"]) for r in rows if r["kind"] == kind]
        fp32 = [r["fp32_val/psnr"] for r in rows if r["kind"] == kind]
        summary[kind] = {"mean_abs_diff_db": statistics.fmean(diffs), "max_abs_diff_db": max(diffs),
                         "fp32_seed_spread_db": max(fp32) - min(fp32), "within_goal": max(diffs) <= GOAL_DB}
    info = {"command": "python benchmarks/precision.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "device": torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "cpu",
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d"),
            "data": {"source": Path(args.data).name if args.data != "phantom" else "phantom", "size": args.size,
                     "train": len(train), "val": len(val)},
            "goal_db": GOAL_DB, "summary": summary, "runs": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(summary, indent=2), f"\nwrote {args.out}")
    return info


if __name__ == "__main__":
    main()
