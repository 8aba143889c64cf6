"""What happened to every file: the counts of a split (JSON-able), its manifest rows, and a printable summary."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tuneae.data.decode import HASH_SIZE
from tuneae.data.duplicates import CROP_SLACK, KINDS
from tuneae.data.items import Items
from tuneae.data.manifest import STATUSES
from tuneae.data.scans import SCAN_REACH, SOURCES, group_sizes
from tuneae.data.splits import SPLITS

if TYPE_CHECKING:
    from tuneae.config import DataConfig
    from tuneae.data.pipeline import Decision


_EXAMPLES = 10  # groups (and files per group) listed in the summary

LARGE_GROUP = 0.05
"""A split unit holding more than this share of the images (and at least ``LARGE_GROUP_MIN`` images) is reported in
the warnings."""

LARGE_GROUP_MIN = 10
"""Smallest group reported as large: in a small data set every pair is over 5%."""


def _cross_label(items: Items, decision: Decision) -> list[list[str]]:
    """Up to 10 groups left out for holding two classes, each as ``class: path`` strings (5 per group)."""
    sel = np.flatnonzero(decision.status == "cross_label")
    groups: dict[int, list[str]] = {}
    for i in sel:
        groups.setdefault(int(decision.group[i]), []).append(
            f"{items.classes[items.label[i]]}: {items.records[items.file[i]].rel}")
    return [v[:5] for v in list(groups.values())[:_EXAMPLES]]


def _near_rule(cfg: DataConfig) -> str:
    if cfg.near_distance < 0:
        return "off: equal pixels only"
    return (f"imagehash.dhash(hash_size={HASH_SIZE}), {HASH_SIZE * HASH_SIZE} bits, Hamming distance <= "
            f"{cfg.near_distance} (whole) or <= {cfg.near_distance + CROP_SLACK} (content crop), confirmed by "
            f"32x32 thumbnail correlation >= {cfg.near_min_corr:g}")


def _scan_rule(cfg: DataConfig) -> str:
    rule = (f"slices of one file; DICOM by {cfg.group_by}; numbered 2-D images 1..{SCAN_REACH} apart in one folder "
            f"with 32x32 thumbnail correlation >= {cfg.scan_min_corr:g}")
    return rule + (f"; groups CSV {cfg.groups}" if cfg.groups else "")


def _group_warnings(items: Items, decision: Decision) -> list[str]:
    """Split units holding two classes or more than ``LARGE_GROUP`` of the images (up to 10 of each kind)."""
    grouped = decision.group >= 0
    if not grouped.any():
        return []
    unit, label = decision.group[grouped], items.label[grouped]
    size = np.bincount(unit)
    n = int(grouped.sum())
    out = []
    mixed = sorted({int(u) for u, st in zip(unit, decision.status[grouped]) if st == "cross_label"})
    for u in mixed[:_EXAMPLES]:
        names = sorted({items.classes[k] for k in label[unit == u]})
        out.append(f"group {u} holds {size[u]} images of classes {', '.join(names)}: left out (cross_label)")
    if len(mixed) > _EXAMPLES:
        out.append(f"... and {len(mixed) - _EXAMPLES} more groups holding two classes")
    large = np.flatnonzero((size > LARGE_GROUP * n) & (size >= LARGE_GROUP_MIN))
    for u in large[:_EXAMPLES]:
        out.append(f"group {u} holds {size[u]} of {n} images ({size[u] / n:.1%}, over {LARGE_GROUP:.0%}): one scan "
                   f"or a chain of near copies; check it in the manifest")
    if len(large) > _EXAMPLES:
        out.append(f"... and {len(large) - _EXAMPLES} more groups over {LARGE_GROUP:.0%} of the images")
    return out


def _warnings(items: Items, decision: Decision, per_class: dict[str, dict[str, int]]) -> list[str]:
    out = [f"class {c!r} has no {name} images" for name in SPLITS for c in items.classes if not per_class[name][c]]
    out += _group_warnings(items, decision)
    n_blank = int((decision.status == "blank").sum())
    if n_blank:
        example = str(items.rel[np.flatnonzero(decision.status == "blank")[0]])
        out.append(f"{n_blank} near-blank or constant images left out (status blank), e.g. {example!r}")
    return out


def make_counts(items: Items, decision: Decision, cfg: DataConfig, layout: str, description: str,
                how: np.ndarray | None = None) -> dict:
    """Where every listed file went, JSON-able.

    Keys: ``source``, ``layout``, ``split`` (``group``, ``original`` or ``manifest``), ``seed``, ``val_fraction``,
    ``test_fraction``; ``files`` (listed, all kinds), ``files_per_folder_split``, ``non_image_skipped`` (with
    ``non_image_examples``), ``unreadable_skipped``; ``slices`` (decoded images; one per 2D file);
    ``distinct_files`` (by bytes), ``distinct_pixels`` (by decoded pixels), ``distinct_images`` (copy groups,
    near copies joined; None from a manifest); ``copies_removed`` ``{byte, pixel, near}``;
    ``groups_across_folder_splits`` (groups found in two folder splits: the leakage of the folders' own split);
    ``cross_label_groups``, ``cross_label_images``, ``cross_label_examples``; ``cross_split_removed``;
    ``unlisted``; ``blank_removed`` (near-blank or constant images left out); ``dicomdir_skipped``;
    ``left_out`` ``{status: n}`` (every status but kept); ``train``, ``val``, ``test`` and ``per_class``
    ``{split: {class: n}}`` (images kept); ``near_duplicate_rule``; ``scan_rule``; ``scans`` (scan groups'
    sizes, :func:`tuneae.data.scans.group_sizes`, plus ``by``: images per way the group was found, one of
    ``tuneae.data.scans.SOURCES``); ``split_groups`` (sizes of the split units of kept images); ``warnings`` (a
    class missing from a split, a group holding two classes or more than 5% of the images, near-blank images
    left out).

    ``slices == train + val + test + sum(copies_removed) + cross_label_images + cross_split_removed + unlisted
    + blank_removed`` and ``files == non_image_skipped + dicomdir_skipped + unreadable_skipped + image files
    decoded``.
    """
    st, recs = decision.status, items.records
    fsplits = [r.folder_split for r in recs]
    kept = st == "kept"
    per_class = {name: {c: int(((decision.split == name) & kept & (items.label == k)).sum())
                        for k, c in enumerate(items.classes)} for name in SPLITS}
    grouped = decision.group >= 0
    fs = items.folder_split
    pairs = {(int(g), s) for g, s in zip(decision.group[grouped], fs[grouped])}
    n_fs = np.bincount([g for g, _ in pairs], minlength=1) if pairs else np.zeros(1, np.int64)
    skipped = list(items.skipped.items())
    kept_units = decision.group[kept & grouped]
    scans = None
    if how is not None:
        scans = {**group_sizes(decision.scan), "by": {k: int((how == k).sum()) for k in SOURCES}}
    return {
        "source": description, "layout": layout, "split": "manifest" if cfg.manifest else cfg.split,
        "manifest": cfg.manifest or None, "seed": cfg.seed, "val_fraction": cfg.val_fraction,
        "test_fraction": cfg.test_fraction if cfg.split == "group" else None,
        "files": len(recs),
        "files_per_folder_split": {s: fsplits.count(s) for s in SPLITS if s in fsplits} or None,
        "non_image_skipped": sum(why == "not_image" for _, why in skipped),
        "non_image_examples": [recs[f].rel for f, why in skipped if why == "not_image"][:_EXAMPLES],
        "unreadable_skipped": sum(why == "unreadable" for _, why in skipped),
        "slices": len(st),
        "distinct_files": len({recs[f].sha for f in set(items.file.tolist())}),
        "distinct_pixels": len(set(items.pixel_hash.tolist())),
        "distinct_images": decision.distinct_images,
        "copies_removed": {k: int(((st == "copy") & (decision.duplicate == k)).sum()) for k in KINDS},
        "groups_across_folder_splits": int((n_fs > 1).sum()) if any(fsplits) else None,
        "cross_label_groups": len(set(decision.group[st == "cross_label"].tolist())),
        "cross_label_images": int((st == "cross_label").sum()),
        "cross_label_examples": _cross_label(items, decision),
        "cross_split_removed": int((st == "cross_split").sum()),
        "unlisted": int((st == "unlisted").sum()),
        "blank_removed": int((st == "blank").sum()),
        "dicomdir_skipped": sum(why == "dicomdir" for _, why in skipped),
        "left_out": {k: int((st == k).sum()) + sum(why == k for _, why in skipped) for k in STATUSES if k != "kept"},
        **{name: sum(per_class[name].values()) for name in SPLITS},
        "per_class": per_class,
        "near_duplicate_rule": _near_rule(cfg) if not cfg.manifest else None,
        "scan_rule": _scan_rule(cfg) if how is not None else None,
        "scans": scans,
        "split_groups": group_sizes(np.unique(kept_units, return_inverse=True)[1].ravel()) if len(kept_units) else None,
        "warnings": _warnings(items, decision, per_class),
    }


_SKIP_REASONS = {"not_image": "not an image file (no image ending, no DICOM marker)",
                 "dicomdir": "DICOMDIR: an index of DICOM media; the files' own headers give their IDs",
                 "unreadable": "cannot be decoded"}


def manifest_rows(items: Items, decision: Decision) -> list[dict]:
    """One manifest row per item and per skipped file, in path order (see :mod:`tuneae.data.manifest`)."""
    rows = []
    for i in range(len(items.file)):
        rec = items.records[items.file[i]]
        rows.append({"path": rec.rel, "slice": int(items.slice[i]), "class": items.classes[items.label[i]],
                     "group": int(decision.group[i]) if decision.group[i] >= 0 else "",
                     "split": str(decision.split[i]), "status": str(decision.status[i]),
                     "duplicate": str(decision.duplicate[i]), "copy_of": str(decision.copy_of[i]),
                     "sha256": rec.sha, "scan": int(decision.scan[i]) if decision.scan[i] >= 0 else "",
                     "reason": str(decision.reason[i])})
    for f, why in items.skipped.items():
        rec = items.records[f]
        rows.append({"path": rec.rel, "slice": "", "class": rec.label, "group": "", "split": "", "status": why,
                     "duplicate": "", "copy_of": "", "sha256": rec.sha, "scan": "",
                     "reason": _SKIP_REASONS[why] + (f": {items.skip_detail[f]}" if f in items.skip_detail else "")})
    return sorted(rows, key=lambda r: (r["path"], -1 if r["slice"] == "" else r["slice"]))


def format_summary(counts: dict) -> str:
    """A short human-readable summary of ``counts`` (:func:`make_counts`): files, duplicates by kind, groups left
    out, and a per-class table of the images kept in each split."""
    c = counts
    lines = [f"source {c['source']} ({c['layout']}); split: {c['split']}, seed {c['seed']}",
             f"files {c['files']}: {c['non_image_skipped']} not images (skipped), {c['unreadable_skipped']} "
             f"unreadable (skipped); {c['slices']} images decoded",
             f"distinct: {c['distinct_files']} by bytes, {c['distinct_pixels']} by pixels, "
             f"{c['distinct_images'] if c['distinct_images'] is not None else '-'} after near copies "
             f"({c['near_duplicate_rule'] or 'from the manifest'})",
             "copies removed: " + ", ".join(f"{n} {k}" for k, n in c["copies_removed"].items())
             + f"; left out: {c['cross_label_images']} images in {c['cross_label_groups']} groups holding two "
               f"classes, {c['cross_split_removed']} cross-split copies, {c['blank_removed']} near-blank"]
    if c.get("scans"):
        sc = c["scans"]
        lines.append(f"scan groups: {sc['groups']} ({sc['single']} single images; of the others 2-5: {sc['2-5']}, "
                     f"6-10: {sc['6-10']}, 11-25: {sc['11-25']}, >25: {sc['>25']}; largest {sc['largest']}); "
                     f"images by " + ", ".join(f"{k} {n}" for k, n in sc["by"].items() if n))
    if c["groups_across_folder_splits"] is not None:
        lines.append(f"groups found in two folder splits (leakage of the folders' own split): "
                     f"{c['groups_across_folder_splits']}")
    lines += [f"  cross-label group: {' | '.join(g)}" for g in c["cross_label_examples"]]
    classes = list(c["per_class"]["train"])
    width = max(8, *(len(k) for k in classes))
    lines.append(f"{'split':<6} " + " ".join(f"{k:>{width}}" for k in classes) + f" {'total':>7}")
    for name in SPLITS:
        row = c["per_class"][name]
        lines.append(f"{name:<6} " + " ".join(f"{row[k]:>{width}}" for k in classes) + f" {c[name]:>7}")
    lines += [f"warning: {w}" for w in c["warnings"]]
    return "\n".join(lines)
