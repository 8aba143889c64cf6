"""An independent check of scan-level leakage in a split manifest: test images with a neighbouring slice in training.

In the brain-tumour folder set a scan's slices are consecutively numbered files in one folder (``gg (660).jpg``,
``gg (661).jpg``, ...). This script reads a manifest (``results/<name>/manifest.csv``: path, split, status), decodes
the images itself with Pillow (not with tuneae's decoder, so a bug there cannot hide a leak), and for each kept test
image looks for a file in the same folder with the same name stem whose number differs by 1 or 2 and that sits in
train or val. It counts the test images for which such a neighbour looks alike: Pearson correlation of the two
images' pixels (grey, resized to 128 x 128 with bilinear filtering) at least ``--min-corr`` (default 0.85).

Run::

    python benchmarks/scan_leakage.py results/cpu-tpe/manifest.csv --data ../shared/data/brain-tumor-mri \\
        --out results/cpu-tpe/scan_leakage.json

Writes a JSON file (paths relative to the data folder) with the counts overall and per class and every leaked pair.
"""
from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

NUMBERED = re.compile(r"^(?P<stem>.*?)(?P<num>\d+)(?P<tail>\D*)$")
"""A file name (without extension) ending in a number, maybe followed by non-digits: ``gg (661)`` -> ``gg (``, 661."""


def slice_key(path: str) -> tuple[str, str, int] | None:
    """(folder, name stem, number) of a numbered file, or None when the name holds no number."""
    p = Path(path)
    m = NUMBERED.match(p.stem)
    if m is None:
        return None
    return str(p.parent), m["stem"] + "|" + m["tail"] + p.suffix.lower(), int(m["num"])


def pixels(path: Path, size: int = 128) -> np.ndarray:
    """A file's grey pixels resized to ``size`` x ``size``, float64, flattened."""
    with Image.open(path) as im:
        return np.asarray(im.convert("L").resize((size, size), Image.BILINEAR), dtype=np.float64).ravel()


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two flattened images; 0 when either is constant."""
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else 0.0


def check(manifest: Path, data: Path, min_corr: float, reach: int) -> dict:
    """Count test images with an alike neighbouring slice (number +- 1..reach) in train or val.

    Args:
        manifest: a tuneae manifest CSV (columns ``path``, ``class``, ``split``, ``status``).
        data: the data folder the manifest's paths are relative to.
        min_corr: correlation at or above which a neighbour counts as the same scan.
        reach: largest difference of file numbers that counts as a neighbour.
    Returns:
        JSON-able counts: ``test_images``, ``leaked`` (overall and ``per_class``), ``fraction`` and ``pairs``.
    """
    with manifest.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["status"] == "kept" and r["split"] in ("train", "val", "test")]
    index: dict[tuple[str, str], dict[int, dict]] = defaultdict(dict)
    for r in rows:
        key = slice_key(r["path"])
        if key is not None:
            index[key[:2]][key[2]] = r
    cache: dict[str, np.ndarray] = {}

    def px(rel: str) -> np.ndarray:
        if rel not in cache:
            cache[rel] = pixels(data / rel)
        return cache[rel]

    tests = [r for r in rows if r["split"] == "test"]
    per_class: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    pairs = []
    for r in tests:
        per_class[r["class"]][1] += 1
        key = slice_key(r["path"])
        if key is None:
            continue
        folder, stem, num = key
        best = None
        for d in range(1, reach + 1):
            for n in (num - d, num + d):
                other = index[(folder, stem)].get(n)
                if other is not None and other["split"] in ("train", "val"):
                    c = correlation(px(r["path"]), px(other["path"]))
                    if c >= min_corr and (best is None or c > best[1]):
                        best = (other["path"], c)
        if best is not None:
            per_class[r["class"]][0] += 1
            pairs.append({"test": r["path"], "train_or_val": best[0], "correlation": round(best[1], 4)})
    leaked = sum(v[0] for v in per_class.values())
    return {"manifest": manifest.name, "min_corr": min_corr, "reach": reach, "test_images": len(tests),
            "leaked": leaked, "fraction": round(leaked / max(len(tests), 1), 4),
            "per_class": {k: {"leaked": v[0], "test_images": v[1]} for k, v in sorted(per_class.items())},
            "pairs": pairs}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("manifest", type=Path)
    ap.add_argument("--data", type=Path, required=True, help="the folder the manifest's paths are relative to")
    ap.add_argument("--min-corr", type=float, default=0.85)
    ap.add_argument("--reach", type=int, default=2, help="largest file-number difference that counts (default 2)")
    ap.add_argument("--out", type=Path, help="write the counts here as JSON")
    args = ap.parse_args(argv)
    for p in (args.manifest, args.data):
        if not p.exists():
            print(f"error: {p} does not exist", file=sys.stderr)
            return 2
    out = check(args.manifest, args.data, args.min_corr, args.reach)
    out["command"] = "python benchmarks/scan_leakage.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"{out['leaked']} of {out['test_images']} test images ({100 * out['fraction']:.1f}%) have an alike "
          f"slice numbered 1..{args.reach} away in train/val; per class: "
          + ", ".join(f"{k} {v['leaked']}/{v['test_images']}" for k, v in out["per_class"].items()))
    if args.out:
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(out, indent=1) + "\n")
        tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
