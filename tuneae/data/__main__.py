"""``python -m tuneae.data PATH``: load a data source, print its summary, write its manifest; no training.

Writes ``<out>/manifest.csv`` (:mod:`tuneae.data.manifest`) and ``<out>/summary.json`` (the command and the
counts of :func:`tuneae.data.summary.make_counts`). Exit status 0, or 2 with one ``error:`` line for bad input.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from tuneae.config import DataConfig
from tuneae.data.errors import DataError
from tuneae.data.manifest import write_manifest
from tuneae.data.pipeline import SPLIT_RULES, load_splits
from tuneae.data.sources import LAYOUTS
from tuneae.data.summary import format_summary
from tuneae.files import atomic_write
from tuneae.layout import portable_command, user_path


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m tuneae.data`` (every flag documented in ``--help``)."""
    d = DataConfig()
    p = argparse.ArgumentParser(
        prog="python -m tuneae.data",
        description="Read a data source, find duplicates by content, split it by duplicate group, print the "
                    "summary and write the manifest (no training).",
        epilog="Local folder layouts: " + "; ".join(LAYOUTS))
    a = p.add_argument
    a("source", help="a local folder, a Hugging Face hub id (owner/name) or 'phantom'")
    a("--out", default="runs/data", help="folder for manifest.csv and summary.json (default runs/data)")
    a("--image-size", type=int, default=d.image_size, help=f"model input side in pixels (default {d.image_size})")
    a("--split", choices=SPLIT_RULES, default=d.split,
      help="group: a leakage-free split of the duplicate groups (default); original: the folders' own split with "
           "cross-split duplicates removed")
    a("--seed", type=int, default=d.seed, help=f"seed of the split (default {d.seed})")
    a("--val-fraction", type=float, default=d.val_fraction, help=f"default {d.val_fraction}")
    a("--test-fraction", type=float, default=d.test_fraction, help=f"default {d.test_fraction} (group split)")
    a("--near-distance", type=int, default=d.near_distance,
      help=f"largest Hamming distance (bits of 256) of two difference hashes that count as one image (default "
           f"{d.near_distance}); -1: equal pixels only")
    a("--group-by", choices=("patient", "study", "series"), default=d.group_by,
      help=f"DICOM level whose slices stay in one split (default {d.group_by})")
    a("--groups", default="", help="a CSV with columns path,group (paths relative to the data folder): files with "
                                   "one group stay in one split")
    a("--allow-mostly-dropped", action="store_true",
      help="accept a data set in which more than half of the images are left out")
    a("--manifest", default="", help="reproduce the split of this manifest.csv instead of splitting")
    a("--cache-dir", default=d.cache_dir, help=f"decoded-image cache (default {d.cache_dir})")
    a("--skip-unreadable", action="store_true", help="count and skip image files that cannot be decoded")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0, or 2 for bad input with an ``error:`` line on stderr)."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    cfg = replace(DataConfig(), source=user_path(args.source), image_size=args.image_size, split=args.split,
                  seed=args.seed, val_fraction=args.val_fraction, test_fraction=args.test_fraction,
                  manifest=user_path(args.manifest), near_distance=args.near_distance,
                  cache_dir=user_path(args.cache_dir), skip_unreadable=args.skip_unreadable, group_by=args.group_by,
                  groups=user_path(args.groups), allow_mostly_dropped=args.allow_mostly_dropped)
    started = time.time()
    try:
        splits = load_splits(cfg)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(user_path(args.out))
    write_manifest(splits, out / "manifest.csv")
    summary = {"command": portable_command("python -m tuneae.data", list(argv)),
               "wall_time_s": round(time.time() - started, 1), "image_size": cfg.image_size,
               "classes": list(splits.classes), "data": splits.counts}
    atomic_write(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    print(format_summary(splits.counts))
    print(f"wrote {out / 'manifest.csv'} and {out / 'summary.json'} ({summary['wall_time_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
