"""The data pipeline: check the settings, list, decode (cached), find scans and duplicates, split, and report.

``load_splits`` wires the steps; each step's concept lives in its own module (sources, decode, scans, duplicates,
splits, manifest, summary).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tuneae.config import DataConfig
from tuneae.data.decode import decode_files
from tuneae.data.duplicates import (
    copy_kinds,
    features,
    find_groups,
    mixed_label_groups,
    near_copy_pairs,
    representatives,
)
from tuneae.data.errors import DataError
from tuneae.data.items import Items, build_items, phantom_items
from tuneae.data.manifest import read_manifest
from tuneae.data.phantoms import phantom_images
from tuneae.data.scans import GROUP_LEVELS, scan_groups
from tuneae.data.sources import LAYOUTS, folder_listing, hub_listing, scan_folder, source_kind
from tuneae.data.splits import SPLITS, Splits, carve_val, group_split, original_split
from tuneae.data.summary import make_counts, manifest_rows
from tuneae.images import check_read_options

SPLIT_RULES = ("group", "original")
"""Values of ``DataConfig.split``."""

MOSTLY_DROPPED = 0.5
"""Share of the images (decoded slices and unreadable files) left out above which loading stops, unless
``DataConfig.allow_mostly_dropped``."""


@dataclass(frozen=True)
class Decision:
    """Where each of M items went (aligned with :class:`~tuneae.data.items.Items`)."""

    split: np.ndarray
    """(M,) str: ``train`` / ``val`` / ``test`` for kept items and copies, ``""`` for items left out."""
    status: np.ndarray
    """(M,) str: one of :data:`tuneae.data.manifest.STATUSES`."""
    duplicate: np.ndarray
    """(M,) str: ``byte`` / ``pixel`` / ``near`` for copies, else ``""``."""
    copy_of: np.ndarray
    """(M,) str: the kept item a copy duplicates (``path`` or ``path#slice``), else ``""``."""
    group: np.ndarray
    """(M,) int64: split unit, -1 where unknown."""
    scan: np.ndarray
    """(M,) int64: scan group, -1 where unknown."""
    reason: np.ndarray
    """(M,) str: why an item is not kept, in words; ``""`` for kept items."""
    distinct_images: int | None
    """Number of copy groups (None when the split was read from a manifest)."""


def check_source(cfg: DataConfig) -> None:
    """Validate the data settings cheaply, before any decoding, training or Ray start.

    Checks ``image_size`` (a positive number of pixels; whether a model can take it is the model config's rule,
    :func:`tuneae.models.check_model_config`), ``split``, ``val_fraction``, ``test_fraction``, the decoding
    settings (``slice_plane``, ``window_low`` / ``window_high``, ``min_foreground``), ``phantom_count``, that a
    ``manifest`` file exists, and a local folder's layout (one of ``LAYOUTS``; images are not decoded). A hub id is
    checked only for its form (``owner/name``).

    Raises:
        DataError: naming the bad field and value, or the missing folder, its layout problem or the manifest.
    """
    if not isinstance(cfg.image_size, (int, np.integer)) or isinstance(cfg.image_size, bool) or cfg.image_size < 8:
        raise DataError(f"image_size={cfg.image_size!r}: must be a whole number of pixels >= 8 (and divisible by "
                        f"2**depth of the models searched), e.g. 64, 128 or 256")
    if isinstance(cfg.near_distance, bool) or not isinstance(cfg.near_distance, (int, np.integer)) \
            or not -1 <= cfg.near_distance < 256:
        raise DataError(f"near_distance={cfg.near_distance!r}: a whole number of bits from 0 to 255, or -1 (equal "
                        f"pixels only)")
    if cfg.group_by not in GROUP_LEVELS:
        raise DataError(f"group_by={cfg.group_by!r}: choose one of {list(GROUP_LEVELS)}")
    for name in ("scan_min_corr", "near_min_corr"):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not -1.0 <= value <= 2.0:
            raise DataError(f"{name}={value!r}: a correlation from -1 to 1 (above 1 turns the rule off)")
    if isinstance(cfg.min_signal, bool) or not isinstance(cfg.min_signal, (int, float)) \
            or not 0.0 <= cfg.min_signal < 1.0:
        raise DataError(f"min_signal={cfg.min_signal!r}: a fraction of pixels from 0 (keep every image) to below 1")
    if cfg.groups and not Path(cfg.groups).expanduser().is_file():
        raise DataError(f"groups={cfg.groups!r}: no such file (a CSV with columns path,group)")
    if cfg.groups and source_kind(cfg.source) != "folder":
        raise DataError(f"groups={cfg.groups!r}: a groups CSV needs a local data folder (its paths are relative "
                        f"to it); the source is {cfg.source!r}")
    if cfg.split not in SPLIT_RULES:
        raise DataError(f"split={cfg.split!r}: choose one of {list(SPLIT_RULES)}")
    for name in ("val_fraction", "test_fraction"):
        if not 0.0 < getattr(cfg, name) < 1.0:
            raise DataError(f"{name}={getattr(cfg, name)!r}: must lie strictly between 0 and 1")
    if cfg.val_fraction + cfg.test_fraction >= 1.0:
        raise DataError(f"val_fraction + test_fraction = {cfg.val_fraction + cfg.test_fraction:g}: must be below 1, "
                        f"leaving images to train on")
    try:
        check_read_options(cfg.slice_plane, (cfg.window_low, cfg.window_high), cfg.min_foreground)
    except ValueError as e:
        raise DataError(str(e)) from e
    if cfg.manifest and not Path(cfg.manifest).expanduser().is_file():
        raise DataError(f"manifest={cfg.manifest!r}: no such file (a manifest.csv written by an earlier run)")
    kind = source_kind(cfg.source)
    if kind == "phantom" and cfg.phantom_count < 10:
        raise DataError(f"phantom_count={cfg.phantom_count!r}: need at least 10 phantoms for train, val and test")
    original = cfg.split == "original" and not cfg.manifest
    if kind == "phantom" and original:
        raise DataError("split='original' needs a source with a split of its own; the phantoms have none")
    if kind == "folder":
        root = Path(cfg.source).expanduser()
        layout, entries = scan_folder(root)
        if original and not {"train", "test"} <= {split for _, _, split in entries}:
            raise DataError(f"split='original' needs train/ and test/ folders in {str(root)!r} (its layout: "
                            f"{layout}); use split='group', or one of these layouts: " + "; ".join(LAYOUTS))


def _names(items: Items) -> np.ndarray:
    """(M,) str: ``path`` for single-slice files, ``path#slice`` for slices of a multi-slice file."""
    per_file = np.bincount(items.file, minlength=len(items.records))
    rel = items.rel
    return np.where(per_file[items.file] > 1, np.char.add(np.char.add(rel, "#"), items.slice.astype(str)), rel)


def _unit_keys(unit: np.ndarray, pixel_hash: np.ndarray) -> np.ndarray:
    """(U,) str: the smallest pixel fingerprint in each unit, a content key that does not depend on file names."""
    order = np.lexsort((pixel_hash, unit))
    _, first = np.unique(unit[order], return_index=True)
    return pixel_hash[order[first]]


def decide(items: Items, cfg: DataConfig, copy: np.ndarray, unit: np.ndarray, scan: np.ndarray | None = None,
           blank: np.ndarray | None = None, signal: np.ndarray | None = None) -> Decision:
    """Leave out near-blank images and mixed-label (and cross-split) groups, keep one image per copy group, and
    split the units.

    The image kept from a copy group is its largest slice (most pixels), then the first by path.

    Args:
        items: the decoded slices.
        cfg: ``split``, ``val_fraction``, ``test_fraction``, ``seed`` and ``min_signal`` are read.
        copy: (M,) int copy group of each item.
        unit: (M,) int split unit of each item (copy and scan groups united).
        scan: (M,) int scan group of each item (default: one per item).
        blank: (M,) bool near-blank or constant items, left out (default: none).
        signal: (M,) float fraction of each item's pixels above 0.05, for the reason of blank items.

    Returns:
        :class:`Decision`.

    Raises:
        DataError: more than half of the images left out (:func:`check_dropped`); (group split) a class has fewer
            than 3 units.
    """
    m = len(unit)
    scan = np.arange(m) if scan is None else scan
    blank = np.zeros(m, bool) if blank is None else blank
    idx, fsplit = np.arange(m), items.folder_split
    mixed = mixed_label_groups(unit, items.label)
    eligible = ~mixed & ~blank
    if cfg.split == "original":
        eligible &= fsplit == original_split(fsplit, unit)[unit]
    order = np.lexsort((items.slice, items.rel, -(items.hw[:, 0] * items.hw[:, 1])))
    rep = representatives(copy, eligible, order)[copy]
    kept = rep == idx
    status = np.select([blank, mixed, ~eligible, kept], ["blank", "cross_label", "cross_split", "kept"],
                       "copy").astype("U11")
    check_dropped(items, cfg, status)
    n_units = int(unit.max()) + 1
    size = np.bincount(unit[kept], minlength=n_units)
    ulabel = np.zeros(n_units, np.int64)
    ulabel[unit] = items.label
    live = np.flatnonzero(size > 0)
    key = _unit_keys(unit, items.pixel_hash)[live]
    if cfg.split == "original":
        unit_split = original_split(fsplit, unit)
        if "val" not in fsplit:
            unit_split[live] = carve_val(unit_split[live], ulabel[live], size[live], key, items.classes,
                                         cfg.val_fraction, cfg.seed)
    else:
        unit_split = np.full(n_units, "", dtype="U5")
        unit_split[live] = group_split(ulabel[live], size[live], key, items.classes, cfg.val_fraction,
                                       cfg.test_fraction, cfg.seed)
    split = np.where((status == "kept") | (status == "copy"), unit_split[unit], "").astype("U5")
    duplicate = np.where(status == "copy", copy_kinds(rep, items.file_sha, items.slice, items.pixel_hash), "")
    copy_of = np.where(status == "copy", _names(items)[np.maximum(rep, 0)], "")
    reason = _reasons(items, cfg, status, unit, duplicate, copy_of, unit_split, signal)
    return Decision(split=split, status=status, duplicate=duplicate.astype("U5"), copy_of=copy_of, group=unit,
                    scan=scan, reason=reason, distinct_images=int(copy.max()) + 1)


def check_dropped(items: Items, cfg: DataConfig, status: np.ndarray) -> None:
    """Stop when more than ``MOSTLY_DROPPED`` of the images (slices and unreadable files) are left out, unless
    ``cfg.allow_mostly_dropped``.

    Args:
        items: the decoded slices (and the files skipped as unreadable).
        cfg: ``allow_mostly_dropped`` is read.
        status: (M,) str status of each item.

    Raises:
        DataError: naming the counts by status and an example file of each.
    """
    unreadable = sum(why == "unreadable" for why in items.skipped.values())
    total = len(status) + unreadable
    kept = int((status == "kept").sum())
    if cfg.allow_mostly_dropped or not total or (total - kept) / total <= MOSTLY_DROPPED:
        return
    rel = items.rel
    names, first = np.unique(status[status != "kept"], return_index=True)
    where = np.flatnonzero(status != "kept")
    parts = [f"{int((status == k).sum())} {k} (e.g. {str(rel[where[f]])!r})" for k, f in zip(names, first)]
    parts += [f"{unreadable} unreadable"] if unreadable else []
    raise DataError(f"{total - kept} of {total} images ({(total - kept) / total:.0%}) would be left out: "
                    + ", ".join(parts) + f"; {kept} kept. Check the data (blank: fewer than min_signal="
                    f"{cfg.min_signal:g} of the pixels above 0.05; copy: a duplicate), or pass "
                    f"allow_mostly_dropped=True (--allow-mostly-dropped) to accept it; the manifest then gives every "
                    f"file's reason")


def _reasons(items: Items, cfg: DataConfig, status: np.ndarray, unit: np.ndarray, duplicate: np.ndarray,
             copy_of: np.ndarray, unit_split: np.ndarray, signal: np.ndarray | None) -> np.ndarray:
    """(M,) str: why each item is not kept, in words (``""`` for kept items)."""
    unit_classes: dict[int, set[str]] = {}
    for u, lab in zip(unit.tolist(), items.label.tolist()):
        unit_classes.setdefault(u, set()).add(items.classes[lab])
    out = np.full(len(status), "", dtype=object)
    for i in np.flatnonzero(status != "kept"):
        st = status[i]
        if st == "copy":
            out[i] = f"{duplicate[i]} copy of {copy_of[i]}"
        elif st == "blank":
            if not items.informative[i]:
                out[i] = "constant image (one grey level)"
            else:
                frac = float(signal[i]) if signal is not None else 0.0
                out[i] = (f"near-blank: {frac:.2%} of its pixels above 0.05 of full scale (min_signal "
                          f"{cfg.min_signal:g})")
        elif st == "cross_label":
            out[i] = f"its group {unit[i]} holds classes {', '.join(sorted(unit_classes[int(unit[i])]))}"
        elif st == "cross_split":
            out[i] = f"its group {unit[i]} is kept in the {unit_split[unit[i]]} folder split"
    return out.astype(str)


def from_manifest(items: Items, rows: list[dict], where: str) -> Decision:
    """The split recorded in a manifest, checked against the files: same bytes (sha256) and class.

    Items the manifest does not list are left out (``unlisted``).

    Raises:
        DataError: a listed file changed (sha256 or class differ) or a kept row's file or slice is missing.
    """
    by_key = {(r["path"], r["slice"]): r for r in rows}
    rel, sha, m = items.rel, items.file_sha, len(items.file)
    out = {"split": np.full(m, "", "U5"), "status": np.full(m, "unlisted", "U11"), "duplicate": np.full(m, "", "U5"),
           "copy_of": np.full(m, "", dtype=object), "group": np.full(m, -1, np.int64),
           "scan": np.full(m, -1, np.int64), "reason": np.full(m, "not listed in the manifest", dtype=object)}
    found = set()
    for i in range(m):
        row = by_key.get((rel[i], int(items.slice[i])))
        if row is None:
            continue
        if row["sha256"] != sha[i] or row["class"] != items.classes[items.label[i]]:
            raise DataError(f"{where}: {rel[i]!r} changed since the manifest was written (sha256 or class differ); "
                            f"the manifest cannot reproduce its split")
        found.add((rel[i], int(items.slice[i])))
        for k in ("split", "status", "duplicate", "copy_of", "reason"):
            out[k][i] = row[k]
        for k in ("group", "scan"):
            out[k][i] = -1 if row[k] is None else row[k]
    missing = [k for k, r in by_key.items() if r["status"] == "kept" and k not in found]
    if missing:
        raise DataError(f"{where}: {len(missing)} kept image(s) not found in the data, e.g. {missing[0][0]!r} slice "
                        f"{missing[0][1]}; is it the same data folder?")
    return Decision(split=out["split"], status=out["status"], duplicate=out["duplicate"],
                    copy_of=out["copy_of"].astype(str), group=out["group"], scan=out["scan"],
                    reason=out["reason"].astype(str), distinct_images=None)


def clusters(decision: Decision) -> np.ndarray:
    """(M,) int64 cluster of each item for a bootstrap over images: its split unit (which holds its scan group and
    its copies), else its scan group, else the item alone; ids unique across the three kinds."""
    m = len(decision.group)
    base = int(max(decision.group.max(initial=-1), 0)) + 1  # scan ids after the unit ids, lone items after both
    alone = base + int(max(decision.scan.max(initial=-1), 0)) + 1 + np.arange(m)
    return np.where(decision.group >= 0, decision.group,
                    np.where(decision.scan >= 0, base + decision.scan, alone)).astype(np.int64)


def _arrays(items: Items, decision: Decision) -> dict[str, np.ndarray]:
    """Kept images per split, ordered by class, then pixel fingerprint, with their labels and clusters."""
    out, cluster = {}, clusters(decision)
    for name in SPLITS:
        sel = np.flatnonzero((decision.status == "kept") & (decision.split == name))
        sel = sel[np.lexsort((items.pixel_hash[sel], items.label[sel]))]
        if len(sel) == 0:
            raise DataError(f"the {name} split is empty after de-duplication; need more distinct images")
        out[name], out[f"{name}_labels"], out[f"{name}_groups"] = items.images[sel], items.label[sel], cluster[sel]
    return out


def _load_items(cfg: DataConfig) -> tuple[Items, str, str]:
    """Items of ``cfg.source`` with its layout and a description for the summary."""
    kind = source_kind(cfg.source)
    if kind == "phantom":
        images, labels, classes = phantom_images(cfg.phantom_count, cfg.image_size, cfg.seed)
        return phantom_items(images, labels, classes), "phantom", "phantom (synthetic head phantoms, not MRI)"
    listing = folder_listing(Path(cfg.source).expanduser()) if kind == "folder" else hub_listing(cfg)
    decoded, _ = decode_files(listing.records, cfg)
    return build_items(listing.records, decoded, cfg.skip_unreadable), listing.layout, cfg.source


def load_splits(cfg: DataConfig) -> Splits:
    """Load, decode (cached), de-duplicate by content and split the images of ``cfg.source``.

    Steps: list the files (a folder in one of ``LAYOUTS``, the hub's parquet export, or generated phantoms);
    decode each distinct file once (cached, see :mod:`tuneae.data.decode`); mark near-blank images (left out);
    find scan groups (:mod:`tuneae.data.scans`) and copies by equal pixels and by perceptual hash confirmed by
    pixels (:mod:`tuneae.data.duplicates`; phantoms are distinct by construction and skip both); unite them into
    split units; leave out units holding two classes; keep one image per copy group; split the units
    (``cfg.split``, see :mod:`tuneae.data.splits`), or read the split from ``cfg.manifest``. Warnings (a class
    missing from a split, a group holding two classes or more than 5% of the images, near-blank images) are
    printed to stderr and listed in ``counts["warnings"]``.

    Args:
        cfg: the data settings.

    Returns:
        :class:`Splits` of (N, 1, S, S) uint8 images, (N,) int64 labels and (N,) int64 clusters
        (:func:`clusters`), with ``counts`` and ``manifest``.

    Raises:
        DataError: a bad setting or source (see :func:`check_source`), an unreachable hub, an unreadable image
            (naming its path) without ``skip_unreadable``, a bad groups CSV (naming the row), more than half of the
            images left out without ``allow_mostly_dropped``, too few distinct images for the split, a manifest
            that does not match the data, or an empty split.
    """
    check_source(cfg)
    items, layout, description = _load_items(cfg)
    how = None
    if cfg.manifest:
        decision = from_manifest(items, read_manifest(cfg.manifest), f"manifest {cfg.manifest!r}")
    elif layout == "phantom":
        each = np.arange(len(items.file))
        decision = decide(items, cfg, each, each)
    else:
        feats = features(items.images)
        blank = (feats.signal < cfg.min_signal) | ~items.informative
        scans = scan_groups(items, feats.thumbs, ~blank, group_by=cfg.group_by, min_corr=cfg.scan_min_corr,
                            groups_csv=cfg.groups)
        near = near_copy_pairs(items.dhash, feats, ~blank, items.file, cfg.near_distance, cfg.near_min_corr)
        groups = find_groups(items.pixel_hash, near, scans.pairs)
        decision = decide(items, cfg, groups.copy, groups.unit, scans.scan, blank, feats.signal)
        how = scans.how
    counts = make_counts(items, decision, cfg, layout, description, how)
    for warning in counts["warnings"]:
        print(f"[tuneae.data] warning: {warning}", file=sys.stderr, flush=True)
    arrays = _arrays(items, decision)
    return Splits(**arrays, classes=items.classes, counts=counts, manifest=tuple(manifest_rows(items, decision)))
