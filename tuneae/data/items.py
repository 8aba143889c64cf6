"""Items: every decoded slice of a source with where it came from, as aligned arrays."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from tuneae.data.decode import HASH_SIZE, Decoded
from tuneae.data.errors import DataError
from tuneae.data.sources import Record, is_dicomdir


@dataclass(frozen=True)
class Items:
    """M slices (items) of one source and the files they came from. Arrays are aligned, ordered by file path."""

    records: list[Record]
    """Every listed file, image or not, in path order."""
    file: np.ndarray
    """(M,) int64: index of each item's file in ``records``."""
    slice: np.ndarray
    """(M,) int64: the item's slice index within its file."""
    label: np.ndarray
    """(M,) int64: index into ``classes``."""
    classes: tuple[str, ...]
    """Sorted canonical class names of the items."""
    images: np.ndarray
    """(M, 1, S, S) uint8 in [0, 255]."""
    pixel_hash: np.ndarray
    """(M,) str: fingerprint of the decoded pixels."""
    dhash: np.ndarray
    """(M, 32) uint8: packed 256-bit difference hash."""
    hw: np.ndarray
    """(M, 2) int64: slice height and width before resizing."""
    informative: np.ndarray
    """(M,) bool: not a constant slice."""
    skipped: dict[int, str]
    """``{record index: "not_image" | "dicomdir" | "unreadable"}`` for files that gave no item."""
    skip_detail: dict[int, str] = field(default_factory=dict)
    """``{record index: why}`` for skipped files: the decoder's message for unreadable ones."""

    @property
    def rel(self) -> np.ndarray:
        """(M,) str: each item's file path relative to the data root."""
        return np.array([self.records[f].rel for f in self.file], dtype=str)

    @property
    def folder_split(self) -> np.ndarray:
        """(M,) str: each item's folder split (``""`` for sources without one)."""
        return np.array([self.records[f].folder_split for f in self.file], dtype="U5")

    @property
    def file_sha(self) -> np.ndarray:
        """(M,) str: sha256 of each item's file."""
        return np.array([self.records[f].sha for f in self.file], dtype="U64")


def build_items(records: list[Record], decoded: Decoded, skip_unreadable: bool) -> Items:
    """Expand decoded distinct files to the items of every listed file (byte copies share decoded rows).

    Args:
        records: every listed file, in path order.
        decoded: :func:`tuneae.data.decode.decode_files` of these records.
        skip_unreadable: count and skip files that cannot be decoded instead of raising.

    Returns:
        :class:`Items`.

    Raises:
        DataError: a file cannot be decoded (naming it, the reason and how many failed) and ``skip_unreadable``
            is not set, or no file gave an image.
    """
    index = {s: u for u, s in enumerate(decoded.shas)}
    rows_of = [[] for _ in decoded.shas]
    for row, u in enumerate(decoded.owner):
        rows_of[u].append(row)
    skipped: dict[int, str] = {}
    detail: dict[int, str] = {}
    files, rows = [], []
    for f, rec in enumerate(records):
        if not rec.image:
            skipped[f] = "dicomdir" if is_dicomdir(rec.rel) else "not_image"
        elif decoded.error[index[rec.sha]]:
            skipped[f] = "unreadable"
            detail[f] = str(decoded.error[index[rec.sha]])
        else:
            files += [f] * len(rows_of[index[rec.sha]])
            rows += rows_of[index[rec.sha]]
    bad = [f for f, why in skipped.items() if why == "unreadable"]
    if bad and not skip_unreadable:
        first = records[bad[0]]
        raise DataError(f"cannot read image file {str(first.path or first.rel)!r}: "
                        f"{decoded.error[index[first.sha]]} ({len(bad)} unreadable in all). Fix or remove it, or "
                        f"pass --skip-unreadable to count and skip it")
    if not rows:
        raise DataError("no image file could be read; every file was skipped")
    rows_a, files_a = np.array(rows, dtype=np.int64), np.array(files, dtype=np.int64)
    classes = tuple(sorted({records[f].label for f in files}))
    return Items(records=records, file=files_a, slice=decoded.slice[rows_a],
                 label=np.array([classes.index(records[f].label) for f in files], dtype=np.int64),
                 classes=classes, images=decoded.images[rows_a], pixel_hash=decoded.pixel_hash[rows_a],
                 dhash=decoded.dhash[rows_a], hw=decoded.hw[rows_a], informative=decoded.informative[rows_a],
                 skipped=skipped, skip_detail=detail)


def phantom_items(images: np.ndarray, labels: np.ndarray, classes: tuple[str, ...]) -> Items:
    """Items of generated phantoms ``(N, 1, S, S)`` uint8: one per image, paths ``phantom[<i>]``, all distinct by
    construction (no duplicate search: their difference hashes are left zero and marked uninformative)."""
    n, size = len(images), images.shape[-1]
    shas = [hashlib.sha256(im.tobytes()).hexdigest() for im in images]
    records = [Record(rel=f"phantom[{i}]", label=classes[labels[i]], folder_split="", sha=shas[i])
               for i in range(n)]
    return Items(records=records, file=np.arange(n), slice=np.zeros(n, np.int64), label=labels.astype(np.int64),
                 classes=tuple(classes), images=images, pixel_hash=np.array([s[:32] for s in shas], dtype="U32"),
                 dhash=np.zeros((n, HASH_SIZE * HASH_SIZE // 8), np.uint8), hw=np.full((n, 2), size, np.int64),
                 informative=np.zeros(n, bool), skipped={})
