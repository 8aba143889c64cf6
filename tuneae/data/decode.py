"""Files to grey slices to model-size uint8 images, with content fingerprints, cached on disk.

The decode step takes one reader, ``(path, data=None) -> list of 2D float arrays in [0, 1]`` (one per slice: a
volume gives many, a photo one): :func:`tuneae.images.read_slices` with the ``DataConfig``'s slice plane, intensity
window and empty-slice rule (8-bit files: ``convert("L")`` / 255; 16-bit, float, DICOM, NIfTI: a percentile
window). Every slice then gets

* its model input: padded to a square with black and resized to ``image_size`` (``ImageOps.pad``, Lanczos, in
  float), then rounded to uint8;
* a pixel fingerprint: sha256 of its shape and its pixels rounded to 16 bits, equal for byte copies, lossless
  re-encodes (PNG of a JPEG's pixels) and mode changes (an RGB file whose channels are equal vs its L copy);
* a perceptual hash: ``imagehash.dhash`` with ``hash_size=16`` (256 bits: the grey slice resized to 17x16, each
  bit says whether a pixel is brighter than its left neighbour; Krawetz, "Kind of Like That", 2013), close for
  resized and recompressed copies (see :mod:`tuneae.data.duplicates`).

Decoded slices are cached in ``<cache_dir>/<key>.npz``; the key covers every file's sha256, the image size, the
reader (``tuneae.images.DECODER_VERSION`` and its settings) and ``PREPROCESS_VERSION``, so each file is decoded
once per size and settings.
"""
from __future__ import annotations

import hashlib
import io
import os
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from functools import partial
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image, ImageOps

from tuneae import images
from tuneae.config import DataConfig
from tuneae.data.sources import Record
from tuneae.files import atomic_write

Reader = Callable[..., list[np.ndarray]]
"""``(path, data=None) -> slices``: decodes one file (or its bytes, named by ``path``) to 2D float arrays in
[0, 1], one per slice."""

PREPROCESS_VERSION = "float-pad-lanczos-u8+pixel16+dhash16-v2"
"""Part of the cache key: change it whenever the decoded output (images or fingerprints) changes."""

HASH_SIZE = 16
"""``imagehash.dhash`` hash size: 16 gives 16 x 16 = 256 bits."""


def current_reader(cfg: DataConfig) -> tuple[Reader, str]:
    """The reader of ``cfg``'s files and its cache-key id (looked up at call time, so tests can replace it).

    Returns:
        ``(reader, id)``: :func:`tuneae.images.read_slices` bound to ``cfg.slice_plane``, the window
        (``cfg.window_low``, ``cfg.window_high``) and ``cfg.min_foreground``; the id names them and
        ``tuneae.images.DECODER_VERSION``.
    """
    window = (cfg.window_low, cfg.window_high)
    reader = partial(images.read_slices, plane=cfg.slice_plane, window=window, min_foreground=cfg.min_foreground)
    return reader, f"{images.DECODER_VERSION}|{cfg.slice_plane}|{window}|{cfg.min_foreground}"


@dataclass(frozen=True)
class Decoded:
    """The slices of a set of distinct files (M slices of U files), aligned arrays."""

    shas: np.ndarray
    """(U,) str: sha256 of each distinct file, sorted."""
    error: np.ndarray
    """(U,) str: why the file could not be decoded, ``""`` if it was."""
    owner: np.ndarray
    """(M,) int64: index of each slice's file in ``shas``."""
    slice: np.ndarray
    """(M,) int64: the slice's index within its file."""
    images: np.ndarray
    """(M, 1, S, S) uint8 in [0, 255]: the model input."""
    pixel_hash: np.ndarray
    """(M,) str: sha256 (first 32 hex digits) of the slice's shape and 16-bit pixels."""
    dhash: np.ndarray
    """(M, 32) uint8: the 256-bit difference hash, ``np.packbits`` of the (16, 16) bits."""
    hw: np.ndarray
    """(M, 2) int64: height and width of the slice before resizing, in pixels."""
    informative: np.ndarray
    """(M,) bool: False for a constant slice, whose difference hash is all zeros and matches nothing."""


def fingerprint(x: np.ndarray, size: int) -> tuple[np.ndarray, str, np.ndarray, bool]:
    """Model input and fingerprints of one slice.

    Args:
        x: (H, W) float slice in [0, 1].
        size: side of the model input in pixels.

    Returns:
        ``(image (S, S) uint8, pixel hash (32 hex digits), dhash (32,) uint8, informative)``.
    """
    x = np.clip(np.asarray(x, dtype=np.float32), 0.0, 1.0)  # (H, W)
    q16 = np.round(x * 65535).astype("<u2")
    pixel = hashlib.sha256(np.array(x.shape, "<i8").tobytes() + q16.tobytes()).hexdigest()[:32]
    grey = Image.fromarray(np.round(x * 255).astype(np.uint8), "L")
    bits = imagehash.dhash(grey, hash_size=HASH_SIZE).hash  # (16, 16) bool
    padded = ImageOps.pad(Image.fromarray(x, "F"), (size, size), method=Image.Resampling.LANCZOS, color=0)
    image = np.round(np.clip(np.asarray(padded), 0.0, 1.0) * 255).astype(np.uint8)  # (S, S)
    return image, pixel, np.packbits(bits.ravel()), bool(x.max() > x.min())


def _check_slices(slices: object) -> list[np.ndarray]:
    if not isinstance(slices, list) or not slices:
        raise ValueError("the reader returned no slices")
    for k, s in enumerate(slices):
        if not isinstance(s, np.ndarray) or s.ndim != 2 or min(s.shape) < 1 or not np.issubdtype(s.dtype, np.floating):
            raise ValueError(f"slice {k} is not a 2D float array (got {type(s).__name__} "
                             f"{getattr(s, 'shape', '')} {getattr(s, 'dtype', '')})")
        if not np.isfinite(s).all() or s.min() < 0 or s.max() > 1:
            raise ValueError(f"slice {k} has values outside [0, 1] (min {np.nanmin(s)}, max {np.nanmax(s)})")
    return slices


def _read(rec: Record, reader: Reader) -> list[np.ndarray]:
    if rec.path is not None:
        return _check_slices(reader(rec.path))
    return _check_slices(reader(Path(rec.rel), rec.data or b""))  # a hub row: its bytes, named by its row


def _decode_one(rec: Record, reader: Reader, size: int) -> list[tuple] | Exception:
    try:
        return [(k, *fingerprint(s, size), s.shape) for k, s in enumerate(_read(rec, reader))]
    except Exception as e:  # any failure of a reader on one file is that file's failure: reported by the caller
        return e


def _decode(unique: list[Record], size: int, reader: Reader) -> Decoded:
    """Decode distinct files in threads (Pillow and numpy release the GIL)."""
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        results = list(pool.map(lambda r: _decode_one(r, reader, size), unique))
    error = np.array([f"{type(r).__name__}: {r}" if isinstance(r, Exception) else "" for r in results], dtype=str)
    rows = [(u, *row) for u, r in enumerate(results) if not isinstance(r, Exception) for row in r]
    m = len(rows)
    return Decoded(
        shas=np.array([r.sha for r in unique], dtype="U64"), error=error.astype("U500"),
        owner=np.array([r[0] for r in rows], dtype=np.int64), slice=np.array([r[1] for r in rows], dtype=np.int64),
        images=np.stack([r[2] for r in rows])[:, None] if m else np.zeros((0, 1, size, size), np.uint8),
        pixel_hash=np.array([r[3] for r in rows], dtype="U32"),
        dhash=np.stack([r[4] for r in rows]) if m else np.zeros((0, HASH_SIZE * HASH_SIZE // 8), np.uint8),
        hw=np.array([r[6] for r in rows], dtype=np.int64).reshape(m, 2),
        informative=np.array([r[5] for r in rows], dtype=bool))


def _cache_path(cache_dir: str, shas: list[str], size: int, reader_id: str) -> Path:
    h = hashlib.sha256(f"{PREPROCESS_VERSION}\n{reader_id}\n{size}\n".encode())
    for s in shas:
        h.update(s.encode())
    return Path(cache_dir).expanduser() / f"{h.hexdigest()[:32]}.npz"


def _read_cache(path: Path, shas: list[str], size: int) -> Decoded | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            out = Decoded(**{f.name: z[f.name] for f in fields(Decoded)})
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):  # missing or damaged: decode again
        return None
    if list(out.shas) != shas or out.images.shape[1:] != (1, size, size):
        return None
    return out


def decode_files(records: list[Record], cfg: DataConfig) -> tuple[Decoded, bool]:
    """Slices and fingerprints of every distinct image file among ``records``, from the cache or decoded.

    Byte-identical files are decoded once. A file that cannot be decoded gets an ``error`` and no slices; the
    caller decides whether that is fatal.

    Args:
        records: files to decode (records with ``image=False`` are ignored).
        cfg: ``image_size`` (side of the model input in pixels), ``cache_dir`` (created if missing; written
            atomically) and the reader's settings (see :func:`current_reader`).

    Returns:
        ``(decoded, from_cache)``.

    Raises:
        OSError: the cache folder cannot be written.
    """
    reader, reader_id = current_reader(cfg)
    size = cfg.image_size
    unique = sorted({r.sha: r for r in reversed(records) if r.image}.values(), key=lambda r: r.sha)
    shas = [r.sha for r in unique]
    path = _cache_path(cfg.cache_dir, shas, size, reader_id)
    cached = _read_cache(path, shas, size)
    if cached is not None:
        return cached, True
    decoded = _decode(unique, size, reader)
    buf = io.BytesIO()
    np.savez(buf, **{f.name: getattr(decoded, f.name) for f in fields(Decoded)})
    atomic_write(path, buf.getvalue())  # a concurrent reader sees the old file or the whole new one
    return decoded, False
