"""The manifest: one CSV row per listed file (or slice of a multi-slice file) saying where it went and why.

Columns (``MANIFEST_COLUMNS``):

* ``path``: the file, relative to the data root, ``/``-separated (hub rows: ``<split>[<row>]``; phantoms:
  ``phantom[<i>]``).
* ``slice``: the slice's index within its file (0 for a 2D image); empty for a file that gave no slice.
* ``class``: canonical class name.
* ``group``: the split unit (copy groups joined with scan groups); no group has members in two splits. Empty for a
  file that gave no slice.
* ``split``: ``train``, ``val`` or ``test`` for ``kept`` and ``copy`` rows (a copy carries its group's split),
  else empty.
* ``status``: ``kept`` (in the split's images), ``copy`` (a duplicate of a kept image, left out), ``blank``
  (near-blank: fewer than ``min_signal`` of its pixels above 0.05; left out), ``cross_label`` (its group holds
  two classes: left out), ``cross_split`` (``--split original``: found in an earlier folder split, left out),
  ``unreadable`` (skipped with ``skip_unreadable``), ``not_image`` (no image ending: skipped), ``dicomdir`` (a
  DICOM media index: skipped), ``unlisted`` (not in the manifest a split was read from).
* ``duplicate``: for a copy, how it relates to the kept image (``byte``, ``pixel`` or ``near``, see
  :mod:`tuneae.data.duplicates`); ``""`` otherwise.
* ``copy_of``: the kept image a copy duplicates (``path``, with ``#<slice>`` for a multi-slice file).
* ``sha256``: of the file's bytes, so a split read back from the manifest is checked against the files.
* ``scan``: the scan group (:mod:`tuneae.data.scans`: one file, DICOM patient / study / series, numbered slices
  alike, or a groups CSV's group); every scan lies within one ``group``. Empty for a file that gave no slice.
* ``reason``: why a row is not ``kept``, in words (e.g. ``near copy of train/a/x.png``); empty for kept rows.

Manifests written before ``scan`` and ``reason`` existed are read with both empty.

Setting ``DataConfig.manifest`` to such a file reproduces its split: the ``kept`` rows give each image its split.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from tuneae.data.errors import DataError
from tuneae.data.splits import SPLITS, Splits
from tuneae.files import atomic_write

MANIFEST_COLUMNS = ("path", "slice", "class", "group", "split", "status", "duplicate", "copy_of", "sha256", "scan",
                    "reason")
"""The manifest's header, in order."""

OPTIONAL_COLUMNS = ("scan", "reason")
"""Columns a manifest may lack (written before they existed); read as empty."""

STATUSES = ("kept", "copy", "blank", "cross_label", "cross_split", "unreadable", "not_image", "dicomdir", "unlisted")
"""Values of the ``status`` column."""


def write_manifest(splits: Splits, path: str | Path) -> Path:
    """Write the manifest of ``splits`` as CSV (UTF-8, Python's ``csv`` excel dialect), atomically.

    Args:
        splits: from :func:`tuneae.data.load_splits`.
        path: the destination file, e.g. ``results/<name>/manifest.csv`` (parent folders are created).

    Returns:
        ``path`` as a ``Path``.

    Raises:
        DataError: ``splits`` holds no manifest rows.
        OSError: the file cannot be written.
    """
    if not splits.manifest:
        raise DataError("these splits hold no manifest rows (built by hand, not by load_splits)")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(splits.manifest)
    atomic_write(path, buf.getvalue())
    return Path(path)


def _row(raw: dict, where: str) -> dict:
    """Check and type one CSV row: ``slice``, ``group`` and ``scan`` as int (or None when empty)."""
    row = {k: (raw.get(k) or "") for k in MANIFEST_COLUMNS}
    if not row["path"]:
        raise DataError(f"{where}: empty path")
    if row["status"] not in STATUSES:
        raise DataError(f"{where}: status {row['status']!r} is not one of {list(STATUSES)}")
    if row["split"] not in ("", *SPLITS) or (row["status"] in ("kept", "copy")) != bool(row["split"]):
        raise DataError(f"{where}: split {row['split']!r} with status {row['status']!r} (kept and copy rows need "
                        f"one of {list(SPLITS)}, others none)")
    for key in ("slice", "group", "scan"):
        try:
            row[key] = int(row[key]) if row[key] != "" else None
        except ValueError:
            raise DataError(f"{where}: {key} {row[key]!r} is not an integer") from None
    if row["status"] == "kept" and (row["slice"] is None or not row["class"]):
        raise DataError(f"{where}: a kept row needs a slice and a class")
    return row


def open_csv(path: str | Path, what: str, columns: tuple[str, ...]) -> tuple[Path, csv.DictReader]:
    """Open a user's CSV file (UTF-8, a BOM allowed) and check its header before any row is read.

    Args:
        path: the file (``~`` expanded).
        what: how messages name it, e.g. ``"manifest"`` or ``"groups CSV"``.
        columns: the columns it must have.
    Returns:
        (the expanded path, a ``csv.DictReader`` over its rows).
    Raises:
        DataError: the file is missing, unreadable or not UTF-8, or lacks a column; the message names it.
    """
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {what} {str(path)!r}: {e}") from e
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in columns if c not in (reader.fieldnames or [])]
    if missing:
        raise DataError(f"{what} {str(path)!r} lacks column(s) {missing}; expected {','.join(columns)}")
    return path, reader


def read_manifest(path: str | Path) -> list[dict]:
    """Read and check a manifest written by :func:`write_manifest`.

    Args:
        path: the CSV file.

    Returns:
        One dict per row with the ``MANIFEST_COLUMNS`` keys; ``slice``, ``group`` and ``scan`` as int or None.

    Raises:
        DataError: the file is missing or unreadable, lacks a column, repeats a (path, slice) or has a bad value;
            the message names the file and line.
    """
    path, reader = open_csv(path, "manifest", tuple(c for c in MANIFEST_COLUMNS if c not in OPTIONAL_COLUMNS))
    rows, seen = [], set()
    for line, raw in enumerate(reader, start=2):
        row = _row(raw, f"manifest {str(path)!r} line {line}")
        key = (row["path"], row["slice"])
        if key in seen:
            raise DataError(f"manifest {str(path)!r} line {line}: {row['path']!r} slice {row['slice']} listed twice")
        seen.add(key)
        rows.append(row)
    if not any(r["status"] == "kept" for r in rows):
        raise DataError(f"manifest {str(path)!r} has no kept rows")
    return rows
