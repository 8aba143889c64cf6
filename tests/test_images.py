"""Tests of tuneae.images: real MRI samples that pydicom and nibabel ship, tiny synthetic 8/16-bit and float files."""
from __future__ import annotations

import gzip
import shutil

import nibabel as nib
import numpy as np
import png
import pydicom
import pytest
import tifffile
from nibabel.testing import data_path as NIBABEL_DATA
from PIL import Image, ImageOps
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from tuneae.images import (
    FOREGROUND_LEVEL,
    IMAGE_EXTENSIONS,
    ImageReadError,
    check_read_options,
    image_suffix,
    is_image_file,
    percentile_window,
    read_slices,
)

MR_SMALL = get_testdata_file("MR_small.dcm")
ANATOMICAL = NIBABEL_DATA / "anatomical.nii"  # (33, 41, 25) int16, LAS, 2 mm


def head(size: int = 48, top: int = 4000) -> np.ndarray:
    """(size, size) uint16 phantom: 0 outside an ellipse; inside, a left-to-right ramp from 500 to about ``top``
    plus a seeded texture of up to 300 (so the head holds many more than 256 distinct values)."""
    yy, xx = np.mgrid[:size, :size] / (size - 1) * 2 - 1
    inside = (xx / 0.8) ** 2 + (yy / 0.9) ** 2 <= 1
    texture = np.random.default_rng(0).integers(0, 300, size=(size, size))
    ramp = np.round((xx + 1) / 2 * (top - 800) + 500) + texture
    return np.where(inside, ramp, 0).astype(np.uint16)


def assert_order_kept(raw: np.ndarray, out: np.ndarray) -> None:
    """out is a non-decreasing function of raw (the window keeps the ordering of intensities)."""
    order = np.argsort(raw.ravel(), kind="stable")
    assert np.all(np.diff(out.ravel()[order]) >= 0)


def assert_unit_slice(s: np.ndarray) -> None:
    assert s.ndim == 2 and s.dtype == np.float32
    assert s.min() >= 0.0 and s.max() <= 1.0


# ---------------------------------------------------------------------------------------------------- DICOM
def test_mr_small_dicom_is_a_sensible_unit_slice():
    slices = read_slices(MR_SMALL)
    assert len(slices) == 1
    s = slices[0]
    assert_unit_slice(s)
    assert s.shape == (64, 64)
    assert (s == 1.0).mean() < 0.01 and (s == 0.0).mean() < 0.01  # the 0.5 / 99.5 % window: not saturated
    assert s.max() == 1.0 and s.min() == 0.0 and s.std() > 0.1  # spans the range
    assert_order_kept(pydicom.dcmread(MR_SMALL).pixel_array, s)


def test_dicom_rescale_and_monochrome1(tmp_path):
    ds = pydicom.dcmread(MR_SMALL)
    base = read_slices(MR_SMALL)[0]
    ds.RescaleSlope, ds.RescaleIntercept = -1, 0  # modality values = -raw: the window must see them inverted
    ds.save_as(tmp_path / "neg.dcm")
    np.testing.assert_allclose(read_slices(tmp_path / "neg.dcm")[0], 1 - base, atol=1e-6)
    ds = pydicom.dcmread(MR_SMALL)
    ds.PhotometricInterpretation = "MONOCHROME1"  # low values shown white: inverted after windowing
    ds.save_as(tmp_path / "mono1.dcm")
    np.testing.assert_allclose(read_slices(tmp_path / "mono1.dcm")[0], 1 - base, atol=1e-6)


def _multiframe(tmp_path, slopes):
    """MR_small as 3 frames (raw, black, raw) with per-frame rescale slopes in the functional groups."""
    ds = pydicom.dcmread(MR_SMALL)
    raw = ds.pixel_array
    ds.NumberOfFrames = 3
    ds.PixelData = np.stack([raw, np.zeros_like(raw), raw]).tobytes()
    groups = []
    for slope in slopes:
        item, group = Dataset(), Dataset()
        item.RescaleSlope, item.RescaleIntercept = slope, 0
        group.PixelValueTransformationSequence = Sequence([item])
        groups.append(group)
    ds.PerFrameFunctionalGroupsSequence = Sequence(groups)
    path = tmp_path / f"multi{slopes[-1]}.dcm"
    ds.save_as(path)
    return path


def test_dicom_multiframe_one_window_per_frame_rescale_and_empty_frames_skipped(tmp_path):
    same = read_slices(_multiframe(tmp_path, [1, 1, 1]))
    assert len(same) == 2  # the black frame is skipped
    np.testing.assert_array_equal(same[0], same[1])
    brighter = read_slices(_multiframe(tmp_path, [1, 1, 2]))
    assert len(brighter) == 2
    assert brighter[1].mean() > 1.3 * brighter[0].mean()  # one window for the file: frame 3 is twice as bright


def test_dicom_16bit_rgb_multiframe():
    slices = read_slices(get_testdata_file("SC_rgb_rle_16bit_2frame.dcm"))  # (2, 100, 100, 3) uint16, RLE
    assert len(slices) == 2
    for s in slices:
        assert_unit_slice(s)
        assert s.shape == (100, 100) and s.max() == 1.0 and len(np.unique(s)) > 2


def test_dicom_without_suffix_found_by_magic(tmp_path):
    target = tmp_path / "IM0001"
    shutil.copy(MR_SMALL, target)
    (tmp_path / "metadata.csv").write_text("file_name,patient_id\n")
    assert is_image_file(target) and not is_image_file(tmp_path / "metadata.csv")
    np.testing.assert_array_equal(read_slices(target)[0], read_slices(MR_SMALL)[0])


# ---------------------------------------------------------------------------------------------------- NIfTI
def test_anatomical_nifti_gives_axial_slices_in_unit_range():
    slices = read_slices(ANATOMICAL)
    assert len(slices) == 25  # every axial slice of this brain has tissue
    for s in slices:
        assert_unit_slice(s)
        assert s.shape == (41, 33)  # rows: anterior -> posterior (y), columns: right -> left (x)
        assert (s > FOREGROUND_LEVEL).mean() > 0.5
    assert [s.shape for s in read_slices(ANATOMICAL, plane="coronal")] == [(25, 33)] * 41
    assert [s.shape for s in read_slices(ANATOMICAL, plane="sagittal")] == [(25, 41)] * 33


def test_nifti_empty_slices_are_skipped(tmp_path):
    img = nib.load(ANATOMICAL)
    vol = np.asanyarray(img.dataobj)
    pad = np.full((*vol.shape[:2], 3), vol.min(), dtype=vol.dtype)  # 3 background slices below and above
    nib.save(nib.Nifti1Image(np.concatenate([pad, vol, pad], axis=2), img.affine), tmp_path / "padded.nii.gz")
    slices = read_slices(tmp_path / "padded.nii.gz")
    assert len(slices) == 25
    assert all((s > FOREGROUND_LEVEL).mean() > 0.5 for s in slices)
    assert len(read_slices(tmp_path / "padded.nii.gz", min_foreground=0.0)) == 31  # 0 keeps every slice


def test_nifti_orientation_is_radiological(tmp_path):
    vol = np.zeros((6, 8, 4), dtype=np.float32)  # LAS affine: i runs right -> left
    vol[0, 7, 2] = 1.0  # the most right, most anterior voxel of the third axial slice
    nib.save(nib.Nifti1Image(vol, np.diag([-1.0, 1.0, 1.0, 1.0])), tmp_path / "marker.nii")
    axial = read_slices(tmp_path / "marker.nii", min_foreground=0.0)
    assert len(axial) == 4 and axial[2][0, 0] == 1.0 and axial[2].sum() == 1.0  # anterior up, right on the left
    coronal = read_slices(tmp_path / "marker.nii", plane="coronal", min_foreground=0.0)
    assert coronal[7][1, 0] == 1.0  # superior up: z = 2 of 4 is row 1


def test_nifti_4d_one_window_per_volume(tmp_path):
    vol = np.asanyarray(nib.load(ANATOMICAL).dataobj).astype(np.float32)[..., :5]
    nib.save(nib.Nifti1Image(np.stack([vol, vol * 100], axis=-1), np.eye(4)), tmp_path / "two.nii")
    slices = read_slices(tmp_path / "two.nii")
    assert len(slices) == 10
    for a, b in zip(slices[:5], slices[5:]):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_all_empty_volume_raises(tmp_path):
    nib.save(nib.Nifti1Image(np.zeros((5, 5, 4), np.int16), np.eye(4)), tmp_path / "blank.nii.gz")
    with pytest.raises(ImageReadError, match=r"blank\.nii\.gz.*empty volume"):
        read_slices(tmp_path / "blank.nii.gz")


# ---------------------------------------------------------------------------------------------------- 16-bit / float
def test_16bit_grey_png_is_not_saturated(tmp_path):
    raw = head()
    Image.fromarray(raw).save(tmp_path / "head16.png")
    assert Image.open(tmp_path / "head16.png").mode == "I;16"
    [s] = read_slices(tmp_path / "head16.png")
    assert_unit_slice(s)
    inside = raw > 0
    assert (s[inside] == 1.0).mean() < 0.05  # most of the head is below the top of the range
    assert s[~inside].max() == 0.0 and s.max() == 1.0
    assert len(np.unique(s[inside])) > 256  # more grey levels than 8 bits hold: 16-bit detail survives
    assert_order_kept(raw, s)


def test_float_tiff_is_not_black(tmp_path):
    raw = head().astype(np.float32) / 4000  # a float export in [0, 1]
    raw[0, 0] = np.nan
    Image.fromarray(raw).save(tmp_path / "head.tif")
    [s] = read_slices(tmp_path / "head.tif")
    assert_unit_slice(s)
    assert s[raw > 0].mean() > 0.3 and s[0, 0] == 0.0
    assert_order_kept(np.nan_to_num(raw), s)


def test_16bit_colour_png_and_tiff_match_grey(tmp_path):
    raw = head()
    Image.fromarray(raw).save(tmp_path / "grey.png")
    rgb = np.stack([raw] * 3, axis=-1)  # (H, W, 3) uint16, R = G = B
    with open(tmp_path / "rgb.png", "wb") as f:
        png.Writer(raw.shape[1], raw.shape[0], greyscale=False, bitdepth=16).write(f, rgb.reshape(raw.shape[0], -1))
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    grey = read_slices(tmp_path / "grey.png")[0]
    for name in ("rgb.png", "rgb.tif"):
        [s] = read_slices(tmp_path / name)
        np.testing.assert_allclose(s, grey, atol=1e-5, err_msg=name)


def test_multipage_16bit_tiff_is_a_stack(tmp_path):
    raw = head()
    tifffile.imwrite(tmp_path / "stack.tif", np.stack([raw, np.zeros_like(raw), raw // 2]), photometric="minisblack")
    slices = read_slices(tmp_path / "stack.tif")
    assert len(slices) == 2  # the black page skipped
    assert slices[1].mean() < slices[0].mean()  # one window for the stack: page 3 stays darker


# ---------------------------------------------------------------------------------------------------- 8-bit
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_8bit_matches_pillow_grey_exactly(tmp_path, fmt, mode):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    img = Image.fromarray(arr).convert(mode)
    exif = img.getexif()
    exif[0x0112] = 6  # EXIF orientation: rotate 90 degrees
    path = tmp_path / f"img.{fmt.lower()}"
    img.save(path, format=fmt, exif=exif)
    [s] = read_slices(path)
    with Image.open(path) as ref:  # what tuneae.data's decoder did before: EXIF rotation, convert("L")
        expected = np.asarray(ImageOps.exif_transpose(ref).convert("L"), dtype=np.uint8).astype(np.float32) / 255
    assert s.shape == (30, 20)
    np.testing.assert_array_equal(s, expected)


def test_8bit_is_not_windowed(tmp_path):
    Image.fromarray(np.linspace(100, 150, 64, dtype=np.uint8).reshape(8, 8)).save(tmp_path / "dim.png")
    [s] = read_slices(tmp_path / "dim.png")
    assert s.min() == np.float32(100) / 255 and s.max() == np.float32(150) / 255


def test_bytes_input_uses_the_name_for_format_and_errors(tmp_path):
    Image.fromarray(head()).save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_slices("hub:train[3]", (tmp_path / "a.png").read_bytes())[0],
                                  read_slices(tmp_path / "a.png")[0])
    gz = gzip.compress(ANATOMICAL.read_bytes())
    assert len(read_slices("scan.nii.gz", gz)) == 25


# ---------------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("name, content", [
    ("broken.png", b"\x89PNG\r\n\x1a\n not really"),
    ("noise.jpg", bytes(range(256)) * 4),
    ("bad.dcm", b"\0" * 128 + b"DICM" + b"\x02\x00garbage"),
    ("bad.nii.gz", gzip.compress(b"not a nifti header" * 30)),
    ("bad.nii", b"x" * 400),
    ("zero.png", b""),
])
def test_broken_file_raises_naming_it(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ImageReadError, match=name.replace(".", r"\.")) as info:
        read_slices(tmp_path / name)
    assert isinstance(info.value, ValueError)


def test_truncated_png_and_missing_file_raise(tmp_path):
    Image.fromarray(head()).save(tmp_path / "full.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "full.png").read_bytes()[:200])
    with pytest.raises(ImageReadError, match=r"cut\.png"):
        read_slices(tmp_path / "cut.png")
    with pytest.raises(ImageReadError, match=r"missing\.png.*cannot be read"):
        read_slices(tmp_path / "missing.png")


@pytest.mark.parametrize("kwargs, field", [
    ({"plane": "transverse"}, "slice_plane"),
    ({"window": (99.0, 1.0)}, "window_low"),
    ({"window": (0.0, 101.0)}, "window_high"),
    ({"min_foreground": 1.5}, "min_foreground"),
])
def test_impossible_options_are_refused(kwargs, field):
    options = {"plane": "axial", "window": (0.5, 99.5), "min_foreground": 0.01, **kwargs}
    with pytest.raises(ValueError, match=field):
        check_read_options(**options)
    with pytest.raises(ValueError, match=field):
        read_slices(MR_SMALL, **kwargs)


# ---------------------------------------------------------------------------------------------------- helpers
def test_suffixes():
    assert image_suffix("a/Brain.NII.GZ") == ".nii.gz" and image_suffix("x.tar.gz") == ""
    assert image_suffix("scan.TIFF") == ".tiff" and image_suffix("1.3.12.2.1107") == ""
    assert {".dcm", ".nii", ".nii.gz", ".png", ".jpg", ".tif", ".tiff"} <= IMAGE_EXTENSIONS


def test_percentile_window_rule():
    x = np.arange(1000, dtype=np.float64)
    out = percentile_window(x, (0.5, 99.5))
    lo, hi = np.percentile(x, (0.5, 99.5))
    np.testing.assert_allclose(out, np.clip((x - lo) / (hi - lo), 0, 1), atol=1e-6)
    assert percentile_window(np.full((3, 3), 7.0)).max() == 0.0  # constant -> black
    sparse = np.zeros(1000)
    sparse[:2] = 5.0  # percentiles coincide: fall back to min / max
    assert percentile_window(sparse)[:2].tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="finite"):
        percentile_window(np.full(4, np.nan))


def test_data_config_defaults_are_the_readers_defaults():
    from tuneae.config import DataConfig
    from tuneae.images import DEFAULT_MIN_FOREGROUND, DEFAULT_WINDOW, PLANES

    cfg = DataConfig()
    assert (cfg.window_low, cfg.window_high) == DEFAULT_WINDOW and cfg.min_foreground == DEFAULT_MIN_FOREGROUND
    assert cfg.slice_plane in PLANES
    check_read_options(cfg.slice_plane, (cfg.window_low, cfg.window_high), cfg.min_foreground)
