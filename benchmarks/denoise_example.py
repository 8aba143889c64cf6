"""A worked example of ``python -m tuneae.denoise`` on held-out MRI slices, with PSNR before and after.

Takes ``--count`` test images of a run's split (one per class in turn, from ``results/<name>/manifest.csv``), decodes
each to grey on the [0, 1] scale at its own size (Pillow, 8-bit / 255: the clean reference), adds seeded white
Gaussian noise of sd ``--sigma`` (not clipped) and writes the noisy slice as a float32 TIFF, then runs the real
command line on those files exactly as a user would::

    python -m tuneae.denoise OUT/noisy --run RUN --out OUT/denoised --preview

and measures PSNR (dB, data range 1; scikit-image) of the noisy input and of the denoised output against the clean
slice. Writes ``OUT/example.json`` (paths relative to OUT), ``OUT/example.png`` (clean | noisy | denoised) and the
command's own ``OUT/denoise.json``; the noisy and denoised TIFFs (copies of the data set's images) go to ``--work``
(default: a temporary folder, removed), not into OUT.

Run::

    python benchmarks/denoise_example.py --run results/dunet-example --data ../shared/data/brain-tumor-mri \\
        --out results/dunet-example/example
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import tifffile
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio


def pick_test_images(manifest: Path, count: int) -> list[dict]:
    """``count`` kept test rows of a manifest, one per class in turn (classes sorted, rows in file order)."""
    with manifest.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "test" and r["status"] == "kept"]
    by_class: dict[str, list[dict]] = {}
    for r in rows:
        by_class.setdefault(r["class"], []).append(r)
    picked, i = [], 0
    while len(picked) < count and any(i < len(v) for v in by_class.values()):
        picked += [v[i] for _, v in sorted(by_class.items()) if i < len(v)][: count - len(picked)]
        i += 1
    return picked


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True, help="results/<name> of a search (its manifest gives the test split)")
    ap.add_argument("--data", required=True, help="the data folder the manifest's paths are relative to")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--count", type=int, default=4)
    ap.add_argument("--sigma", type=float, default=0.1, help="noise sd on the [0, 1] scale (default 0.1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, help="keep the noisy and denoised TIFFs here (default: a temporary folder)")
    args = ap.parse_args(argv)
    manifest = Path(args.run) / "manifest.csv"
    if not manifest.is_file():
        print(f"error: {manifest} does not exist (give --run results/<name> of a finished search)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        return _run(args, manifest, args.work or Path(tmp), argv)


def _run(args: argparse.Namespace, manifest: Path, work: Path, argv: list[str] | None) -> int:
    """Make the noisy inputs in ``work``, run the command, measure, and write the example into ``args.out``."""
    rng = np.random.default_rng(args.seed)
    noisy_dir, out_dir = work / "noisy", work / "denoised"
    noisy_dir.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    cases = []
    for i, r in enumerate(pick_test_images(manifest, args.count)):
        with Image.open(Path(args.data) / r["path"]) as im:
            clean = np.asarray(im.convert("L"), dtype=np.float32) / 255.0  # (H, W) in [0, 1]
        noisy = clean + rng.normal(0.0, args.sigma, clean.shape).astype(np.float32)  # AWGN, not clipped
        name = f"{i}-{r['class']}.tif"
        tifffile.imwrite(noisy_dir / name, noisy)
        cases.append({"source": r["path"], "class": r["class"], "file": name, "clean": clean, "noisy": noisy})
    cmd = [sys.executable, "-m", "tuneae.denoise", str(noisy_dir), "--run", str(args.run), "--out", str(out_dir),
           "--preview", "--overwrite", "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n")
    if proc.returncode:
        return proc.returncode
    fig, axes = plt.subplots(len(cases), 3, figsize=(7.5, 2.6 * len(cases)), squeeze=False)
    for c, row in zip(cases, axes):
        den = tifffile.imread(out_dir / noisy_dir.name / c["file"]).astype(np.float32)  # a folder's tree mirrored
        c["psnr_noisy_db"] = float(peak_signal_noise_ratio(c["clean"], c["noisy"], data_range=1.0))
        c["psnr_denoised_db"] = float(peak_signal_noise_ratio(c["clean"], np.clip(den, 0, 1), data_range=1.0))
        for ax, img, title in zip(row, (c["clean"], c["noisy"], den), (
                f"clean ({c['class']})", f"noisy {c['psnr_noisy_db']:.2f} dB",
                f"denoised {c['psnr_denoised_db']:.2f} dB")):
            ax.imshow(np.clip(img, 0, 1), cmap="gray", vmin=0, vmax=1)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(args.out / "example.png", dpi=80)
    out = {"command": "python benchmarks/denoise_example.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "denoise_command": "python -m tuneae.denoise noisy --run <run> --out denoised --preview",
           "sigma": args.sigma, "protocol": "awgn (not clipped), float32 TIFF input",
           "images": [{k: c[k] for k in ("source", "class", "file", "psnr_noisy_db", "psnr_denoised_db")}
                      for c in cases],
           "mean_psnr_noisy_db": float(np.mean([c["psnr_noisy_db"] for c in cases])),
           "mean_psnr_denoised_db": float(np.mean([c["psnr_denoised_db"] for c in cases]))}
    # the command's own record, its temporary folder named <work> (no path of this machine in committed results)
    record = (out_dir / "denoise.json").read_text()
    record = record.replace(str(work), "<work>").replace(os.path.relpath(work), "<work>")
    (args.out / "denoise.json").write_text(record)
    tmp = args.out / "example.json.tmp"
    tmp.write_text(json.dumps(out, indent=1) + "\n")
    tmp.replace(args.out / "example.json")
    for c in out["images"]:
        print(f"{c['source']}: noisy {c['psnr_noisy_db']:.2f} dB -> denoised {c['psnr_denoised_db']:.2f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
