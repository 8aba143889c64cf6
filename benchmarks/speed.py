"""Training and evaluation speed and peak memory of every model kind at 128x128 (plain PyTorch, no Ray).

    python benchmarks/speed.py [--device cpu|cuda] [--precision fp32 bf16] [--memory-format auto]
                               [--batch-size 32] [--steps 5] [--cases all|quick] [--out results/bench-cpu.json]

Writes one JSON file: per model kind, config, precision and memory format: parameters, train images/s (one Adam
step per batch through the product's ``LossModule``, i.e. bf16 autocast when asked, loss in fp32), eval images/s
(fp32, as every trial validates) and peak memory (peak RSS in MiB of a fresh process per case on CPU,
``torch.cuda.max_memory_allocated`` on a GPU). The numbers quoted in README.md come from this script's output
files in results/.
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

from tuneae.config import ModelConfig, TrainConfig
from tuneae.models import build_model
from tuneae.precision import autocast_dtype, memory_format
from tuneae.train import LossModule

CASES = [
    ("ae", {"latent_dim": 512}), ("ae", {"latent_dim": 1024}), ("ae", {"latent_dim": 2048}),
    ("vae", {"latent_dim": 1024}), ("dae", {"latent_dim": 1024}),
    ("dunet", {"base_channels": 8, "depth": 3}), ("dunet", {"base_channels": 16, "depth": 4}),
    ("dunet", {"base_channels": 32, "depth": 4}),
]
QUICK_CASES = [("ae", {"latent_dim": 1024}), ("dunet", {"base_channels": 16, "depth": 3})]
"""The two models of MEASURED.md's precision table: for a quick look (``--cases quick``)."""


def bench(kind: str, kw: dict, device: torch.device, batch: int, steps: int, precision: str, layout: str,
          size: int = 128) -> dict:
    """Time ``steps`` Adam steps and ``steps`` eval batches of (batch, 1, size, size) random images in [0, 1].

    Returns:
        ``{"kind", **kw, "precision", "memory_format", "params_M", "train_img_per_s", "eval_img_per_s",
        "peak_mem_MiB"}``; on CPU the peak is the calling process's maximum RSS so far, so :func:`main` runs every
        case in a fresh process.
    """
    torch.manual_seed(0)
    cfg = TrainConfig(precision=precision, memory_format=layout)
    fmt = memory_format(cfg, kind)
    model = build_model(ModelConfig(kind=kind, image_size=size, **kw)).to(device, memory_format=fmt)
    step = LossModule(model, autocast_dtype(cfg, device))
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    x = torch.rand(batch, 1, size, size, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    model.train()
    for _ in range(2):  # warm-up: kernel selection, allocator
        loss, _ = step(x, x)
        loss.backward()
    sync()
    t = time.perf_counter()
    for _ in range(steps):
        loss, _ = step(x, x)
        opt.zero_grad(set_to_none=True)
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
    return {"kind": kind, **kw, "precision": "bf16" if step.amp_dtype else "fp32",
            "memory_format": "channels_last" if fmt is torch.channels_last else "contiguous",
            "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
            "train_img_per_s": round(train_ips, 1), "eval_img_per_s": round(eval_ips, 1),
            "peak_mem_MiB": round(peak, 1)}


def main(argv: list[str] | None = None) -> None:
    """Run every case in every precision and memory format asked for, and write the JSON report."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "auto"])
    ap.add_argument("--memory-format", nargs="+", default=["auto"], choices=["auto", "channels_last", "contiguous"])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--size", type=int, default=128, help="image side in pixels (128 as the product)")
    ap.add_argument("--cases", choices=["all", "quick"], default="all")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True  # as tuneae.train.fit on a GPU
    rows = []
    cases = CASES if args.cases == "all" else QUICK_CASES
    for (kind, kw), precision, layout in ((c, p, m) for c in cases for p in args.precision
                                          for m in args.memory_format):
        if device.type == "cuda":  # one process: max_memory_allocated is reset per case
            rows.append(bench(kind, kw, device, args.batch_size, args.steps, precision, layout, args.size))
        else:  # a fresh process per case: its peak RSS is that case's alone
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                rows.append(pool.submit(bench, kind, kw, device, args.batch_size, args.steps, precision, layout,
                                        args.size).result())
        print(rows[-1], flush=True)
    _speedups(rows)
    out = Path(args.out or f"results/bench-{device.type}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    flags = " ".join(f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
                     for k, v in vars(args).items() if v is not None)
    info = {"command": f"python benchmarks/speed.py {flags}",
            "device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu",
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "batch_size": args.batch_size,
            "date": time.strftime("%Y-%m-%d"), "results": rows}
    out.write_text(json.dumps(info, indent=2) + "\n")
    print(f"wrote {out}")


def _speedups(rows: list[dict]) -> None:
    """Add ``train_speedup_vs_fp32`` to every non-fp32 row that has an fp32 row of the same case and layout."""
    key = lambda r: tuple((k, v) for k, v in r.items() if k not in  # noqa: E731
                          ("precision", "params_M", "train_img_per_s", "eval_img_per_s", "peak_mem_MiB"))
    fp32 = {key(r): r for r in rows if r["precision"] == "fp32"}
    for r in rows:
        if r["precision"] != "fp32" and key(r) in fp32:
            r["train_speedup_vs_fp32"] = round(r["train_img_per_s"] / fp32[key(r)]["train_img_per_s"], 2)


if __name__ == "__main__":
    main()
