"""Slices of one scan: which images came from one patient, study, series or volume, so that a split keeps them
together.

Every decoded slice gets a *scan group*, the connected component of these links (a slice with none is a group of
its own):

* **Slices of one file** (a NIfTI volume, a multi-frame DICOM, a multi-page TIFF) are one scan.
* **DICOM files** with the same PatientID (``DataConfig.group_by = "patient"``, the default), StudyInstanceUID
  (``"study"``) or SeriesInstanceUID (``"series"``), read from each file's own header (pydicom,
  ``stop_before_pixels``). A file lacking the chosen ID falls back to the next finer one (patient -> study ->
  series), and one with none of them is a scan of its own. A ``DICOMDIR`` index is not needed and is skipped: the
  IDs it repeats are in the files themselves.
* **Numbered 2-D images**: two single-slice files in one folder whose names differ only in a trailing number
  (``gg (660).jpg``, ``gg (661).jpg``: same folder, same text before and after the number, same ending), with
  numbers 1 or 2 apart (``SCAN_REACH``), are slices of one scan when their pixels look alike: Pearson correlation
  of their 32 x 32 thumbnails (the model input resized with bilinear filtering,
  :func:`tuneae.data.duplicates.features`) at least
  ``DataConfig.scan_min_corr`` (default 0.8). Near-blank images take part in no link.
* **A groups CSV** (``DataConfig.groups``, columns ``path,group``): files with one ``group`` value are one scan.
  Listed files get no automatic link (the CSV replaces the rules above for them); unlisted files keep the rules.

Why numbers, a reach of 2 and 0.8, measured on the brain-tumour MRI folder (3264 JPEGs; 32 x 32 thumbnails of the
128 x 128 model input): the three tumour folders hold runs of consecutively numbered files that are neighbouring
slices of one scan. Pairs of files numbered 1 apart correlate with median 0.89 (3217 pairs; 64% at >= 0.85),
2 apart 0.75, 50 apart 0.61, and random pairs of one class 0.59 (95th percentile 0.81, 99th 0.89): the histogram of
1-apart pairs is a peak at 0.9-1.0 over the same broad hump that random pairs make. 0.8 sits at the random pairs'
95th percentile: it links most slices of a scan and few scan boundaries. The groups it makes on that folder:
1228 (688 single images), half of the others 4 or fewer images, the largest 25 (0.8% of the images); at 0.7 the
largest would be 88, at 0.6 127. The split by these groups (united with the copy groups) leaves few test images
with an alike neighbouring slice in train or val: see ``benchmarks/scan_leakage.py`` and the project docs.

Registered data sets whose file numbers are not slice positions can turn the rule off with ``scan_min_corr`` above
1, or give a groups CSV.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from tuneae.data.duplicates import components
from tuneae.data.errors import DataError
from tuneae.data.items import Items
from tuneae.data.manifest import open_csv
from tuneae.images import image_suffix

GROUP_LEVELS = ("patient", "study", "series")
"""Values of ``DataConfig.group_by``: the DICOM ID that keeps slices together (each falls back to the next)."""

_DICOM_TAGS = {"patient": "PatientID", "study": "StudyInstanceUID", "series": "SeriesInstanceUID"}

SCAN_REACH = 2
"""Largest difference of file numbers at which two numbered images can be neighbouring slices."""

NUMBERED = re.compile(r"^(?P<stem>.*?)(?P<num>\d+)(?P<tail>\D*)$")
"""A file name (without its ending) with a last run of digits: ``gg (661)`` -> stem ``gg (``, 661, tail ``)``."""

SOURCES = ("csv", "dicom", "file", "numbered", "single")
"""How an item's scan group was found (``ScanGroups.how``)."""


@dataclass(frozen=True)
class ScanGroups:
    """Scan groups of M slices."""

    scan: np.ndarray
    """(M,) int64: scan group in [0, G), numbered in order of the smallest item."""
    pairs: np.ndarray
    """(P, 2) int64: the links that formed the groups (item indices)."""
    how: np.ndarray
    """(M,) str: one of ``SOURCES``: ``csv`` (listed in the groups CSV), ``dicom`` (a DICOM ID), ``file`` (slices
    of one multi-slice file), ``numbered`` (linked to an alike numbered neighbour), ``single`` (no link)."""


def numbered_key(rel: str) -> tuple[str, str, int] | None:
    """``(folder, name pattern, number)`` of a file whose name ends in a number, else None.

    ``train/glioma/gg (661).jpg`` -> ``("train/glioma", "gg (|).jpg", 661)``.
    """
    p = PurePosixPath(rel)
    suffix = image_suffix(p.name) or p.suffix
    stem = p.name[:len(p.name) - len(suffix)] if suffix else p.name
    m = NUMBERED.match(stem)
    if m is None:
        return None
    return str(p.parent), f"{m['stem']}|{m['tail']}{suffix.lower()}", int(m["num"])


def numbered_pairs(rel: np.ndarray, thumbs: np.ndarray, usable: np.ndarray, min_corr: float,
                   reach: int = SCAN_REACH) -> tuple[np.ndarray, np.ndarray]:
    """Links between alike images numbered 1..``reach`` apart with one folder and name pattern.

    Args:
        rel: (M,) str file paths relative to the data root.
        thumbs: (M, D) zero-mean unit-norm thumbnails (``Features.thumbs``).
        usable: (M,) bool; only these take part (single-slice files that are not near-blank).
        min_corr: correlation at or above which two neighbours are one scan.
        reach: largest number difference.

    Returns:
        ``(pairs (P, 2) int64, corr (P,) float32)``: the links and their correlations.
    """
    where: dict[tuple[str, str], dict[int, list[int]]] = {}
    for i in np.flatnonzero(usable):
        key = numbered_key(str(rel[i]))
        if key is not None:
            where.setdefault(key[:2], {}).setdefault(key[2], []).append(int(i))
    cand = [(i, j) for by_num in where.values() for n, items in by_num.items()
            for d in range(1, reach + 1) for j in by_num.get(n + d, ()) for i in items]
    if not cand:
        return np.zeros((0, 2), np.int64), np.zeros(0, np.float32)
    pairs = np.array(cand, dtype=np.int64)
    corr = np.einsum("ij,ij->i", thumbs[pairs[:, 0]], thumbs[pairs[:, 1]])
    keep = corr >= min_corr
    return pairs[keep], corr[keep]


def dicom_ids(path: Path | None, data: bytes | None, group_by: str) -> str:
    """The ID that groups a DICOM file at level ``group_by`` (falling back to finer levels), or ``""``.

    Args:
        path: the file (or None for bytes).
        data: the file's bytes when ``path`` is None.
        group_by: one of :data:`GROUP_LEVELS`.

    Returns:
        ``"<level>:<value>"``, e.g. ``"patient:77654033"``; ``""`` for a non-DICOM or ID-less file.
    """
    import pydicom

    try:
        src = path if path is not None else io.BytesIO(data or b"")
        ds = pydicom.dcmread(src, stop_before_pixels=True, specific_tags=list(_DICOM_TAGS.values()))
    except Exception:  # not DICOM, or a damaged header: the file is a scan of its own
        return ""
    for level in GROUP_LEVELS[GROUP_LEVELS.index(group_by):]:
        value = str(ds.get(_DICOM_TAGS[level], "") or "").strip()
        if value:
            return f"{level}:{value}"
    return ""


def _is_dicom(rel: str) -> bool:
    return image_suffix(rel) in ("", ".dcm", ".dicom")


def read_groups_csv(path: str | Path, known: set[str]) -> dict[str, str]:
    """Read a groups CSV: columns ``path`` and ``group``, paths relative to the data folder, ``/``-separated.

    Args:
        path: the CSV file.
        known: every image file's path relative to the data root.

    Returns:
        ``{path: group}``.

    Raises:
        DataError: the file is unreadable or lacks a column, or a row (named by its line) has an empty path or
            group, repeats a path, or names a path that is not an image file of the data folder.
    """
    path, reader = open_csv(path, "groups CSV", ("path", "group"))
    out: dict[str, str] = {}
    for line, row in enumerate(reader, start=2):
        rel, group = (row.get("path") or "").strip().replace("\\", "/"), (row.get("group") or "").strip()
        where = f"groups CSV {str(path)!r} line {line}"
        if not rel or not group:
            raise DataError(f"{where}: empty path or group ({rel!r}, {group!r})")
        if rel in out:
            raise DataError(f"{where}: {rel!r} listed twice")
        if rel not in known:
            raise DataError(f"{where}: {rel!r} is not an image file of the data folder (paths are relative to it, "
                            f"e.g. {min(known) if known else 'train/a/x.png'!r})")
        out[rel] = group
    return out


def scan_groups(items: Items, thumbs: np.ndarray, usable: np.ndarray, *, group_by: str = "patient",
                min_corr: float = 0.8, groups_csv: str = "") -> ScanGroups:
    """The scan group of every slice (see the module docstring for the rules).

    Args:
        items: the decoded slices and their files.
        thumbs: (M, D) zero-mean unit-norm thumbnails (``Features.thumbs``).
        usable: (M,) bool; False (near-blank) items take part in no numbered link.
        group_by: one of :data:`GROUP_LEVELS`.
        min_corr: ``DataConfig.scan_min_corr``.
        groups_csv: path of a groups CSV, or ``""``.

    Returns:
        :class:`ScanGroups`.

    Raises:
        DataError: from :func:`read_groups_csv`.
    """
    m = len(items.file)
    rel = items.rel
    per_file = np.bincount(items.file, minlength=len(items.records))
    listed = read_groups_csv(groups_csv, set(rel.tolist())) if groups_csv else {}
    in_csv = np.array([r in listed for r in rel], dtype=bool)
    key = np.array([f"csv:{listed[r]}" if r in listed else "" for r in rel], dtype=object)
    ids: dict[int, str] = {}
    for f in np.unique(items.file[~in_csv]):
        rec = items.records[f]
        if _is_dicom(rec.rel) and (rec.path is not None or rec.data):
            ids[int(f)] = dicom_ids(rec.path, rec.data, group_by)
    dicom = np.array([bool(ids.get(int(f))) for f in items.file], dtype=bool) & ~in_csv
    key[dicom] = [ids[int(f)] for f in items.file[dicom]]
    single = (per_file[items.file] == 1) & ~in_csv & ~dicom
    pairs, _ = numbered_pairs(rel, thumbs, usable & single, min_corr)
    keyed = np.flatnonzero(key != "")
    same_key = np.zeros((0, 2), np.int64)
    if len(keyed):
        _, first, inv = np.unique(key[keyed].astype(str), return_index=True, return_inverse=True)
        same_key = np.stack([keyed, keyed[first[inv.ravel()]]], axis=1)
    _, ffirst, finv = np.unique(items.file, return_index=True, return_inverse=True)
    same_file = np.stack([np.arange(m), ffirst[finv.ravel()]], axis=1)
    links = np.concatenate([pairs, same_key, same_file])
    numbered = np.zeros(m, bool)
    numbered[pairs.ravel()] = True
    how = np.select([in_csv, dicom, per_file[items.file] > 1, numbered], ["csv", "dicom", "file", "numbered"],
                    "single").astype("U8")
    return ScanGroups(scan=components(m, links), pairs=links, how=how)


def group_sizes(labels: np.ndarray) -> dict:
    """Size distribution of groups: ``{"groups", "single", "2-5", "6-10", "11-25", ">25", "largest", "median"}``
    (counts of groups; ``median`` over groups of two or more images, 0 if none)."""
    sizes = np.bincount(labels) if len(labels) else np.zeros(0, np.int64)
    sizes = sizes[sizes > 0]
    multi = sizes[sizes > 1]
    return {"groups": len(sizes), "single": int((sizes == 1).sum()),
            "2-5": int(((sizes >= 2) & (sizes <= 5)).sum()), "6-10": int(((sizes >= 6) & (sizes <= 10)).sum()),
            "11-25": int(((sizes >= 11) & (sizes <= 25)).sum()), ">25": int((sizes > 25).sum()),
            "largest": int(sizes.max(initial=0)), "median": float(np.median(multi)) if len(multi) else 0.0}
