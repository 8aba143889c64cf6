"""Train / val / test by group: a seeded split stratified by class in which no group straddles two splits.

Two rules, chosen by ``DataConfig.split``:

* ``"group"`` (default): the split units of all folders are pooled and split per class into test, val and train
  (``test_fraction``, ``val_fraction``, the rest), so every class is in every split.
* ``"original"``: the folders' own split; a unit found in several folder splits goes to the first of train, val,
  test, and its members in the others are left out (``cross_split``). Without a ``val`` folder, val is carved
  from the train units by the same stratified rule.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from tuneae.data.errors import DataError

SPLITS = ("train", "val", "test")
"""The split names, in the order in which a unit found in several folder splits is given to one."""


@dataclass(frozen=True, eq=False)
class Splits:
    """De-duplicated train / val / test images of one source at one size.

    Images are ``(N, 1, S, S)`` uint8 in [0, 255] (S = ``image_size``), labels ``(N,)`` int64 indices into
    ``classes``. Within each array, images are ordered by class, then by their pixel fingerprint.

    ``counts`` (JSON-able) says where every file went (see :func:`tuneae.data.summary.make_counts`); ``manifest``
    holds one row per listed file or slice (see :mod:`tuneae.data.manifest`), written by
    :func:`tuneae.data.write_manifest`.

    ``train_groups`` / ``val_groups`` / ``test_groups`` are ``(N,)`` int64, aligned with the images: the cluster of
    correlated images each belongs to, for a cluster bootstrap over them (:func:`tuneae.metrics.mean_interval`'s
    ``groups``). It is the image's split unit (its scan group, joined with its copy group; see
    :mod:`tuneae.data.scans`), else its scan group, else the image alone (a phantom, or a manifest row without
    either). None (splits made without them): use :meth:`groups`, which then gives each image its own group.
    """

    train: np.ndarray
    train_labels: np.ndarray
    val: np.ndarray
    val_labels: np.ndarray
    test: np.ndarray
    test_labels: np.ndarray
    classes: tuple[str, ...]
    counts: dict
    manifest: tuple[dict, ...] = ()
    train_groups: np.ndarray | None = None
    val_groups: np.ndarray | None = None
    test_groups: np.ndarray | None = None

    def groups(self, split: str) -> np.ndarray:
        """(N,) int64 cluster id of each image of ``split`` (``train`` / ``val`` / ``test``), in the order of the
        images; each image its own group where the splits carry none."""
        if split not in SPLITS:
            raise ValueError(f"split={split!r}: one of {list(SPLITS)}")
        g = getattr(self, f"{split}_groups")
        return np.arange(len(getattr(self, split)), dtype=np.int64) if g is None else g


def _take(sizes: np.ndarray, target: float) -> int:
    """How many leading units to take so their images come closest to ``target``: units whose midpoint
    (images before it + half its own) lies within the target (one image each: ``round(target)``, halves up)."""
    mid = np.cumsum(sizes) - sizes / 2
    return int(np.searchsorted(mid, target, side="right"))


def stratify(label: np.ndarray, size: np.ndarray, key: np.ndarray, classes: tuple[str, ...],
             shares: dict[str, float], rest: str, seed: int, strict: bool) -> np.ndarray:
    """Assign units to splits per class: a seeded shuffle, then ``shares`` of each class's images in turn.

    Each named split gets at least one unit of every class and ``rest`` keeps at least one, when the class has
    more units than named splits.

    Args:
        label: (U,) int class of each unit.
        size: (U,) int images kept in each unit.
        key: (U,) str content key of each unit; the order before shuffling, so renaming files changes nothing.
        classes: class names; the shuffle of class c is seeded by ``(seed, crc32(c))``.
        shares: ``{split: fraction of the class's images}``, taken in this order.
        rest: the split of the remaining units.
        seed: the split's seed.
        strict: raise when a class has too few units for every split; else its units all go to ``rest``.

    Returns:
        (U,) str split of each unit.

    Raises:
        DataError: ``strict`` and a class has fewer units than ``len(shares) + 1``, naming the class.
    """
    out = np.full(len(label), rest, dtype="U5")
    for k, name in enumerate(classes):
        units = np.flatnonzero(label == k)
        if len(units) == 0:
            continue
        if len(units) < len(shares) + 1:
            if strict:
                raise DataError(f"class {name!r} has {len(units)} distinct image group(s); the split needs at least "
                                f"{len(shares) + 1} (one each for {', '.join([*shares, rest])})")
            continue
        units = units[np.argsort(key[units], kind="stable")]
        units = units[np.random.default_rng([seed, zlib.crc32(name.encode())]).permutation(len(units))]
        total, start = size[units].sum(), 0
        for j, (split, share) in enumerate(shares.items()):
            left = len(units) - start - (len(shares) - j)  # keep one for each later split and one for rest
            n = min(max(_take(size[units[start:]], share * total), 1), left)
            out[units[start:start + n]] = split
            start += n
    return out


def group_split(label: np.ndarray, size: np.ndarray, key: np.ndarray, classes: tuple[str, ...],
                val_fraction: float, test_fraction: float, seed: int) -> np.ndarray:
    """The default split of U units: pooled, stratified by class, seeded (see :func:`stratify`).

    Returns:
        (U,) str ``train`` / ``val`` / ``test``.

    Raises:
        DataError: a class has fewer than 3 units.
    """
    return stratify(label, size, key, classes, {"test": test_fraction, "val": val_fraction}, "train", seed,
                    strict=True)


def original_split(folder_split: np.ndarray, unit: np.ndarray) -> np.ndarray:
    """The split of each unit under the folders' own split: the first of train, val, test it is found in.

    Args:
        folder_split: (M,) str folder split of each item.
        unit: (M,) int unit of each item, in [0, U).

    Returns:
        (U,) str.
    """
    rank = np.array([SPLITS.index(s) for s in folder_split], dtype=np.int64)
    best = np.full(int(unit.max(initial=-1)) + 1, len(SPLITS) - 1, np.int64)
    np.minimum.at(best, unit, rank)
    return np.array(SPLITS, dtype="U5")[best]


def carve_val(unit_split: np.ndarray, label: np.ndarray, size: np.ndarray, key: np.ndarray,
              classes: tuple[str, ...], val_fraction: float, seed: int) -> np.ndarray:
    """Move ``val_fraction`` of each class's train units to val (stratified, seeded; a class with a single train
    unit keeps it in train). Returns the new (U,) split of each unit."""
    out = unit_split.copy()
    train = np.flatnonzero(unit_split == "train")
    out[train] = stratify(label[train], size[train], key[train], classes, {"val": val_fraction}, "train", seed,
                          strict=False)
    return out
