"""Decode one image file into 2D grey slices in [0, 1]: 8-bit rasters, 16-bit / float PNG and TIFF, DICOM, NIfTI.

:func:`read_slices` is the one entry point; :mod:`tuneae.data` calls it for every file it reads.

**The intensity rule** (one rule for every format that is not plain 8-bit):

* 8-bit rasters (JPEG, 8-bit PNG / TIFF / BMP / GIF / WebP, any Pillow mode of 8 bits per channel) are
  converted by Pillow to one grey channel (``convert("L")``, ITU-R 601-2 luma) and divided by 255: **not windowed**,
  so the 8-bit JPEGs of the MRI data set keep their plain 8-bit values.
* Everything else (16-bit and 32-bit integer or float PNG / TIFF, 16-bit colour PNG / TIFF, DICOM, NIfTI) is
  **percentile-windowed**: the ``window`` percentiles (default 0.5 and 99.5) of the finite values map to 0 and 1,
  linearly, and values outside are clipped; NaN / inf become 0. This is TorchIO's
  ``RescaleIntensity(out_min_max=(0, 1), percentiles=(0.5, 99.5))``, the same percentiles nnU-Net clips to
  (Isensee et al., Nature Methods 2021, "explanation_normalization"). MRI intensities have no absolute scale
  (unlike CT's Hounsfield units), so a window from the image's own histogram is the common practice; the
  percentiles keep a few hot voxels from darkening the whole image. If the two percentiles coincide (an image that
  is mostly one value), the minimum and maximum are used; a constant image becomes all 0.
* One window per **file**: a 2D image, a DICOM file (all its frames together), a multi-page TIFF, or one 3D volume
  of a NIfTI file (a 4D file gets one window per 3D volume, since echoes / b-values / time points differ in scale).
  DICOM values are first put through the modality transform (Rescale Slope / Intercept, per frame for enhanced
  multi-frame files); MONOCHROME1 images are inverted after windowing (so high signal is bright).

**Slices.** A NIfTI volume is reoriented to the closest RAS+ orientation (``nibabel.as_closest_canonical``) and cut
along ``plane`` (axial: the third RAS axis, the default; coronal: the second; sagittal: the first); each slice is
shown the radiological way (anterior / superior at the top, the patient's right on the image's left). DICOM
frames and TIFF pages are returned in stored order (the acquisition plane). A volume's slice is **empty**, and
skipped, when fewer than ``min_foreground`` (default 1%) of its pixels exceed ``FOREGROUND_LEVEL`` (0.05) after
windowing. A file with one slice (any 2D image) always gives that slice; a volume with every slice empty raises
:class:`ImageReadError`.
"""
from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = frozenset({
    ".bmp", ".gif", ".jpeg", ".jpg", ".jpe", ".jfif", ".png", ".tif", ".tiff", ".webp",  # Pillow rasters
    ".dcm", ".dicom",  # DICOM (files without a suffix are found by their 'DICM' magic, see is_image_file)
    ".nii", ".nii.gz",  # NIfTI-1 / NIfTI-2
})
"""Every file ending :func:`read_slices` reads (lower case; ``.nii.gz`` is one ending)."""

PLANES = {"sagittal": 0, "coronal": 1, "axial": 2}
"""Slice planes of NIfTI volumes -> the RAS+ axis they are cut along (after ``nibabel.as_closest_canonical``)."""

DEFAULT_WINDOW = (0.5, 99.5)
"""Percentiles of the intensity window (low, high), in percent."""

DEFAULT_MIN_FOREGROUND = 0.01
"""Fraction of a volume slice's pixels that must exceed ``FOREGROUND_LEVEL`` for the slice to be kept."""

FOREGROUND_LEVEL = 0.05
"""Windowed intensity (on the [0, 1] scale) above which a pixel counts as foreground for the empty-slice rule."""

DECODER_VERSION = "images-v1"
"""Part of a decoded-image cache key: changes whenever :func:`read_slices` changes its output."""

_DICOM_MAGIC_OFFSET = 128  # DICOM Part 10 file: 128-byte preamble, then b"DICM" (as pydicom checks)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_HIGH_BIT_MODES = frozenset({"I", "F", "I;16", "I;16L", "I;16B", "I;16N"})
_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R 601-2, Pillow's convert("L") weights


class ImageReadError(ValueError):
    """A file that cannot be decoded into grey slices; the message names the file and what is wrong."""


# ---------------------------------------------------------------------------------------------------- file types
def image_suffix(path: str | Path) -> str:
    """The file ending of ``path`` that :data:`IMAGE_EXTENSIONS` knows, lower case, or ``""``.

    ``brain.nii.gz`` -> ``".nii.gz"``; ``scan.PNG`` -> ``".png"``; ``IM0001`` -> ``""``.
    """
    name = Path(path).name.lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    suffix = Path(name).suffix
    return suffix if suffix in IMAGE_EXTENSIONS else ""


def has_dicom_magic(head: bytes) -> bool:
    """Whether ``head`` (the first bytes of a file, at least 132) carries the DICOM Part 10 'DICM' marker at byte 128.

    The test pydicom's ``dcmread`` makes (DICOM standard, part 10, section 7.1).
    """
    return head[_DICOM_MAGIC_OFFSET:_DICOM_MAGIC_OFFSET + 4] == b"DICM"


def is_image_file(path: str | Path) -> bool:
    """Whether :func:`read_slices` reads ``path``: a known ending, or a DICOM file without one.

    Files with an unknown ending (DICOM series are often named ``IM0001`` or by UID, ``1.3.12.2.1107...``) are
    opened and their first 132 bytes checked for the 'DICM' marker; a file that cannot be opened is not an image.
    """
    if image_suffix(path):
        return True
    try:
        with open(path, "rb") as f:
            return has_dicom_magic(f.read(_DICOM_MAGIC_OFFSET + 4))
    except OSError:
        return False


def check_read_options(plane: str, window: tuple[float, float], min_foreground: float) -> None:
    """Refuse impossible slicing / windowing settings before any file is read.

    Args:
        plane: one of :data:`PLANES` (``data.slice_plane``).
        window: (low, high) percentiles with 0 <= low < high <= 100 (``data.window_low`` / ``data.window_high``).
        min_foreground: fraction in [0, 1] (``data.min_foreground``).

    Raises:
        ValueError: naming the setting and the value.
    """
    if plane not in PLANES:
        raise ValueError(f"data.slice_plane must be one of {sorted(PLANES)}, got {plane!r}")
    low, high = window
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(f"data.window_low / data.window_high must be percentiles with 0 <= low < high <= 100, "
                         f"got {low!r} / {high!r}")
    if not 0.0 <= min_foreground <= 1.0:
        raise ValueError(f"data.min_foreground must be a fraction in [0, 1], got {min_foreground!r}")


# ---------------------------------------------------------------------------------------------------- intensities
def window_bounds(values: np.ndarray, window: tuple[float, float] = DEFAULT_WINDOW) -> tuple[float, float]:
    """The intensities that the module's percentile rule maps to 0 and 1 (see the module docstring).

    Args:
        values: an array of any shape and real dtype (scanner units, 16-bit counts, floats).
        window: (low, high) percentiles in percent of the finite values.

    Returns:
        (lo, hi) in the values' units; the full finite range when the percentiles coincide (mostly one value, e.g.
        a black background); ``hi == lo`` for a constant input.

    Raises:
        ValueError: no finite value at all.
    """
    x = np.asarray(values, dtype=np.float64)
    finite = x[np.isfinite(x)]
    if finite.size == 0:
        raise ValueError("no finite pixel value")
    lo, hi = np.percentile(finite, window)
    if hi <= lo:
        lo, hi = finite.min(), finite.max()
    return float(lo), float(hi)


def percentile_window(values: np.ndarray, window: tuple[float, float] = DEFAULT_WINDOW) -> np.ndarray:
    """Map intensities to [0, 1] by the module's percentile rule (:func:`window_bounds`), clipped.

    Args:
        values: an array of any shape and real dtype (scanner units, 16-bit counts, floats).
        window: (low, high) percentiles in percent; low maps to 0, high to 1.

    Returns:
        float32 array of the same shape in [0, 1]; non-finite values -> 0; a constant input -> all 0.

    Raises:
        ValueError: no finite value at all.
    """
    x = np.asarray(values, dtype=np.float64)
    lo, hi = window_bounds(x, window)
    if hi <= lo:
        return np.zeros(x.shape, dtype=np.float32)
    out = np.clip((np.where(np.isfinite(x), x, lo) - lo) / (hi - lo), 0.0, 1.0)
    return out.astype(np.float32)


def luma(channels: np.ndarray) -> np.ndarray:
    """(..., C) samples of any depth -> (...) float64 grey: ITU-R 601-2 luma of RGB(A), channel 0 of grey(+alpha)."""
    c = channels.astype(np.float64)
    return c[..., :3] @ _LUMA if c.shape[-1] >= 3 else c[..., 0]


def grey8(channels: np.ndarray) -> np.ndarray:
    """(..., C) uint8 -> (...) float32 in [0, 1], bit-identical to Pillow's ``convert("L")`` / 255.

    Pillow's integer luma: ``(R * 19595 + G * 38470 + B * 7471 + 0x8000) >> 16`` (libImaging/Convert.c).
    """
    c = channels.astype(np.uint32)
    grey = (c[..., 0] * 19595 + c[..., 1] * 38470 + c[..., 2] * 7471 + 0x8000) >> 16 if c.shape[-1] >= 3 else c[..., 0]
    return grey.astype(np.float32) / np.float32(255)


def _stack_slices(stack: np.ndarray, min_foreground: float, what: str) -> list[np.ndarray]:
    """(N, H, W) float32 in [0, 1] -> its non-empty slices (all of them when N == 1).

    Raises:
        ImageReadError: N > 1 and every slice is empty (``what`` names the file).
    """
    if stack.shape[0] == 1:
        return [stack[0]]
    foreground = (stack > FOREGROUND_LEVEL).mean(axis=(1, 2))  # (N,) fraction of bright pixels per slice
    kept = [s for s, f in zip(stack, foreground) if f >= min_foreground]
    if not kept:
        raise ImageReadError(f"{what}: empty volume: none of its {stack.shape[0]} slices has >= {min_foreground:.1%} "
                             f"of its pixels above {FOREGROUND_LEVEL} after windowing")
    return kept


# ---------------------------------------------------------------------------------------------------- formats
def _read_raster(raw: bytes, name: str, window: tuple[float, float], min_foreground: float) -> list[np.ndarray]:
    """PNG / JPEG / TIFF / BMP / GIF / WebP via Pillow; 16-bit colour PNG via pypng, deep or multi-page TIFF via
    tifffile (Pillow keeps only 8 bits of colour samples and the first page)."""
    try:
        opened = Image.open(io.BytesIO(raw))
    except UnidentifiedImageError as exc:
        raise ImageReadError(f"{name}: not an image file Pillow can identify (unknown format or damaged)") from exc
    with opened as img:
        if img.format == "PNG" and is_png16_colour(raw):
            return [percentile_window(luma(png16_samples(raw)), window)]
        if img.format == "TIFF" and _needs_tifffile(img):
            return _tiff_slices(raw, name, window, min_foreground)
        img = ImageOps.exif_transpose(img)
        if img.mode in _HIGH_BIT_MODES:
            return [percentile_window(np.asarray(img), window)]  # (H, W) 16/32-bit int or float
        try:
            grey = img.convert("L")
        except ValueError as exc:
            raise ImageReadError(f"{name}: unsupported image mode {img.mode!r} ({exc})") from exc
        return [np.asarray(grey, dtype=np.uint8).astype(np.float32) / np.float32(255)]  # (H, W), not windowed


def is_png16_colour(raw: bytes) -> bool:
    """A 16-bit PNG of colour type grey+alpha (4), RGB (2) or RGBA (6), from its IHDR chunk (PNG spec 11.2.2)."""
    return raw[:8] == _PNG_SIGNATURE and raw[12:16] == b"IHDR" and raw[24] == 16 and raw[25] in (2, 4, 6)


def png16_samples(raw: bytes) -> np.ndarray:
    """A 16-bit colour PNG -> (H, W, C) uint16, decoded by pypng (``png.Reader.asDirect``)."""
    import png  # pypng: only needed for this rare case

    width, height, rows, info = png.Reader(bytes=raw).asDirect()
    return np.array(list(rows), dtype=np.uint16).reshape(height, width, info["planes"])


def _needs_tifffile(img: Image.Image) -> bool:
    """A TIFF Pillow would read only in part: several pages, or more than 8 bits in a mode Pillow keeps at 8."""
    bits = img.tag_v2.get(258, (8,))  # BitsPerSample, one value per sample
    deep = max(np.atleast_1d(bits)) > 8 and img.mode not in _HIGH_BIT_MODES
    return deep or getattr(img, "n_frames", 1) > 1


def _tiff_slices(raw: bytes, name: str, window: tuple[float, float], min_foreground: float) -> list[np.ndarray]:
    """A deep-colour or multi-page TIFF via tifffile: samples (S) -> grey, every other axis but Y, X -> pages."""
    import tifffile

    with tifffile.TiffFile(io.BytesIO(raw)) as tif:
        series = tif.series[0]
        arr, axes = series.asarray(), series.axes
    if "S" in axes:
        arr = np.moveaxis(arr, axes.index("S"), -1)  # (..., Y, X, S)
        grey = grey8(arr) if arr.dtype == np.uint8 else luma(arr)
    else:
        grey = arr.astype(np.float32) / np.float32(255) if arr.dtype == np.uint8 else arr
    stack = grey.reshape(-1, *grey.shape[-2:])  # (pages, H, W)
    if arr.dtype != np.uint8:
        stack = percentile_window(stack, window)
    return _stack_slices(stack.astype(np.float32), min_foreground, name)


def _dicom_rescale(ds, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Rescale slope and intercept per frame, shapes (F, 1, 1): top level, else the enhanced multi-frame
    functional groups (per-frame before shared; DICOM PS3.3 C.7.6.16.2.9 Pixel Value Transformation)."""
    def pair(item) -> tuple[float, float] | None:
        if item is None or ("RescaleSlope" not in item and "RescaleIntercept" not in item):
            return None
        return float(item.get("RescaleSlope", 1.0) or 1.0), float(item.get("RescaleIntercept", 0.0) or 0.0)

    def transform(groups, i: int):
        if not groups or i >= len(groups):
            return None
        seq = groups[i].get("PixelValueTransformationSequence")
        return pair(seq[0]) if seq else None

    top = pair(ds)
    shared = transform(ds.get("SharedFunctionalGroupsSequence"), 0)
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    pairs = [top or transform(per_frame, i) or shared or (1.0, 0.0) for i in range(n_frames)]
    slope, intercept = np.array(pairs, dtype=np.float64).T
    return slope[:, None, None], intercept[:, None, None]


def _read_dicom(raw: bytes, name: str, window: tuple[float, float], min_foreground: float) -> list[np.ndarray]:
    """A DICOM file (single or multi-frame, grey or colour) via pydicom; one window over all its frames."""
    import pydicom
    from pydicom.pixels import apply_modality_lut

    ds = pydicom.dcmread(io.BytesIO(raw), force=True)
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise ImageReadError(f"{name}: DICOM file without pixel data (e.g. a DICOMDIR, report or presentation state)")
    pixels = ds.pixel_array  # (R, C), (F, R, C), (R, C, S) or (F, R, C, S); colour already RGB
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if n_frames == 1:
        pixels = pixels[None]  # (1, R, C[, S])
    if samples > 1:
        values = luma(pixels)  # colour: no modality transform applies (PS3.3 C.11.1)
    elif "ModalityLUTSequence" in ds:
        values = apply_modality_lut(pixels, ds)
    else:
        slope, intercept = _dicom_rescale(ds, n_frames)
        values = pixels.astype(np.float64) * slope + intercept  # (F, R, C) in modality units
    stack = percentile_window(values, window)
    if ds.get("PhotometricInterpretation") == "MONOCHROME1":  # minimum value shown white: invert
        stack = 1.0 - stack
    return _stack_slices(stack, min_foreground, name)


def nifti_image(raw: bytes, name: str):
    """NIfTI-1 / NIfTI-2 single-file bytes (gzipped or not) -> a nibabel image (``Nifti1Image`` / ``Nifti2Image``).

    Raises:
        ImageReadError: the header size is neither NIfTI-1's (348) nor NIfTI-2's (540); names ``name``.
    """
    import nibabel as nib

    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    sizeof_hdr = {int.from_bytes(raw[:4], order) for order in ("little", "big")}
    if 348 in sizeof_hdr:
        return nib.Nifti1Image.from_bytes(raw)
    if 540 in sizeof_hdr:
        return nib.Nifti2Image.from_bytes(raw)
    raise ImageReadError(f"{name}: not a single-file NIfTI-1 or NIfTI-2 image (header size {raw[:4].hex()})")


def _read_nifti(raw: bytes, name: str, plane: str, window: tuple[float, float],
                min_foreground: float) -> list[np.ndarray]:
    """A NIfTI volume via nibabel: RAS+ reorientation, one window per 3D volume, slices along ``plane``."""
    import nibabel as nib

    img = nifti_image(raw, name)
    if len(img.shape) < 3:  # a 2D NIfTI: give it a third axis so it can be reoriented
        img = img.__class__(np.asanyarray(img.dataobj)[..., None], img.affine, img.header)
    canonical = nib.as_closest_canonical(img)
    data = canonical.get_fdata(dtype=np.float32)  # (X, Y, Z[, T, ...]) RAS+, scl_slope / scl_inter applied
    if data.size == 0:
        raise ImageReadError(f"{name}: empty volume: shape {data.shape}")
    volumes = data.reshape(*data.shape[:3], -1)  # (X, Y, Z, V)
    slices: list[np.ndarray] = []
    for v in range(volumes.shape[3]):
        vol = np.moveaxis(percentile_window(volumes[..., v], window), PLANES[plane], 0)  # (N, A, B)
        # (N, A, B) with A, B in RAS order -> (N, B, A) reversed: anterior / superior up, patient's right on the left
        stack = np.ascontiguousarray(vol[:, ::-1, ::-1].transpose(0, 2, 1))
        slices.extend(_stack_slices(stack, min_foreground, f"{name} (volume {v})"))
    return slices


# ---------------------------------------------------------------------------------------------------- entry point
def file_kind(name: str, raw: bytes) -> str:
    """``nifti``, ``dicom`` or ``raster``: by ending first, else by content (the DICOM and NIfTI magic strings)."""
    suffix = image_suffix(name)
    if suffix in (".nii", ".nii.gz"):
        return "nifti"
    if suffix in (".dcm", ".dicom") or has_dicom_magic(raw):
        return "dicom"
    if raw[344:348] == b"n+1\x00" or raw[4:8] == b"n+2\x00":  # uncompressed NIfTI-1 / NIfTI-2 without its ending
        return "nifti"
    return "raster"


def read_slices(path: str | Path, data: bytes | None = None, *, plane: str = "axial",
                window: tuple[float, float] = DEFAULT_WINDOW,
                min_foreground: float = DEFAULT_MIN_FOREGROUND) -> list[np.ndarray]:
    """Decode one image file into grey 2D slices in [0, 1] (rules in the module docstring).

    Args:
        path: the file; also names it in errors and gives its format by ending (``.nii.gz``, ``.dcm``, ...).
        data: the file's bytes when the caller has read them already (then ``path`` is not opened; it may be any
            label, e.g. a hub row); the format then comes from the ending or the content.
        plane: ``axial`` (default), ``coronal`` or ``sagittal``: how NIfTI volumes are cut (RAS+ axis 2, 1, 0).
        window: (low, high) intensity percentiles of non-8-bit images, in percent.
        min_foreground: a volume's slice is kept when at least this fraction of its pixels exceeds
            :data:`FOREGROUND_LEVEL` after windowing (0 keeps every slice).

    Returns:
        A list of (H, W) float32 arrays in [0, 1]: one for a 2D image, one per non-empty slice for DICOM
        multi-frame files, multi-page TIFFs and NIfTI volumes (4D: volume by volume). H and W vary per file.

    Raises:
        ValueError: ``plane``, ``window`` or ``min_foreground`` impossible (see :func:`check_read_options`).
        ImageReadError: the file cannot be read, is not an image, has an unsupported mode, no pixel data or
            finite values, or is a volume with every slice empty; the message names the file.
    """
    check_read_options(plane, window, min_foreground)
    name = str(path)
    try:
        raw = Path(path).read_bytes() if data is None else data
    except OSError as exc:
        raise ImageReadError(f"{name}: cannot be read: {exc}") from exc
    if not raw:
        raise ImageReadError(f"{name}: empty file (0 bytes)")
    kind = file_kind(name, raw)
    try:
        if kind == "nifti":
            return _read_nifti(raw, name, plane, window, min_foreground)
        if kind == "dicom":
            return _read_dicom(raw, name, window, min_foreground)
        return _read_raster(raw, name, window, min_foreground)
    except (ImageReadError, MemoryError):
        raise
    except Exception as exc:  # each decoder (Pillow, pydicom, nibabel, tifffile, pypng) has its own error types
        what = {"nifti": "a NIfTI image", "dicom": "a DICOM image", "raster": "an image"}[kind]
        raise ImageReadError(f"{name}: cannot be decoded as {what}: {type(exc).__name__}: {exc}") from exc
