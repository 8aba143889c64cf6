"""Read an image file into slices on the model's [0, 1] scale, and write denoised slices back in the file's own format.

Every reader returns a :class:`Decoded`: the file's 2D slices (N, H, W) float32 on the [0, 1] scale the models were
trained on, how each group of slices got there (a :class:`Window`, linear and so exactly invertible), and an
``encode`` function that turns denoised slices on that scale back into the bytes of a file of the input's format,
pixel grid, dtype and metadata.

The intensity rule is :mod:`tuneae.images`'s (the rule of training), with one difference: values outside the
window are **not clipped** (a clip cannot be undone), so the model input may leave [0, 1] a little
(the brightest and darkest 0.5% of a windowed image):

* 8-bit grey (JPEG, 8-bit PNG / TIFF / BMP ...): ``v / 255``, as in training.
* everything else (16-bit and float PNG / TIFF, DICOM, NIfTI): the ``window`` percentiles (default 0.5, 99.5) map
  to 0 and 1; one window per file, per 3-D volume of a NIfTI file. DICOM is windowed on its stored values: the
  modality transform (slope, intercept) is linear, so the percentile window of the modality values gives the same
  [0, 1] image; a negative slope and MONOCHROME1 are inverted so that high signal is bright.

Colour rasters are converted to grey (ITU-R 601-2 luma) with a warning and written back grey; colour DICOM is
refused (rewriting its pixel module as grey would change what the series is). Rasters keep their stored pixel grid
(no EXIF rotation), so the output lies on the input's grid.
"""
from __future__ import annotations

import copy
import gzip
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from tuneae import images

PLANES = images.PLANES
"""Slice planes of NIfTI volumes -> RAS+ axis (as in training)."""


class UnreadableError(ValueError):
    """A file that cannot be denoised: unreadable, unsupported, or not an image; the message names the file."""


class NotAnImageError(UnreadableError):
    """A DICOM file without pixel data (a DICOMDIR, a report): skipped quietly inside an input folder."""


@dataclass(frozen=True)
class Window:
    """A linear intensity map to the model's scale: ``x = (v - lo) / (hi - lo)``, then ``1 - x`` when ``invert``.

    ``lo`` and ``hi`` are in the file's stored units (grey levels, scanner units); not clipped, so exactly invertible.
    """

    lo: float
    hi: float
    invert: bool = False
    rule: str = "percentile"
    """``"8bit"`` (``v / 255``, as training decodes 8-bit files) or ``"percentile"`` (the window percentiles)."""

    def forward(self, v: np.ndarray) -> np.ndarray:
        """Stored values (any shape) -> float32 on the [0, 1] scale (not clipped; non-finite -> 0)."""
        x = (np.asarray(v, dtype=np.float64) - self.lo) / (self.hi - self.lo)
        x = np.where(np.isfinite(x), x, 0.0)
        return (1.0 - x if self.invert else x).astype(np.float32)

    def inverse(self, x: np.ndarray) -> np.ndarray:
        """Values on the [0, 1] scale -> float64 stored units (the exact inverse of :meth:`forward`)."""
        x = np.asarray(x, dtype=np.float64)
        return (1.0 - x if self.invert else x) * (self.hi - self.lo) + self.lo

    def to_json(self) -> dict:
        return {"rule": self.rule, "lo": self.lo, "hi": self.hi, "invert": self.invert}


EIGHT_BIT = Window(0.0, 255.0, rule="8bit")


def percentile_window(values: np.ndarray, window: tuple[float, float], invert: bool = False) -> Window:
    """The window of :func:`tuneae.images.percentile_window` (:func:`tuneae.images.window_bounds`), not applied.

    Args:
        values: stored intensities, any shape and real dtype.
        window: (low, high) percentiles in percent.
        invert: map high values to 0 (MONOCHROME1, negative rescale slope).
    Returns:
        The window; a constant image gets ``hi = lo + 1`` (it maps to 0).
    Raises:
        UnreadableError: no finite value.
    """
    try:
        lo, hi = images.window_bounds(values, window)
    except ValueError as exc:
        raise UnreadableError(str(exc)) from exc
    return Window(lo, hi if hi > lo else lo + 1.0, invert)


@dataclass(frozen=True)
class OutputInfo:
    """What an encoder needs besides the pixels: the model's name and the run's DICOM series UIDs."""

    model_label: str
    """e.g. ``"dunet (denoiser), checkpoint runs/x/finalfit/dunet/seed-1"``; recorded in DICOM."""
    kind: str
    """The model kind (``dunet``, ``dae``, ``ae`` ...)."""
    series_uids: dict[str, str] = field(default_factory=dict)
    """Original SeriesInstanceUID -> the new one (filled as files are written: one new UID per input series)."""
    jpeg_quality: int = 95


Encoder = Callable[[np.ndarray, OutputInfo], bytes]
"""``(denoised (N, H, W) float on the [0, 1] scale, info) -> the output file's bytes``."""


@dataclass
class Decoded:
    """One input file decoded for denoising."""

    path: Path
    format: str
    """``png``, ``jpeg``, ``tiff``, ``bmp`` ..., ``dicom`` or ``nifti``."""
    slices: np.ndarray
    """(N, H, W) float32 on the [0, 1] scale (not clipped): the model's input."""
    shape: tuple[int, ...]
    """The stored data's shape (e.g. (X, Y, Z, T) for NIfTI, (frames, rows, cols) for DICOM)."""
    dtype: str
    """The stored data's numpy dtype (the output keeps it)."""
    windows: list[Window]
    """One per file, or one per 3-D volume (NIfTI)."""
    encode: Encoder
    warnings: list[str] = field(default_factory=list)
    series_uid: str = ""
    """DICOM SeriesInstanceUID (empty for other formats)."""


# ------------------------------------------------------------------------------------------------ helpers
def _to_dtype(values: np.ndarray, dtype: np.dtype, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """Float values -> ``dtype``: integers rounded and clipped to the dtype's range (or to [lo, hi]); floats cast."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        lo = info.min if lo is None else lo
        hi = info.max if hi is None else hi
        return np.clip(np.round(values), lo, hi).astype(dtype)
    return values.astype(dtype)


def _apply_windows(stack: np.ndarray, window: Window) -> np.ndarray:
    return window.forward(stack).reshape(-1, *stack.shape[-2:])


# ------------------------------------------------------------------------------------------------ rasters
_GREY_MODES = frozenset({"L", "1", "I;16", "I;16L", "I;16B", "I;16N", "I", "F"})
_PIL_FORMATS = {"PNG": "png", "JPEG": "jpeg", "BMP": "bmp", "GIF": "gif", "WEBP": "webp", "TIFF": "tiff"}


def _colour_to_grey(img: Image.Image, name: str, warnings: list[str]) -> tuple[np.ndarray, bool]:
    """An 8-bit colour / palette / alpha image -> ((H, W) uint8 grey (Pillow's ``convert("L")``), whether every
    pixel was grey already); a warning when it was not, or when an alpha channel is dropped."""
    rgb = np.asarray(img.convert("RGB"))
    grey = bool(np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]))
    if not grey:
        warnings.append(f"{name}: colour image (mode {img.mode}) converted to grey (ITU-R 601-2 luma); "
                        f"the output is grey")
    elif "A" in img.mode or "transparency" in img.info:
        warnings.append(f"{name}: alpha channel dropped; the output is grey without alpha")
    return np.asarray(img.convert("L"), dtype=np.uint8), grey


def _read_raster(path: Path, raw: bytes, window: tuple[float, float]) -> Decoded:
    """PNG / JPEG / BMP / GIF / WebP via Pillow (first frame); TIFF goes to :func:`_read_tiff`."""
    try:
        img = Image.open(io.BytesIO(raw))
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UnreadableError(f"{path}: not an image file Pillow can read ({type(exc).__name__}: {exc})") from exc
    fmt = _PIL_FORMATS.get(img.format or "", "")
    if fmt == "tiff":
        return _read_tiff(path, raw, window)
    if not fmt:
        raise UnreadableError(f"{path}: unsupported image format {img.format!r}")
    warnings: list[str] = []
    out_mode = ""  # a grey image stored as RGB (many MRI JPEGs) is written back as RGB
    if getattr(img, "n_frames", 1) > 1:
        warnings.append(f"{path}: animated {img.format}: only its first frame is denoised and written")
    if fmt == "png" and images.is_png16_colour(raw):
        v = np.rint(images.luma(images.png16_samples(raw))).astype(np.uint16)  # (H, W) 16-bit grey
        warnings.append(f"{path}: 16-bit colour PNG converted to 16-bit grey (ITU-R 601-2 luma); the output is grey")
    elif img.mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        v = np.asarray(img).astype(np.uint16)
    elif img.mode in ("I", "F"):
        v = np.asarray(img)
        if img.mode == "I" and fmt == "png":  # Pillow opens some 16-bit grey PNGs as 32-bit "I"
            v = v.astype(np.uint16) if v.min() >= 0 and v.max() <= 65535 else v
    elif img.mode == "L":
        v = np.asarray(img, dtype=np.uint8)
    else:
        try:
            v, grey = _colour_to_grey(img, str(path), warnings)
            out_mode = "RGB" if grey and img.mode == "RGB" else ""
        except (ValueError, OSError) as exc:
            raise UnreadableError(f"{path}: unsupported image mode {img.mode!r} ({exc})") from exc
    win = EIGHT_BIT if v.dtype == np.uint8 else percentile_window(v, window)
    dpi = img.info.get("dpi")
    dtype = v.dtype

    def encode(out: np.ndarray, info: OutputInfo) -> bytes:
        arr = _to_dtype(win.inverse(out[0]), dtype)
        buf = io.BytesIO()
        kwargs: dict = {"dpi": dpi} if dpi else {}
        if fmt == "jpeg":
            if arr.dtype != np.uint8:
                raise UnreadableError(f"{path}: JPEG output needs 8-bit pixels")
            kwargs["quality"] = info.jpeg_quality
        pil = Image.fromarray(arr)
        (pil.convert(out_mode) if out_mode else pil).save(buf, format=img.format, **kwargs)
        return buf.getvalue()

    return Decoded(path, fmt, _apply_windows(v[None], win), tuple(v.shape), str(v.dtype), [win], encode, warnings)


def _read_tiff(path: Path, raw: bytes, window: tuple[float, float]) -> Decoded:
    """A TIFF (any depth, several pages) via tifffile: samples -> grey with a warning, pages -> slices."""
    import tifffile

    try:
        with tifffile.TiffFile(io.BytesIO(raw)) as tif:
            series = tif.series[0]
            arr, axes = series.asarray(), series.axes
    except Exception as exc:  # tifffile raises many types for damaged files
        raise UnreadableError(f"{path}: cannot be decoded as a TIFF ({type(exc).__name__}: {exc})") from exc
    warnings: list[str] = []
    if "S" in axes:
        arr = np.moveaxis(arr, axes.index("S"), -1)
        grey = images.grey8(arr) * 255 if arr.dtype == np.uint8 else images.luma(arr)
        arr = _to_dtype(grey, arr.dtype)
        warnings.append(f"{path}: colour TIFF converted to grey (ITU-R 601-2 luma); the output is grey")
    if arr.ndim < 2 or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise UnreadableError(f"{path}: unsupported TIFF data {arr.dtype} {arr.shape}")
    win = EIGHT_BIT if arr.dtype == np.uint8 else percentile_window(arr, window)
    bad = ~np.isfinite(arr) if np.issubdtype(arr.dtype, np.floating) else None

    def encode(out: np.ndarray, info: OutputInfo) -> bytes:
        new = _to_dtype(win.inverse(out).reshape(arr.shape), arr.dtype)
        if bad is not None and bad.any():
            new[bad] = arr[bad]  # NaN / inf stay where they were
        buf = io.BytesIO()
        tifffile.imwrite(buf, new, photometric="minisblack")
        return buf.getvalue()

    return Decoded(path, "tiff", _apply_windows(arr, win), tuple(arr.shape), str(arr.dtype), [win], encode, warnings)


# ------------------------------------------------------------------------------------------------ DICOM
DICOM_DESCRIPTION_MAX = 64
"""SeriesDescription is a LO (long string): at most 64 characters."""


def _read_dicom(path: Path, raw: bytes, window: tuple[float, float]) -> Decoded:
    """A DICOM file (single or multi-frame, grey) via pydicom; one window over all its frames."""
    import pydicom

    try:
        ds = pydicom.dcmread(io.BytesIO(raw), force=True)
    except Exception as exc:
        raise UnreadableError(f"{path}: cannot be read as DICOM ({type(exc).__name__}: {exc})") from exc
    if "PixelData" not in ds:
        what = "float pixel data (unsupported)" if ("FloatPixelData" in ds or "DoubleFloatPixelData" in ds) else \
            "no pixel data (a DICOMDIR, report or presentation state)"
        cls = UnreadableError if "float" in what else NotAnImageError
        raise cls(f"{path}: DICOM file with {what}")
    if int(ds.get("SamplesPerPixel", 1) or 1) != 1:
        raise UnreadableError(f"{path}: colour DICOM (SamplesPerPixel={ds.SamplesPerPixel}, "
                              f"{ds.get('PhotometricInterpretation')}) is not supported; only grey images")
    try:
        pixels = ds.pixel_array  # (R, C) or (F, R, C), stored values
    except Exception as exc:
        raise UnreadableError(f"{path}: DICOM pixel data cannot be decoded ({type(exc).__name__}: {exc}); "
                              f"compressed transfer syntaxes need pydicom's optional decoders") from exc
    if pixels.dtype.itemsize > 2 or not np.issubdtype(pixels.dtype, np.integer):
        raise UnreadableError(f"{path}: DICOM pixel data of {pixels.dtype} is not supported (8- or 16-bit only)")
    slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
    invert = (ds.get("PhotometricInterpretation") == "MONOCHROME1") != (slope < 0)
    win = percentile_window(pixels, window, invert)
    bits = int(ds.BitsStored)
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)
    shape, dtype = pixels.shape, pixels.dtype.newbyteorder("=")  # set_pixel_data writes native (little) bytes

    def encode(out: np.ndarray, info: OutputInfo) -> bytes:
        from pydicom.dataset import Dataset
        from pydicom.uid import ExplicitVRLittleEndian, generate_uid

        new = copy.deepcopy(ds)
        arr = _to_dtype(win.inverse(out).reshape(shape), dtype, lo, hi)
        if not hasattr(new, "file_meta") or new.file_meta is None:
            new.file_meta = pydicom.dataset.FileMetaDataset()
        new.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian  # also lifts big-endian / compressed inputs
        photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
        new.set_pixel_data(arr, photometric, bits, generate_instance_uid=True)
        new.file_meta.MediaStorageSOPInstanceUID = new.SOPInstanceUID
        if "SOPClassUID" in new:
            new.file_meta.MediaStorageSOPClassUID = new.SOPClassUID
        old_series = str(ds.get("SeriesInstanceUID", ""))
        new.SeriesInstanceUID = info.series_uids.setdefault(old_series, generate_uid())
        desc = f"{ds.get('SeriesDescription', '')} tuneae {info.kind} denoised".strip()
        new.SeriesDescription = desc[-DICOM_DESCRIPTION_MAX:] if len(desc) > DICOM_DESCRIPTION_MAX else desc
        old_type = list(ds.get("ImageType", []) or [])
        new.ImageType = ["DERIVED", "SECONDARY", *old_type[2:], "TUNEAE", info.kind.upper()[:16]]
        new.DerivationDescription = f"Denoised by tuneae: {info.model_label}"[:1024]
        if "SOPInstanceUID" in ds and "SOPClassUID" in ds:
            src = Dataset()
            src.ReferencedSOPClassUID = ds.SOPClassUID
            src.ReferencedSOPInstanceUID = ds.SOPInstanceUID
            new.SourceImageSequence = [src]
        for tag in ("SmallestImagePixelValue", "LargestImagePixelValue"):
            if tag in new:
                new[tag].value = int(arr.min() if tag.startswith("Smallest") else arr.max())
        buf = io.BytesIO()
        pydicom.dcmwrite(buf, new, implicit_vr=False, little_endian=True, enforce_file_format=True)
        return buf.getvalue()

    return Decoded(path, "dicom", _apply_windows(pixels, win), tuple(shape), str(dtype), [win], encode,
                   series_uid=str(ds.get("SeriesInstanceUID", "")))


# ------------------------------------------------------------------------------------------------ NIfTI
def _read_nifti(path: Path, raw: bytes, window: tuple[float, float], plane: str) -> Decoded:
    """A NIfTI-1/-2 image via nibabel: reoriented to RAS+ as in training, one window per 3-D volume, cut along
    ``plane``; every slice of every volume is denoised (also the empty ones training skips)."""
    from nibabel.orientations import apply_orientation, io_orientation, ornt_transform

    try:
        img = images.nifti_image(raw, str(path))
        data = np.asanyarray(img.dataobj)  # stored dtype when unscaled, float when scl_slope / scl_inter apply
        stored = img.get_data_dtype()
    except images.ImageReadError as exc:
        raise UnreadableError(str(exc)) from exc
    except Exception as exc:
        raise UnreadableError(f"{path}: cannot be decoded as NIfTI ({type(exc).__name__}: {exc})") from exc
    shape = data.shape
    if data.size == 0 or data.ndim < 2:
        raise UnreadableError(f"{path}: empty or 1-D NIfTI data {shape}")
    vol = data.reshape(*shape[:2], 1) if data.ndim == 2 else data.reshape(*shape[:3], -1)  # (X, Y, Z[, V])
    vol = vol if vol.ndim == 4 else vol[..., None]
    ornt = io_orientation(img.affine)  # array axes -> RAS+
    back = ornt_transform(np.array([[0, 1], [1, 1], [2, 1]]), ornt)
    ras = apply_orientation(vol, ornt)  # (X', Y', Z', V) in RAS+
    axis = PLANES[plane]
    windows = [percentile_window(ras[..., v], window) for v in range(ras.shape[3])]
    slices = []
    for v, win in enumerate(windows):
        s = np.moveaxis(win.forward(ras[..., v]), axis, 0)  # (N, A, B)
        slices.append(s[:, ::-1, ::-1].transpose(0, 2, 1))  # shown as in training: anterior / superior up
    stack = np.ascontiguousarray(np.concatenate(slices))
    n = ras.shape[axis]
    slope, inter = float(getattr(img.dataobj, "slope", 1.0)), float(getattr(img.dataobj, "inter", 0.0))

    def encode(out: np.ndarray, info: OutputInfo) -> bytes:
        vols = []
        for v, win in enumerate(windows):
            s = out[v * n:(v + 1) * n].transpose(0, 2, 1)[:, ::-1, ::-1]  # undo the display transform
            vols.append(np.moveaxis(win.inverse(s), 0, axis))
        new = apply_orientation(np.stack(vols, axis=-1), back).reshape(shape)  # physical units, stored layout
        bad = ~np.isfinite(data) if np.issubdtype(data.dtype, np.floating) else None
        if bad is not None and bad.any():
            new[bad] = data[bad]
        raw = _to_dtype((new - inter) / slope, stored)  # back to stored values under the file's own scl_slope/inter
        body = _nifti_bytes(img, raw, slope, inter)
        return gzip.compress(body, mtime=0) if path.name.lower().endswith(".gz") else body

    return Decoded(path, "nifti", stack, tuple(shape), str(np.dtype(stored)), windows, encode)


def _nifti_bytes(img, raw: np.ndarray, slope: float, inter: float) -> bytes:
    """A single-file NIfTI image: ``img``'s header (every field and extension, its scl_slope / scl_inter) and
    ``raw`` stored values, written as nibabel writes them (header, extensions, data at ``vox_offset``, Fortran
    order)."""
    from nibabel.volumeutils import array_to_file

    header = img.header.copy()
    if (slope, inter) != (1.0, 0.0):
        header.set_slope_inter(slope, inter)  # nibabel clears them from a loaded image's header; the file had them
    buf = io.BytesIO()
    header.write_to(buf)
    array_to_file(raw, buf, header.get_data_dtype(), header.get_data_offset(), order="F")
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------ entry point
def read(path: str | Path, *, window: tuple[float, float] = images.DEFAULT_WINDOW, plane: str = "axial") -> Decoded:
    """Decode one file for denoising.

    Args:
        path: an image file: PNG / JPEG / TIFF / BMP / GIF / WebP, DICOM (any name), NIfTI (``.nii``, ``.nii.gz``).
        window: (low, high) intensity percentiles in percent (the checkpoint's ``data.window_low`` / ``high``).
        plane: how NIfTI volumes are cut: ``axial``, ``coronal`` or ``sagittal`` (the checkpoint's
            ``data.slice_plane``).
    Returns:
        The decoded file: ``slices`` (N, H, W) float32 on the [0, 1] scale, not clipped.
    Raises:
        NotAnImageError: a DICOM file without pixel data.
        UnreadableError: the file cannot be read or decoded, or is of an unsupported kind; the message names it.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UnreadableError(f"{path}: cannot be read: {exc}") from exc
    if not raw:
        raise UnreadableError(f"{path}: empty file (0 bytes)")
    kind = images.file_kind(str(path), raw)
    try:
        if kind == "nifti":
            return _read_nifti(path, raw, window, plane)
        if kind == "dicom":
            return _read_dicom(path, raw, window)
        return _read_raster(path, raw, window)
    except (UnreadableError, MemoryError):
        raise
    except Exception as exc:  # any decoder's own error types
        raise UnreadableError(f"{path}: cannot be decoded ({type(exc).__name__}: {exc})") from exc
