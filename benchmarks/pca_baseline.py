"""The linear baseline of a bottleneck autoencoder: PCA-k reconstruction of the test images of a committed split.

A bottleneck model with a k-number code earns its place only if it reconstructs better than the best linear code of
the same size: PCA with k components (Pearson 1901; scikit-learn's randomized SVD, Halko et al. 2011), fitted on the
TRAINING images only, projects each test image onto the components and back (:func:`tuneae.pca.pca_reconstruct`;
every report also measures PCA at each bottleneck model's code size, with the exact SVD). Images are the split's
``(N, 1, S, S)`` uint8 arrays (tuneae's decoder, the manifest's split) scaled to [0, 1]; PSNR (dB, peak 1) and
SSIM (Wang et al. 2004, Gaussian window) per image are tuneae's own (:mod:`tuneae.metrics`), with 95% bootstrap
intervals over images.

Run::

    python benchmarks/pca_baseline.py --data ../shared/data/brain-tumor-mri \\
        --manifest results/cpu-tpe/manifest.csv --components 512 1024 2048 --out results/cpu-tpe/pca.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from tuneae.config import DataConfig
from tuneae.data import load_splits
from tuneae.metrics import mean_interval, psnr, ssim
from tuneae.pca import pca_reconstruct


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="the data folder (or hub id) of the run")
    ap.add_argument("--manifest", required=True, help="the run's manifest.csv: its split is reproduced exactly")
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--components", type=int, nargs="+", default=[512, 1024, 2048])
    ap.add_argument("--out", type=Path, help="write the results here as JSON")
    args = ap.parse_args(argv)
    if not Path(args.manifest).is_file():
        print(f"error: --manifest {args.manifest} does not exist", file=sys.stderr)
        return 2
    splits = load_splits(DataConfig(source=args.data, image_size=args.image_size, manifest=args.manifest))
    train = splits.train.astype(np.float32) / 255.0
    test = splits.test.astype(np.float32) / 255.0
    out = {"command": "python benchmarks/pca_baseline.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "train_images": len(train), "test_images": len(test), "image_size": args.image_size, "pca": {}}
    for k in args.components:
        t0 = time.perf_counter()
        recon = pca_reconstruct(train, test, k)
        p, s = psnr(recon[:, 0], test[:, 0]), ssim(recon[:, 0], test[:, 0])  # (M,) each
        out["pca"][str(k)] = {"psnr_db": mean_interval(p).as_dict(), "ssim": mean_interval(s).as_dict(),
                              "fit_s": round(time.perf_counter() - t0, 1),
                              "psnr_per_image": [round(float(v), 4) for v in p]}
        print(f"PCA-{k}: PSNR {p.mean():.2f} dB, SSIM {s.mean():.3f} on {len(test)} test images", flush=True)
    if args.out:
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(out, indent=1, default=float) + "\n")
        tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
