"""Training and evaluation speed and peak memory of every model kind at 128x128 (plain PyTorch, no Ray).

    python benchmarks/speed.py [--device cpu|cuda] [--batch-size 32] [--steps 5] [--out results/bench-cpu.json]

Writes one JSON file: per model kind and config, parameters, train images/s, eval images/s and peak memory
(peak RSS in MiB of a fresh process per case on CPU, ``torch.cuda.max_memory_allocated`` on a GPU). The numbers
quoted in README.md come from this script's output files in results/.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from tuneae.config import ModelConfig
from tuneae.models import build_model

CASES = [
    ("ae", {"latent_dim": 512}), ("ae", {"latent_dim": 1024}), ("ae", {"latent_dim": 2048}),
    ("vae", {"latent_dim": 1024}), ("dae", {"latent_dim": 1024}),
    ("dunet", {"base_channels": 8, "depth": 3}), ("dunet", {"base_channels": 16, "depth": 4}),
    ("dunet", {"base_channels": 32, "depth": 4}),
]


def bench(kind: str, kw: dict, device: torch.device, batch: int, steps: int) -> dict:
    """Time ``steps`` Adam steps and ``steps`` eval batches of (batch, 1, 128, 128) random images in [0, 1].

    Returns:
        ``{"kind", **kw, "params_M", "train_img_per_s", "eval_img_per_s", "peak_mem_MiB"}``; on CPU the peak is the
        calling process's maximum RSS so far, so :func:`main` runs every case in a fresh process.
    """
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind=kind, image_size=128, **kw)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.rand(batch, 1, 128, 128, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    model.train()
    loss, _ = model.objective(x, x)  # warm-up
    loss.backward()
    sync()
    t = time.perf_counter()
    for _ in range(steps):
        loss, _ = model.objective(x, x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    sync()
    train_ips = steps * batch / (time.perf_counter() - t)
    model.eval()
    with torch.no_grad():
        model(x)
        sync()
        t = time.perf_counter()
        for _ in range(steps):
            model(x)
        sync()
    eval_ips = steps * batch / (time.perf_counter() - t)
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"kind": kind, **kw, "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
            "train_img_per_s": round(train_ips, 1), "eval_img_per_s": round(eval_ips, 1),
            "peak_mem_MiB": round(peak, 1)}


def main() -> None:
    """Run every case and write the JSON report."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    device = torch.device(args.device)
    rows = []
    for kind, kw in CASES:  # a fresh process per case: its peak RSS is that case's alone
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            rows.append(pool.submit(bench, kind, kw, device, args.batch_size, args.steps).result())
        print(rows[-1], flush=True)
    out = Path(args.out or f"results/bench-{device.type}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    info = {"command": "python benchmarks/speed.py " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in
                                                             vars(args).items() if v is not None),
            "device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu",
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "batch_size": args.batch_size,
            "date": time.strftime("%Y-%m-%d"), "results": rows}
    out.write_text(json.dumps(info, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
