"""Which ``--resolution`` of ``python -m tuneae.denoise`` denoises held-out images better: native or resize?

    python benchmarks/denoise_resolution.py (--checkpoint PATH | --run results/<name> [--kind dunet])
        (IMAGES... | --test-of results/<name>) [--limit 40] [--sigma 0.05 0.1 0.2] [--seed 0] [--device auto]
        [--data-root DIR] [--batch-size 8] [--out results/bench-denoise-resolution.json]

Each held-out image (its slices decoded by :func:`tuneae.denoise.formats.read` with the model's window, clipped to
[0, 1]; up to ``--limit`` slices) is the clean reference at its own, native size. Seeded white Gaussian noise of each
``--sigma`` (on the [0, 1] scale, not clipped: the training protocol ``awgn``) is added, and the noisy slice is
denoised both ways: ``native`` (padded to a multiple of 2**depth, cropped back; U-Nets only) and ``resize`` (padded
to a square and resized to the model's image size and back, as training prepared images). PSNR (dB, data range 1)
and SSIM (scikit-image, data range 1) against the clean slice at native size, of the output clipped to [0, 1], per
slice; reported per sigma and mode: means, the paired native - resize difference (mean, sd, slices where native
wins) and the noisy input's own PSNR / SSIM.

Held-out images: ``--test-of results/<name>`` takes the test split of that search's ``manifest.csv`` (files kept
after de-duplication; paths relative to the data source its ``summary.json`` records, relative to the results
folder), which no trial trained or was selected on. Files given directly must be held out by the caller.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from tuneae.denoise import formats
from tuneae.denoise.model import FULLY_CONVOLUTIONAL, load_denoiser
from tuneae.files import atomic_write
from tuneae.images import is_image_file
from tuneae.layout import resolve_recorded


def test_files(results: Path, data_root: str | None = None) -> list[Path]:
    """The test split's kept files of a search (its manifest; under ``data_root``, default the data source its
    summary records)."""
    summary = json.loads((results / "summary.json").read_text())
    root = Path(data_root or resolve_recorded(str(summary["data"]["source"]), results))
    with open(results / "manifest.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "test" and r["status"] == "kept"]
    return sorted({root / r["path"] for r in rows})


def image_files(args: list[str]) -> list[Path]:
    out: list[Path] = []
    for a in args:
        p = Path(a)
        out.extend(sorted(f for f in p.rglob("*") if f.is_file() and is_image_file(f)) if p.is_dir() else [p])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint")
    src.add_argument("--run")
    ap.add_argument("--kind")
    ap.add_argument("images", nargs="*")
    ap.add_argument("--test-of", help="results/<name>: its manifest's test split as the held-out images")
    ap.add_argument("--data-root", help="with --test-of: the data folder, when it is not where the summary says")
    ap.add_argument("--limit", type=int, default=40, help="slices at most (default 40)")
    ap.add_argument("--sigma", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--out", default="results/bench-denoise-resolution.json")
    args = ap.parse_args(argv)
    files = test_files(Path(args.test_of), args.data_root) if args.test_of else image_files(args.images)
    if not files:
        ap.error("give held-out IMAGES or --test-of results/<name>")

    den = load_denoiser(checkpoint=args.checkpoint, run=args.run, kind=args.kind, device=args.device)
    modes = ["native", "resize"] if den.kind in FULLY_CONVOLUTIONAL else ["resize"]
    rng = np.random.default_rng(args.seed)
    clean_slices: list[tuple[str, np.ndarray]] = []
    for f in files:
        if len(clean_slices) >= args.limit:
            break
        try:
            d = formats.read(f, window=den.window, plane=den.plane)
        except formats.UnreadableError as exc:
            print(f"skipped: {exc}", file=sys.stderr)
            continue
        clean_slices += [(os.path.relpath(f), np.clip(s, 0, 1)) for s in d.slices[: args.limit - len(clean_slices)]]

    if not clean_slices:
        ap.error("no readable held-out image")
    rows = []
    t0 = time.time()
    for sigma in args.sigma:
        for name, clean in clean_slices:
            noisy = (clean + sigma * rng.standard_normal(clean.shape)).astype(np.float32)
            row = {"file": name, "shape": list(clean.shape), "sigma": sigma,
                   "noisy_psnr": float(peak_signal_noise_ratio(clean, np.clip(noisy, 0, 1), data_range=1.0)),
                   "noisy_ssim": float(structural_similarity(clean, np.clip(noisy, 0, 1), data_range=1.0))}
            for mode in modes:
                out = np.clip(den.apply(noisy[None], mode, args.batch_size)[0], 0, 1)
                row[f"{mode}_psnr"] = float(peak_signal_noise_ratio(clean, out, data_range=1.0))
                row[f"{mode}_ssim"] = float(structural_similarity(clean, out, data_range=1.0))
            rows.append(row)

    summary = {}
    for sigma in args.sigma:
        rs = [r for r in rows if r["sigma"] == sigma]
        s = {f"{k}_mean": statistics.fmean(r[k] for r in rs) for k in rs[0] if k.endswith(("_psnr", "_ssim"))}
        if len(modes) == 2:
            for metric in ("psnr", "ssim"):
                diff = [r[f"native_{metric}"] - r[f"resize_{metric}"] for r in rs]
                s[f"native_minus_resize_{metric}"] = {"mean": statistics.fmean(diff),
                                                      "sd": statistics.stdev(diff) if len(diff) > 1 else 0.0,
                                                      "native_wins": int(sum(d > 0 for d in diff)), "n": len(diff)}
        summary[str(sigma)] = s
        print(f"sigma {sigma}: " + ", ".join(f"{k} {v:.4f}" for k, v in s.items() if isinstance(v, float)))
        for metric in ("psnr", "ssim"):
            if f"native_minus_resize_{metric}" in s:
                d = s[f"native_minus_resize_{metric}"]
                print(f"  native - resize {metric}: {d['mean']:+.4f} (sd {d['sd']:.4f}), native better on "
                      f"{d['native_wins']} of {d['n']}")
    record = {"command": " ".join(["python", "benchmarks/denoise_resolution.py", *(argv or sys.argv[1:])]),
              "model": {"kind": den.kind, "role": den.role, "checkpoint": os.path.relpath(den.checkpoint),
                        "source": den.source,
                        "image_size": den.model.cfg.image_size, "train_noise_sigma": den.sigma_range},
              "device": str(den.device), "machine": platform.platform(), "slices": len(clean_slices),
              "modes": modes, "seconds": round(time.time() - t0, 1), "summary": summary, "rows": rows}
    atomic_write(args.out, json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
