"""Where images come from: the three local folder layouts (read by our own directory walk) and the hub.

Local folders are walked with :func:`os.walk`, never globbed, so names holding ``[``, ``]``, ``*`` or spaces are
read as they are. Hidden files and folders (``.*``) are ignored. Image files are those
:func:`tuneae.images.is_image_file` reads (an image ending, or a DICOM file without one); other files (a
``metadata.csv``, a ``README.md``, ``SHA256SUMS``) are listed as skipped and counted, never decoded, never an error.
A ``DICOMDIR`` (the index of DICOM media, a DICOM file without pixels) is listed and skipped the same way; a folder
with one at its root is read as DICOM media: every file below, one class, grouped by the files' own patient, study
or series IDs (:mod:`tuneae.data.scans`).
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from tuneae.config import DEFAULT_HUB_ID, DataConfig
from tuneae.data.errors import DataError
from tuneae.images import IMAGE_EXTENSIONS, is_image_file

SPLIT_FOLDERS = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                 "test": "test", "testing": "test"}
"""Folder names (lower-cased) that mark the split layout, and the split each stands for."""

LAYOUTS = ("split folders: <root>/train/<class>/<image> and <root>/test/<class>/<image> (val/ optional)",
           "class folders without a split: <root>/<class>/<image>",
           "one flat folder of unlabeled images: <root>/<image> (one class, 'unlabeled')",
           "DICOM media: <root>/DICOMDIR and the DICOM files below it (one class, 'unlabeled')")
"""The folder layouts a local source may have; images may sit in subfolders below a class folder."""

DICOMDIR = "DICOMDIR"
"""The file name (any case) of a DICOM media index."""

UNLABELED = "unlabeled"
"""Class name of the images of a flat folder."""

_HUB_CONFIGS = {DEFAULT_HUB_ID: "original"}  # config (folder of the parquet export) of known hub data sets


@dataclass(frozen=True)
class Record:
    """One listed file (or hub row): where it is, its label and folder split, and the sha256 of its bytes."""

    rel: str
    """Path relative to the data root with ``/`` separators (hub rows: ``<split>[<row>]``)."""
    label: str
    """Canonical class name (see :func:`canonical_class`)."""
    folder_split: str
    """``train``, ``val`` or ``test`` when the source has a split of its own, else ``""``."""
    sha: str
    """sha256 of the file's bytes (hex)."""
    path: Path | None = None
    """The file on disk; None for hub rows."""
    data: bytes | None = None
    """The file's bytes for hub rows (files on disk are read when decoded)."""
    image: bool = True
    """False for a file without an image ending: listed, counted and skipped."""


@dataclass(frozen=True)
class Listing:
    """The records of one source and how it is laid out."""

    records: list[Record]
    layout: str
    """``split folders``, ``class folders``, ``flat folder``, ``DICOM media`` or ``hub``."""


def canonical_class(name: str) -> str:
    """Map a class name from any source to its canonical form.

    ``"Glioma Tumor"``, ``"glioma_tumor"`` and ``"glioma"`` give ``"glioma"``; ``"No Tumor"``, ``"no_tumor"`` and
    ``"notumor"`` give ``"no_tumor"``. Other names are lower-cased with runs of non-alphanumerics as ``_``.
    """
    s = re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")
    if s in {"no", "no_tumor", "no_tumour", "notumor", "notumour"}:
        return "no_tumor"
    return re.sub(r"_tumou?r$", "", s)


def is_dicomdir(path: str | Path) -> bool:
    """Whether ``path`` names a DICOM media index (file name ``DICOMDIR``, any case)."""
    return Path(path).name.upper() == DICOMDIR


def _is_image(path: Path) -> bool:
    """An image file :func:`tuneae.images.read_slices` reads, a DICOMDIR excluded."""
    return not is_dicomdir(path) and is_image_file(path)


def source_kind(source: str) -> str:
    """``"phantom"``, ``"folder"`` (an existing path, or one written as a path) or ``"hub"`` (``owner/name``)."""
    if source == "phantom":
        return "phantom"
    if Path(source).expanduser().exists() or source.startswith(("/", ".", "~")) or source.count("/") != 1:
        return "folder"
    return "hub"


# ---------------------------------------------------------------------------------------------------- folders
def _walk(top: Path) -> list[Path]:
    """Every non-hidden file below ``top``, sorted; no glob patterns, so ``[`` and ``]`` in names are plain text."""

    def fail(err: OSError) -> None:
        raise DataError(f"cannot read folder {err.filename!r}: {err.strerror}")

    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(top, onerror=fail):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out += [Path(dirpath, f) for f in sorted(filenames) if not f.startswith(".")]
    return out


def _layout_error(root: Path, why: str) -> DataError:
    return DataError(f"data folder {str(root)!r} {why}; expected one of these layouts: " + "; ".join(LAYOUTS))


def scan_folder(root: Path) -> tuple[str, list[tuple[Path, str, str]]]:
    """List a local folder in one of the three ``LAYOUTS``; only files without an image ending are opened (for the
    DICOM marker, 132 bytes).

    Args:
        root: the data root (``~`` already expanded).

    Returns:
        ``(layout, entries)``: layout ``"split folders"``, ``"class folders"``, ``"flat folder"`` or
        ``"DICOM media"`` (a ``DICOMDIR`` at the root: every file below, unlabeled); entries
        ``(path, class name as found, folder split or "")`` for every non-hidden file, sorted by path, image or
        not (non-image files are skipped later, and counted).

    Raises:
        DataError: the folder is missing or not a folder, or matches none of the layouts (the message lists them).
    """
    if not root.exists():
        raise DataError(f"data source {str(root)!r}: no such folder. Pass a local folder (" + "; ".join(LAYOUTS)
                        + "), a Hugging Face hub id (owner/name) or 'phantom'")
    if not root.is_dir():
        raise _layout_error(root, "is not a folder")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    top_files = sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith("."))
    top_images = [p for p in top_files if _is_image(p)]
    walks = {d: _walk(d) for d in subdirs}
    with_images = {d: files for d, files in walks.items() if any(_is_image(f) for f in files)}
    entries = [(p, UNLABELED, "") for p in top_files]
    if any(is_dicomdir(p) for p in top_files):
        entries += [(p, UNLABELED, "") for d in subdirs for p in walks[d]]
        if not top_images and not with_images:
            raise _layout_error(root, "holds a DICOMDIR but no DICOM image files")
        return "DICOM media", sorted(entries)
    split_dirs = [d for d in subdirs if d.name.lower() in SPLIT_FOLDERS]
    if split_dirs:
        others = [d.name for d in with_images if d not in split_dirs]
        if others or top_images:
            raise _layout_error(root, f"mixes split folders ({', '.join(d.name for d in split_dirs)}) with "
                                      f"{'other image folders ' + str(others) if others else 'images in the root'}")
        for d in split_dirs:
            entries += _split_entries(root, d, walks[d])
        return "split folders", sorted(entries)
    if with_images and top_images:
        raise _layout_error(root, f"holds images both directly ({top_images[0].name!r}) and in subfolders "
                                  f"({next(iter(with_images)).name!r})")
    if with_images:
        for d in subdirs:
            entries += [(p, d.name if d in with_images else UNLABELED, "") for p in walks[d]]
        return "class folders", sorted(entries)
    if top_images:
        for d in subdirs:
            entries += [(p, UNLABELED, "") for p in walks[d]]
        return "flat folder", sorted(entries)
    raise _layout_error(root, f"holds no image files (endings {sorted(IMAGE_EXTENSIONS)})")


def _split_entries(root: Path, split_dir: Path, files: list[Path]) -> list[tuple[Path, str, str]]:
    """Entries of one split folder: ``<split>/<class>/**/<file>``; images directly in it have no class."""
    split = SPLIT_FOLDERS[split_dir.name.lower()]
    out = []
    for p in files:
        rel = p.relative_to(split_dir)
        if len(rel.parts) == 1:
            if _is_image(p):
                raise _layout_error(root, f"has image {str(p)!r} directly in a split folder, outside any class "
                                          f"folder")
            out.append((p, UNLABELED, split))
        else:
            out.append((p, rel.parts[0], split))
    return out


def _file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def folder_listing(root: Path) -> Listing:
    """Records of every file of a local folder (hashed, not decoded); see :func:`scan_folder`.

    Raises:
        DataError: as :func:`scan_folder`, or a file that cannot be read (naming it).
    """
    layout, entries = scan_folder(root)
    records = []
    for path, cls, split in entries:
        rel = path.relative_to(root).as_posix()
        try:
            sha = _file_sha(path)
        except OSError as e:
            raise DataError(f"cannot read file {str(path)!r}: {e.strerror or e}") from e
        records.append(Record(rel=rel, label=canonical_class(cls), folder_split=split, sha=sha, path=path,
                              image=_is_image(path)))
    return Listing(records, layout)


# ---------------------------------------------------------------------------------------------------- hub
def hub_listing(cfg: DataConfig) -> Listing:
    """Rows of a hub data set's parquet export (``refs/convert/parquet``, one folder per config) as records.

    Labels are matched by name (:func:`canonical_class`), never by id: ids differ between copies of a data set.

    Raises:
        DataError: the hub cannot be reached or the data set lacks a ``train`` and a ``test`` split.
    """
    import datasets

    config = _HUB_CONFIGS.get(cfg.source)
    try:
        # Loading scripts no longer run, so read the parquet files the hub converted them to.
        dsd = datasets.load_dataset(cfg.source, revision="refs/convert/parquet", data_dir=config,
                                    cache_dir=str(Path(cfg.cache_dir).expanduser() / "hf"))
    except Exception as e:  # offline, unknown id, hub changes: all end the same way for the user
        raise DataError(f"could not load Hugging Face dataset {cfg.source!r} (parquet export, config {config!r}): "
                        f"{type(e).__name__}: {e}. Without network access pass --data PATH for a local folder ("
                        + "; ".join(LAYOUTS) + f") or --data phantom (no local folder named {cfg.source!r} "
                        f"exists)") from e
    if "train" not in dsd or "test" not in dsd:
        raise DataError(f"hub dataset {cfg.source!r} has splits {sorted(dsd)}; need 'train' and 'test'")
    records = []
    for split in sorted(dsd):
        ds = dsd[split].cast_column("image", datasets.Image(decode=False))  # raw {"path", "bytes"}: we decode
        names = ds.features["label"].names
        for i, ex in enumerate(ds):
            data = ex["image"]["bytes"] or b""
            records.append(Record(rel=f"{split}[{i}]", label=canonical_class(names[ex["label"]]),
                                  folder_split=SPLIT_FOLDERS.get(split, split), sha=hashlib.sha256(data).hexdigest(),
                                  data=data))
    return Listing(records, "hub")
