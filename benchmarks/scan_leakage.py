"""An independent check of scan-level leakage in a split manifest: test images with a neighbouring slice in training.

In the brain-tumour folder set a scan's slices are consecutively numbered files in one folder (``gg (660).jpg``,
``gg (661).jpg``, ...). This script reads a manifest (``results/<name>/manifest.csv``: path, split, status), decodes
the images itself with Pillow (not with tuneae's decoder, so a bug there cannot hide a leak), and for each kept test
image looks for a file in the same folder with the same name stem whose number differs by 1 or 2 and that sits in
train or val. It counts the test images for which such a neighbour looks alike: Pearson correlation of the two
images' pixels (grey, resized to 128 x 128 with bilinear filtering) at least ``--min-corr`` (default 0.85).

The file-name rule is the one tuneae's scan grouping uses, so the count at its own threshold can be low by design;
the output therefore also holds what does not depend on that rule: the count at several correlation thresholds
(``sweep``, down to 0.6, below the grouping's 0.8), the same statistic for random test / train-or-val pairs of the
same class (``random_same_class``: what "alike" means by chance), and a name-blind check (``nearest``): each test
image's highest correlation with ANY train or val image (64 x 64, the image or its left-right flip), counted at the
same thresholds.

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


THRESHOLDS = (0.6, 0.7, 0.8, 0.85, 0.9, 0.95)
"""Correlations at which the sweeps count test images."""


def _counts(values: list[float]) -> dict[str, int]:
    """How many of ``values`` reach each of :data:`THRESHOLDS`."""
    return {f"{t:g}": int(sum(v >= t for v in values)) for t in THRESHOLDS}


def _unit_rows(stack: np.ndarray) -> np.ndarray:
    """Rows centred and scaled to unit norm, so a matrix product gives Pearson correlations (constant rows: 0)."""
    x = stack - stack.mean(1, keepdims=True)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, n, out=np.zeros_like(x), where=n > 0)


def name_blind(rows: list[dict], data: Path, seed: int = 0) -> dict:
    """Each test image's highest correlation with any train/val image (64 x 64, also its flip), and random pairs.

    Returns:
        ``{"nearest": counts at THRESHOLDS, "nearest_quantiles": {q: corr}, "random_same_class": counts over as many
        random (test, train/val) pairs of one class as there are test images, "random_quantiles": {q: corr}}``.
    """
    test = [r for r in rows if r["split"] == "test"]
    pool = [r for r in rows if r["split"] in ("train", "val")]
    t = _unit_rows(np.stack([pixels(data / r["path"], 64) for r in test]))
    p = np.stack([pixels(data / r["path"], 64) for r in pool])
    flipped = p.reshape(-1, 64, 64)[:, :, ::-1].reshape(len(p), -1)
    best = np.maximum((t @ _unit_rows(p).T).max(1), (t @ _unit_rows(flipped).T).max(1))  # (T,)
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[int]] = defaultdict(list)
    for j, r in enumerate(pool):
        by_class[r["class"]].append(j)
    pu = _unit_rows(p)
    chance = [float(t[i] @ pu[rng.choice(by_class[r["class"]])]) for i, r in enumerate(test) if by_class[r["class"]]]
    qs = (0.5, 0.9, 0.95, 0.99)
    return {"nearest": _counts(list(best)), "nearest_quantiles": {f"{q:g}": round(float(np.quantile(best, q)), 4)
                                                                  for q in qs},
            "random_same_class": _counts(chance),
            "random_quantiles": {f"{q:g}": round(float(np.quantile(chance, q)), 4) for q in qs}}


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
    pairs, best_any = [], []
    for r in tests:
        per_class[r["class"]][1] += 1
        key = slice_key(r["path"])
        if key is None:
            continue
        folder, stem, num = key
        best, top = None, None
        for d in range(1, reach + 1):
            for n in (num - d, num + d):
                other = index[(folder, stem)].get(n)
                if other is not None and other["split"] in ("train", "val"):
                    c = correlation(px(r["path"]), px(other["path"]))
                    top = c if top is None else max(top, c)
                    if c >= min_corr and (best is None or c > best[1]):
                        best = (other["path"], c)
        if top is not None:
            best_any.append(top)
        if best is not None:
            per_class[r["class"]][0] += 1
            pairs.append({"test": r["path"], "train_or_val": best[0], "correlation": round(best[1], 4)})
    leaked = sum(v[0] for v in per_class.values())
    return {"manifest": manifest.name, "min_corr": min_corr, "reach": reach, "test_images": len(tests),
            "leaked": leaked, "fraction": round(leaked / max(len(tests), 1), 4),
            "per_class": {k: {"leaked": v[0], "test_images": v[1]} for k, v in sorted(per_class.items())},
            "with_numbered_neighbour": len(best_any),
            "sweep": _counts(best_any),
            **name_blind(rows, data),
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
    print(f"numbered neighbour at correlation >= t: {out['sweep']} (of {out['with_numbered_neighbour']} test images "
          f"with a numbered neighbour in train/val)")
    print(f"name-blind nearest train/val image at >= t: {out['nearest']}; random same-class pairs: "
          f"{out['random_same_class']}")
    if args.out:
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(out, indent=1) + "\n")
        tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
