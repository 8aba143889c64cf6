"""Images in, uint8 arrays out: sources, preprocessing, decoded-image cache, de-duplication, splits and noise.

Three sources, chosen by ``DataConfig.source``:

* a Hugging Face hub id (default ``benschill/brain-tumor-collection``), read through the hub's parquet export;
* a local folder in ``imagefolder`` layout: ``train/<class>/*.jpg`` and ``test/<class>/*.jpg``;
* ``"phantom"``: synthetic head phantoms (ellipses), no files, no network.

Every image becomes one grey channel, padded to a square and resized to ``image_size`` (see ``_decode_image``).
Decoded images are cached on disk, keyed by content, so each file is decoded once per size.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from tuneae.config import DEFAULT_HUB_ID, DataConfig
from tuneae.files import atomic_write

PREPROCESS_VERSION = "gray-pad-lanczos-v1"
"""Part of the cache key: change it whenever ``_decode_image`` changes its output."""

PHANTOM_CLASSES = ("phantom_lesion", "phantom_no_lesion")
"""Class names of the synthetic source; the prefix keeps them from being mistaken for real data."""

IMAGE_EXTENSIONS = frozenset({".bmp", ".gif", ".jpeg", ".jpg", ".jpe", ".jfif", ".png", ".tif", ".tiff", ".webp"})
"""File endings read as images in a local folder (all are in ``datasets``' imagefolder list)."""

_HUB_CONFIGS = {DEFAULT_HUB_ID: "original"}  # config (folder of the parquet export) of known hub data sets
_SIZE_MULTIPLE = 32  # 2**depth of the seed's models: 5 stride-2 stages


class DataError(ValueError):
    """A data source or data setting that cannot be used; the message names the path, field or value."""


@dataclass(frozen=True, eq=False)
class Splits:
    """De-duplicated train / val / test images of one source at one size.

    Images are ``(N, 1, S, S)`` uint8 in [0, 255] (S = ``image_size``), labels ``(N,)`` int64 indices into
    ``classes``. Within each array, images are ordered by class, then by content hash.

    ``counts`` (JSON-able) says where every file went; ``files_train + files_test == train + val + test +
    duplicates_removed_train + duplicates_removed_test + test_excluded_in_train + unreadable_skipped``:

    * ``files_train`` / ``files_test``: files (or rows) the source lists per split, unreadable ones included.
    * ``unreadable_skipped``: files that could not be decoded, skipped because ``skip_unreadable`` was set.
    * ``duplicates_removed_train``: redundant copies within train (files whose bytes equal an earlier train file).
    * ``test_excluded_in_train``: test files whose bytes equal any train file, every copy counted (removed first).
    * ``duplicates_removed_test``: redundant copies among the remaining test files.
    * ``train`` / ``val`` / ``test``: images kept; val is carved from the de-duplicated train files.
    * ``per_class``: ``{"train"|"val"|"test": {class: n}}``.

    When identical copies carry different labels, the copy of the alphabetically first class is kept.
    """

    train: np.ndarray
    train_labels: np.ndarray
    val: np.ndarray
    val_labels: np.ndarray
    test: np.ndarray
    test_labels: np.ndarray
    classes: tuple[str, ...]
    counts: dict


@dataclass
class _Record:
    """One listed file: which split and class, where it came from, its bytes and their sha256."""

    split: str  # "train" or "test"
    label: str  # canonical class name
    where: str  # file path or hub row, for messages
    data: bytes | None  # None: unreadable before decoding (e.g. not an image file)
    sha: str


def canonical_class(name: str) -> str:
    """Map a class name from any source to its canonical form.

    ``"Glioma Tumor"``, ``"glioma_tumor"`` and ``"glioma"`` give ``"glioma"``; ``"No Tumor"``, ``"no_tumor"`` and
    ``"notumor"`` give ``"no_tumor"``. Other names are lower-cased with runs of non-alphanumerics as ``_``.
    """
    s = re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")
    if s in {"no", "no_tumor", "no_tumour", "notumor", "notumour"}:
        return "no_tumor"
    return re.sub(r"_tumou?r$", "", s)


# ---------------------------------------------------------------------------------------------------- validation
def _source_kind(source: str) -> str:
    if source == "phantom":
        return "phantom"
    if Path(source).expanduser().exists() or source.startswith(("/", ".", "~")) or source.count("/") != 1:
        return "folder"
    return "hub"


def check_source(cfg: DataConfig) -> None:
    """Validate the data settings cheaply, before any decoding, training or Ray start.

    Checks ``image_size``, ``val_fraction`` and ``phantom_count``; for a local folder also its layout, that each
    split holds images, and (unless ``skip_unreadable``) that no file in it has a non-image ending. File contents
    are not read; a hub id is checked only for its form (``owner/name``).

    Raises:
        DataError: naming the bad field and value, or the missing / empty folder or offending file.
    """
    if not isinstance(cfg.image_size, (int, np.integer)) or cfg.image_size <= 0 or cfg.image_size % _SIZE_MULTIPLE:
        raise DataError(f"image_size={cfg.image_size!r}: must be a positive multiple of {_SIZE_MULTIPLE} "
                        f"(the models halve it 5 times), e.g. 64, 128 or 256")
    if not 0.0 < cfg.val_fraction < 1.0:
        raise DataError(f"val_fraction={cfg.val_fraction!r}: must lie strictly between 0 and 1")
    kind = _source_kind(cfg.source)
    if kind == "phantom" and cfg.phantom_count < 10:
        raise DataError(f"phantom_count={cfg.phantom_count!r}: need at least 10 phantoms for train, val and test")
    if kind == "folder":
        _scan_folder(Path(cfg.source).expanduser(), cfg.skip_unreadable)


def _scan_folder(root: Path, skip_unreadable: bool) -> dict[str, list[Path]]:
    """List ``root/{train,test}/<class>/<file>``; hidden files (``.*``) are ignored, as ``datasets`` does.

    Returns:
        ``{"train": [...], "test": [...]}``: every file, sorted; non-image endings only when ``skip_unreadable``.
    """
    layout = "imagefolder layout: train/<class>/<image> and test/<class>/<image>"
    if not root.exists():
        raise DataError(f"data source {str(root)!r}: no such folder. Pass a folder in {layout}, "
                        f"a Hugging Face hub id (owner/name) or 'phantom'")
    if not root.is_dir():
        raise DataError(f"data source {str(root)!r} is not a folder; expected {layout}")
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise DataError(f"data folder {str(root)!r} has no {split}/ folder; expected {layout}")
    found: dict[str, list[Path]] = {}
    for split in ("train", "test"):
        split_dir = root / split
        files = sorted(p for p in split_dir.rglob("*")
                       if p.is_file() and not any(part.startswith(".") for part in p.relative_to(split_dir).parts))
        for p in files:
            if p.parent.parent != split_dir:
                raise DataError(f"{str(p)!r} is not directly inside a class folder of {str(split_dir)!r} ({layout})")
            if p.suffix.lower() not in IMAGE_EXTENSIONS and not skip_unreadable:
                raise DataError(f"{str(p)!r} is not an image file (ending not in {sorted(IMAGE_EXTENSIONS)}); "
                                f"remove it or pass --skip-unreadable")
        if not any(p.suffix.lower() in IMAGE_EXTENSIONS for p in files):
            raise DataError(f"data folder {str(split_dir)!r} holds no image files; expected {layout}")
        found[split] = files
    return found


# ---------------------------------------------------------------------------------------------------- sources
def _hf_cache(cfg: DataConfig) -> str:
    return str(Path(cfg.cache_dir).expanduser() / "hf")  # never the default under $HOME


def _folder_records(cfg: DataConfig) -> list[_Record]:
    """Files of a local imagefolder as records, listed by ``datasets`` and cross-checked against our own scan."""
    import datasets

    root = Path(cfg.source).expanduser().resolve()
    scanned = _scan_folder(root, cfg.skip_unreadable)
    try:
        dsd = datasets.load_dataset("imagefolder", data_dir=str(root), drop_labels=False, cache_dir=_hf_cache(cfg))
    except Exception as e:  # datasets raises many types; the folder itself already passed _scan_folder
        raise DataError(f"datasets could not read the image folder {str(root)!r}: {type(e).__name__}: {e}") from e
    records = []
    for split, files in scanned.items():
        if split not in dsd:
            raise DataError(f"datasets found no {split!r} split in {str(root)!r} (found {sorted(dsd)})")
        ds = dsd[split].cast_column("image", datasets.Image(decode=False))  # raw {"path", "bytes"}: we decode
        names = ds.features["label"].names
        listed = {}
        for ex in ds:
            listed[str(Path(ex["image"]["path"]).resolve())] = names[ex["label"]]
        for p in files:
            if p.suffix.lower() not in IMAGE_EXTENSIONS:  # only reached with skip_unreadable
                records.append(_Record(split, canonical_class(p.parent.name), str(p), None, ""))
                continue
            label = listed.get(str(p.resolve()))
            if label is None:
                raise DataError(f"datasets' imagefolder did not list {str(p)!r}; rename it or remove it")
            data = p.read_bytes()
            records.append(_Record(split, canonical_class(label), str(p), data, _sha(data)))
    return records


def _hub_records(cfg: DataConfig) -> list[_Record]:
    """Rows of a hub data set's parquet export (``refs/convert/parquet``, one folder per config) as records."""
    import datasets

    config = _HUB_CONFIGS.get(cfg.source)
    try:
        # Loading scripts no longer run, so read the parquet files the hub converted them to.
        dsd = datasets.load_dataset(cfg.source, revision="refs/convert/parquet", data_dir=config,
                                    cache_dir=_hf_cache(cfg))
    except Exception as e:  # offline, unknown id, hub changes: all end the same way for the user
        raise DataError(f"could not load Hugging Face dataset {cfg.source!r} (parquet export, config {config!r}): "
                        f"{type(e).__name__}: {e}. Without network access pass --data PATH for a local folder in "
                        f"imagefolder layout (train/<class>/*.jpg, test/<class>/*.jpg) or --data phantom "
                        f"(no local folder named {cfg.source!r} exists)") from e
    if "train" not in dsd or "test" not in dsd:
        raise DataError(f"hub dataset {cfg.source!r} has splits {sorted(dsd)}; need 'train' and 'test'")
    records = []
    for split in ("train", "test"):
        ds = dsd[split].cast_column("image", datasets.Image(decode=False))
        names = ds.features["label"].names  # matched by name: ids differ between sources
        for i, ex in enumerate(ds):
            data = ex["image"]["bytes"]
            where = f"{cfg.source}:{split}[{i}] ({ex['image'].get('path')})"
            records.append(_Record(split, canonical_class(names[ex["label"]]), where, data, _sha(data or b"")))
    return records


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------------- decoding
def _decode_image(data: bytes, size: int) -> np.ndarray:
    """Decode one image file to ``(size, size)`` uint8.

    EXIF rotation applied, ``convert("L")`` to one grey channel, then ``ImageOps.pad``: the longest side is
    scaled to ``size`` with a Lanczos filter, keeping the aspect ratio, and the image is centred on a black (0)
    square. This equals padding to a square first and resizing after, without filtering across the border.
    """
    with Image.open(io.BytesIO(data)) as img:
        img = ImageOps.exif_transpose(img).convert("L")
        img = ImageOps.pad(img, (size, size), method=Image.Resampling.LANCZOS, color=0)
    return np.asarray(img, dtype=np.uint8)  # (S, S)


def _decode_all(records: list[_Record], size: int, skip_unreadable: bool) -> tuple[np.ndarray, np.ndarray]:
    """Decode records (threads: Pillow releases the GIL). Returns images (M, 1, S, S) uint8 and ok (M,) bool."""

    def one(rec: _Record) -> np.ndarray | Exception:
        if rec.data is None:
            return DataError("not an image file")
        try:
            return _decode_image(rec.data, size)
        except Exception as e:
            return e

    images = np.zeros((len(records), 1, size, size), np.uint8)
    ok = np.ones(len(records), bool)
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for i, (rec, out) in enumerate(zip(records, pool.map(one, records))):
            if isinstance(out, Exception):
                if not skip_unreadable:
                    raise DataError(f"cannot read image file {rec.where!r}: {type(out).__name__}: {out}. "
                                    f"Fix or remove it, or pass --skip-unreadable to count and skip it") from out
                ok[i] = False
            else:
                images[i, 0] = out
    return images, ok


def _cache_key(records: list[_Record], size: int) -> str:
    h = hashlib.sha256(f"{PREPROCESS_VERSION}\n{size}\n".encode())
    for line in sorted(f"{r.split}\t{r.label}\t{r.sha}\n" for r in records):
        h.update(line.encode())
    return h.hexdigest()[:32]


def _read_cache(path: Path, shas: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Cached (images, ok) if ``path`` holds a readable cache of exactly these files at this size, else None."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if np.array_equal(z["shas"], shas) and z["images"].shape == (len(shas), 1, size, size):
                return z["images"], z["ok"]
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):  # missing or damaged: decode again
        pass
    return None


def _decoded(records: list[_Record], cfg: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    """Images and ok flags of ``records`` (already in canonical order), from the cache or decoded and cached."""
    shas = np.array([r.sha for r in records], dtype="U64")
    path = Path(cfg.cache_dir).expanduser() / f"{_cache_key(records, cfg.image_size)}.npz"
    cached = _read_cache(path, shas, cfg.image_size)
    if cached is not None:
        images, ok = cached
        bad = [r.where for r, good in zip(records, ok) if not good]
        if bad and not cfg.skip_unreadable:
            raise DataError(f"cannot read image file {bad[0]!r} ({len(bad)} unreadable in all, as cached in "
                            f"{str(path)!r}); fix or remove it, or pass --skip-unreadable to count and skip it")
        return images, ok
    images, ok = _decode_all(records, cfg.image_size, cfg.skip_unreadable)
    buf = io.BytesIO()
    np.savez(buf, images=images, ok=ok, shas=shas)
    atomic_write(path, buf.getvalue())  # a concurrent reader sees the old file or the whole new one
    return images, ok


# ---------------------------------------------------------------------------------------------------- splits
def _holdout(labels: np.ndarray, n_classes: int, fraction: float, seed: int) -> np.ndarray:
    """Stratified random hold-out mask (N,) bool: ``round(fraction * n)`` per class, at least 1 and at most
    n - 1 where a class has n >= 2 items, none where it has one."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(labels), bool)
    for c in range(n_classes):
        idx = np.flatnonzero(labels == c)
        if len(idx) >= 2:
            k = min(max(round(fraction * len(idx)), 1), len(idx) - 1)
            mask[rng.permutation(idx)[:k]] = True
    return mask


def _make_splits(images: np.ndarray, ok: np.ndarray, shas: list[str], labels: np.ndarray, is_test: np.ndarray,
                 classes: tuple[str, ...], cfg: DataConfig, source: str) -> Splits:
    """De-duplicate, exclude test images seen in train, carve val. Inputs aligned: images (M, 1, S, S), rest (M,)."""
    seen_train: set[str] = set()
    keep_train, keep_test = np.zeros(len(shas), bool), np.zeros(len(shas), bool)
    dup_train = dup_test = excluded = 0
    for i in np.flatnonzero(~is_test & ok):
        if shas[i] in seen_train:
            dup_train += 1
        else:
            seen_train.add(shas[i])
            keep_train[i] = True
    seen_test: set[str] = set()
    for i in np.flatnonzero(is_test & ok):
        if shas[i] in seen_train:
            excluded += 1
        elif shas[i] in seen_test:
            dup_test += 1
        else:
            seen_test.add(shas[i])
            keep_test[i] = True
    train_idx, test_idx = np.flatnonzero(keep_train), np.flatnonzero(keep_test)
    is_val = _holdout(labels[train_idx], len(classes), cfg.val_fraction, cfg.seed)
    val_idx, train_idx = train_idx[is_val], train_idx[~is_val]
    for name, idx in (("train", train_idx), ("val", val_idx), ("test", test_idx)):
        if len(idx) == 0:
            raise DataError(f"data source {source!r}: the {name} split is empty after de-duplication; "
                            f"need more distinct images (or another val_fraction={cfg.val_fraction})")
    per_class = {name: {c: int((labels[idx] == k).sum()) for k, c in enumerate(classes)}
                 for name, idx in (("train", train_idx), ("val", val_idx), ("test", test_idx))}
    counts = {"source": source, "files_train": int((~is_test).sum()), "files_test": int(is_test.sum()),
              "duplicates_removed_train": dup_train, "duplicates_removed_test": dup_test,
              "test_excluded_in_train": excluded, "unreadable_skipped": int((~ok).sum()),
              "train": len(train_idx), "val": len(val_idx), "test": len(test_idx), "per_class": per_class}
    return Splits(train=images[train_idx], train_labels=labels[train_idx], val=images[val_idx],
                  val_labels=labels[val_idx], test=images[test_idx], test_labels=labels[test_idx],
                  classes=tuple(classes), counts=counts)


def load_splits(cfg: DataConfig) -> Splits:
    """Load, preprocess (cached), de-duplicate and split the images of ``cfg.source``.

    For a hub id or folder, every file is hashed (sha256 of its bytes); decoded images are cached in
    ``<cfg.cache_dir>/<key>.npz``, key = sha256 of (split, class, hash of every file, ``image_size``,
    ``PREPROCESS_VERSION``), so a later call with the same files and size decodes nothing. ``datasets`` keeps its
    own cache under ``<cfg.cache_dir>/hf``. The phantom source is generated (``phantom_images``), split 80/20
    train/test stratified, and not cached.

    Args:
        cfg: the data settings; ``val_fraction`` and ``seed`` fix the stratified validation split.

    Returns:
        ``Splits`` of (N, 1, S, S) uint8 images and (N,) int64 labels; ``classes`` sorted canonical names.

    Raises:
        DataError: a bad setting or source (see ``check_source``), an unreachable hub, an unreadable image
            (naming its path) without ``skip_unreadable``, or an empty split.
    """
    check_source(cfg)
    kind = _source_kind(cfg.source)
    if kind == "phantom":
        images, labels, classes = phantom_images(cfg.phantom_count, cfg.image_size, cfg.seed)
        is_test = _holdout(labels, len(classes), 0.2, cfg.seed + 1)
        shas = [_sha(im.tobytes()) for im in images]
        return _make_splits(images, np.ones(len(labels), bool), shas, labels, is_test, classes, cfg,
                            "phantom (synthetic head phantoms, not MRI)")
    records = _folder_records(cfg) if kind == "folder" else _hub_records(cfg)
    source = str(Path(cfg.source).expanduser().resolve()) if kind == "folder" else cfg.source
    records.sort(key=lambda r: (r.split, r.label, r.sha, r.where))  # canonical order: the cache rows follow it
    classes = tuple(sorted({r.label for r in records}))
    images, ok = _decoded(records, cfg)
    labels = np.array([classes.index(r.label) for r in records], dtype=np.int64)
    is_test = np.array([r.split == "test" for r in records])
    return _make_splits(images, ok, [r.sha for r in records], labels, is_test, classes, cfg, source)


# ---------------------------------------------------------------------------------------------------- phantoms
def phantom_images(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Synthetic head phantoms: a bright skull ring around a grey brain with darker ventricles and faint
    blobs; half the images also hold a bright "lesion" blob. Clearly not MRI; for smoke runs and tests.

    Args:
        n: number of images.
        size: side in pixels.
        seed: the images depend on it alone (and on n, size).

    Returns:
        images (n, 1, size, size) uint8 in [0, 255], labels (n,) int64 (index into the classes),
        classes ``PHANTOM_CLASSES`` = ("phantom_lesion", "phantom_no_lesion").
    """
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 2).astype(np.int64)  # balanced: 0 lesion, 1 no lesion
    yy, xx = np.mgrid[-1:1:size * 1j, -1:1:size * 1j]  # (S, S) each, in [-1, 1]
    edge = 2.0 / size  # soft edges about one pixel wide

    def ellipse(cx, cy, ax, ay, theta):  # (S, S) in [0, 1], 1 inside
        c, s = np.cos(theta), np.sin(theta)
        u, v = (xx - cx) * c + (yy - cy) * s, -(xx - cx) * s + (yy - cy) * c
        r = np.sqrt((u / ax) ** 2 + (v / ay) ** 2)
        return np.clip((1 - r) * min(ax, ay) / edge + 0.5, 0, 1)

    out = np.empty((n, 1, size, size), np.uint8)
    for i in range(n):
        cx, cy, th = rng.uniform(-0.05, 0.05), rng.uniform(-0.05, 0.05), rng.uniform(-0.3, 0.3)
        ay = rng.uniform(0.8, 0.92)  # half height of the head
        ax = ay * rng.uniform(0.72, 0.85)
        img = rng.uniform(0.8, 1.0) * ellipse(cx, cy, ax, ay, th)  # skull
        brain = ellipse(cx, cy, ax * 0.88, ay * 0.9, th)
        img = img * (1 - brain) + rng.uniform(0.35, 0.5) * brain
        for side in (-1, 1):  # ventricles
            img -= 0.2 * ellipse(cx + side * ax * 0.12, cy - 0.05, ax * 0.08, ay * 0.22, th + side * 0.3)
        for _ in range(3):  # faint blobs as tissue texture
            bx, by = cx + rng.uniform(-0.4, 0.4) * ax, cy + rng.uniform(-0.4, 0.4) * ay
            img += rng.uniform(-0.08, 0.08) * ellipse(bx, by, rng.uniform(0.08, 0.2), rng.uniform(0.08, 0.2),
                                                     rng.uniform(0, 3))
        if labels[i] == 0:  # lesion: bright Gaussian blob inside the brain
            lx, ly = cx + rng.uniform(-0.45, 0.45) * ax, cy + rng.uniform(-0.45, 0.45) * ay
            r2 = (xx - lx) ** 2 + (yy - ly) ** 2
            img += rng.uniform(0.35, 0.55) * np.exp(-r2 / (2 * rng.uniform(0.05, 0.1) ** 2)) * brain
        out[i, 0] = np.round(np.clip(img, 0, 1) * 255)
    return out, labels, PHANTOM_CLASSES


# ---------------------------------------------------------------------------------------------------- tensors
def to_float(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 images (B, 1, S, S) in [0, 255] -> float32 in [0, 1], same shape and device.

    Raises:
        TypeError: x is not uint8 (a float input would silently be scaled twice).
    """
    t = torch.as_tensor(x)
    if t.dtype != torch.uint8:
        raise TypeError(f"to_float expects uint8 images, got {t.dtype}")
    return t.float().div_(255.0)


def add_gaussian_noise(x: torch.Tensor, sigma: float | torch.Tensor,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """Add zero-mean Gaussian noise and clip to [0, 1].

    Args:
        x: images (B, ...) in [0, 1], float.
        sigma: standard deviation on the [0, 1] scale (0.1 = 10% of full range): a scalar, or (B,) per image.
        generator: seeds the noise; may live on another device than x (the noise is moved).

    Returns:
        x + sigma * N(0, 1), clipped to [0, 1]; same shape, dtype and device as x. sigma 0 returns x unchanged.

    Raises:
        ValueError: sigma is negative or its shape is neither () nor (B,).
    """
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if sigma.dim() == 1 and sigma.shape[0] == x.shape[0]:
        sigma = sigma.view(-1, *([1] * (x.dim() - 1)))  # (B,) -> (B, 1, 1, 1)
    elif sigma.dim() != 0:
        raise ValueError(f"sigma must be a scalar or have shape ({x.shape[0]},), got {tuple(sigma.shape)}")
    if bool((sigma < 0).any()):
        raise ValueError(f"sigma must be >= 0, got min {sigma.min().item()}")
    gen_device = generator.device if generator is not None else x.device
    noise = torch.randn(x.shape, generator=generator, device=gen_device, dtype=x.dtype).to(x.device)
    return (x + sigma * noise).clamp_(0.0, 1.0)


__all__ = [
    "IMAGE_EXTENSIONS",
    "PHANTOM_CLASSES",
    "PREPROCESS_VERSION",
    "DataError",
    "Splits",
    "add_gaussian_noise",
    "canonical_class",
    "check_source",
    "load_splits",
    "phantom_images",
    "to_float",
]
