"""python -m tuneae.denoise: format round trips (nibabel's and pydicom's shipped files, images made here), a tiny
trained U-Net that must denoise, the command line, and bad input refused before any model is loaded."""
from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import tifffile
import torch
from nibabel.testing import data_path as NIB_DATA
from PIL import Image
from pydicom.data import get_testdata_file

from tuneae.checkpoint import save_checkpoint
from tuneae.config import DataConfig, ModelConfig, TrainConfig
from tuneae.data.phantoms import phantom_images
from tuneae.denoise import cli, formats
from tuneae.denoise.model import Denoiser, ModelError, from_model_size, load_denoiser, to_model_size
from tuneae.models import build_model

REPO = Path(__file__).resolve().parents[1]
INFO = formats.OutputInfo("test model", "dunet")
SIZE = 32
STEPS = 150
"""Training steps of the test's dunet: about 5 s of one CPU core."""


# ------------------------------------------------------------------------------------------------ fixtures
def _phantoms(n: int, size: int, seed: int) -> np.ndarray:
    return phantom_images(n, size, seed)[0][:, 0].astype(np.float32) / 255  # (n, size, size) in [0, 1]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    """A dunet (base 8, depth 2, 32 px) trained for STEPS steps on noisy phantoms (sigma 0.05-0.3); a few seconds."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cfg = ModelConfig(kind="dunet", image_size=SIZE, base_channels=8, depth=2, norm="none")
    model = build_model(cfg)
    clean = torch.from_numpy(_phantoms(64, SIZE, seed=1))[:, None]
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(STEPS):
        idx = torch.randint(0, len(clean), (16,), generator=gen)
        x = clean[idx]
        sigma = 0.05 + 0.25 * torch.rand(16, 1, 1, 1, generator=gen)
        loss, _ = model.objective(x + sigma * torch.randn(x.shape, generator=gen), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.set_num_threads(threads)
    folder = tmp_path_factory.mktemp("ckpt") / "dunet"
    save_checkpoint(folder, model.eval(), DataConfig(image_size=SIZE), TrainConfig(), 1, {"val/mse": 0.01})
    return folder


@pytest.fixture(scope="module")
def dae_ckpt(tmp_path_factory) -> Path:
    """An untrained dae (bottleneck, dense code): for the resize path and its refusals."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="dae", image_size=SIZE, base_channels=4, depth=2, latent_dim=16))
    folder = tmp_path_factory.mktemp("ckpt") / "dae"
    save_checkpoint(folder, model.eval(), DataConfig(image_size=SIZE), TrainConfig(), 1, {"val/mse": 0.02})
    return folder


def _roundtrip(path: Path, **kw) -> tuple[formats.Decoded, bytes]:
    d = formats.read(path, **kw)
    return d, d.encode(d.slices, INFO)


# ------------------------------------------------------------------------------------------------ formats
def test_window_is_exactly_invertible():
    v = np.array([-5.0, 0.0, 12.5, 4000.0, 70000.0])
    for win in (formats.Window(10.0, 3000.0), formats.Window(10.0, 3000.0, invert=True), formats.EIGHT_BIT):
        np.testing.assert_allclose(win.inverse(win.forward(v)), v, rtol=1e-6, atol=1e-3)
    w = formats.percentile_window(np.arange(1000.0), (0.5, 99.5))
    assert w.forward(np.array([w.lo, w.hi])).tolist() == [0.0, 1.0]


@pytest.mark.parametrize("name", ["anatomical.nii", "example4d.nii.gz", "functional.nii", "example_nifti2.nii.gz"])
def test_nifti_roundtrip_keeps_grid_affine_header_dtype(name, tmp_path):
    src = Path(NIB_DATA) / name
    d, body = _roundtrip(src)
    out = tmp_path / name
    out.write_bytes(body)
    old, new = nib.load(src), nib.load(out)
    assert type(new) is type(old) and new.shape == old.shape and new.get_data_dtype() == old.get_data_dtype()
    np.testing.assert_array_equal(new.affine, old.affine)
    assert new.header.binaryblock == old.header.binaryblock  # every header field, scl_slope / scl_inter included
    np.testing.assert_array_equal(np.asanyarray(new.dataobj), np.asanyarray(old.dataobj))  # identity -> same data
    volumes = int(np.prod(old.shape[3:]))
    assert len(d.windows) == volumes and len(d.slices) == old.shape[2] * volumes  # axial (RAS z) slices, per volume
    if name.endswith(".gz"):
        gzip.decompress(body)


def test_nifti_output_carries_new_data(tmp_path):
    src = Path(NIB_DATA) / "anatomical.nii"
    d = formats.read(src)
    out = tmp_path / "a.nii"
    out.write_bytes(d.encode(np.clip(d.slices, 0, 1) * 0 + 0.5, INFO))  # a constant mid-window image
    new = np.asanyarray(nib.load(out).dataobj)
    win = d.windows[0]
    assert np.all(np.abs(new - (win.lo + win.hi) / 2) <= 1)


def _dicom_series(tmp_path: Path) -> Path:
    """A copy of one of pydicom's DICOMDIR test series with its DICOMDIR: 16 x 16 MR slices, no file endings."""
    root = Path(get_testdata_file("DICOMDIR")).parent
    dst = tmp_path / "dicomdir"
    shutil.copytree(root / "98892001", dst / "98892001")
    shutil.copy(root / "DICOMDIR", dst / "DICOMDIR")
    return dst


@pytest.mark.parametrize("name", ["MR_small.dcm", "CT_small.dcm", "MR_small_bigendian.dcm"])
def test_dicom_roundtrip_keeps_tags_new_uids(name):
    src = Path(get_testdata_file(name))
    _, body = _roundtrip(src)
    old, new = pydicom.dcmread(src), pydicom.dcmread(io.BytesIO(body))
    np.testing.assert_array_equal(new.pixel_array, old.pixel_array)
    assert new.pixel_array.dtype == old.pixel_array.dtype.newbyteorder("=")
    assert new.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert new.SOPInstanceUID != old.SOPInstanceUID and new.SeriesInstanceUID != old.SeriesInstanceUID
    assert new.file_meta.MediaStorageSOPInstanceUID == new.SOPInstanceUID
    assert list(new.ImageType)[:2] == ["DERIVED", "SECONDARY"] and "TUNEAE" in list(new.ImageType)
    assert "tuneae dunet" in new.SeriesDescription and "test model" in new.DerivationDescription
    assert new.SourceImageSequence[0].ReferencedSOPInstanceUID == old.SOPInstanceUID
    changed = {"SOPInstanceUID", "SeriesInstanceUID", "ImageType", "SeriesDescription", "SmallestImagePixelValue",
               "LargestImagePixelValue", "PixelData"}
    for elem in old:
        if elem.keyword and elem.keyword not in changed:
            assert elem.keyword in new and new[elem.keyword].value == elem.value, elem.keyword


def test_dicom_series_gets_one_new_series_uid(tmp_path):
    folder = _dicom_series(tmp_path)
    info = formats.OutputInfo("m", "dunet")
    files = [f for f in sorted((folder / "98892001").rglob("*")) if f.is_file()]
    news = [pydicom.dcmread(io.BytesIO(formats.read(f).encode(formats.read(f).slices, info))) for f in files]
    olds = {pydicom.dcmread(f).SeriesInstanceUID for f in files}
    assert len({n.SeriesInstanceUID for n in news}) == len(olds) == len(info.series_uids)
    with pytest.raises(formats.NotAnImageError, match="DICOMDIR"):
        formats.read(folder / "DICOMDIR")


def _raster_cases(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    grey8 = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    g16 = rng.integers(0, 65536, (20, 30)).astype(np.uint16)
    cases = {"g8.png": Image.fromarray(grey8), "g16.png": Image.fromarray(g16), "g8.bmp": Image.fromarray(grey8)}
    for name, img in cases.items():
        img.save(tmp_path / name)
    tifffile.imwrite(tmp_path / "f32.tif", rng.normal(100, 20, (20, 30)).astype(np.float32))
    tifffile.imwrite(tmp_path / "pages16.tif", g16[None].repeat(3, 0), photometric="minisblack")
    Image.fromarray(grey8).save(tmp_path / "g8.jpg", quality=95)
    return {p.name: p for p in tmp_path.iterdir()}


def test_raster_roundtrip_keeps_grid_and_dtype(tmp_path):
    for name, path in _raster_cases(tmp_path).items():
        d, body = _roundtrip(path)
        out = tmp_path / f"out-{name}"
        out.write_bytes(body)
        if name.endswith(".tif"):
            old, new = tifffile.imread(path), tifffile.imread(out)
        else:
            old, new = np.asarray(Image.open(path)), np.asarray(Image.open(out))
        assert new.shape == old.shape and new.dtype == old.dtype, name
        tol = 3 if name.endswith(".jpg") else (1e-3 * np.abs(old).max() if old.dtype.kind == "f" else 0)
        assert np.abs(new.astype(np.float64) - old).max() <= tol, name
        assert (d.windows[0].rule == "8bit") == (old.dtype == np.uint8), name


def test_colour_raster_becomes_grey_with_a_warning(tmp_path):
    rgb = np.zeros((10, 12, 3), np.uint8)
    rgb[..., 0] = 200
    Image.fromarray(rgb).save(tmp_path / "c.png")
    d, body = _roundtrip(tmp_path / "c.png")
    assert any("converted to grey" in w for w in d.warnings)
    assert Image.open(io.BytesIO(body)).mode == "L" and Image.open(io.BytesIO(body)).size == (12, 10)
    Image.fromarray(np.full((10, 12, 3), 77, np.uint8)).save(tmp_path / "g.jpg")  # grey stored as RGB
    d, body = _roundtrip(tmp_path / "g.jpg")
    assert not d.warnings and Image.open(io.BytesIO(body)).mode == "RGB"


# ------------------------------------------------------------------------------------------------ model
def test_resize_geometry_undone():
    x = np.random.default_rng(0).random((37, 50)).astype(np.float32)
    y = to_model_size(x, 32)
    assert y.shape == (32, 32)
    assert from_model_size(y, 37, 50).shape == (37, 50)
    sq = np.random.default_rng(1).random((32, 32)).astype(np.float32)
    np.testing.assert_array_equal(from_model_size(to_model_size(sq, 32), 32, 32), sq)


def test_trained_dunet_denoises_at_native_resolution(ckpt):
    den = load_denoiser(checkpoint=ckpt, device="cpu")
    clean = _phantoms(4, 48, seed=7)[:, 3:43, :]  # (4, 40, 48): not square, 40 and 48 multiples of 4? 40 yes
    clean = clean[:, :, :46]  # 46 is not a multiple of 2**depth = 4: padded and cropped back
    noisy = clean + 0.1 * np.random.default_rng(3).standard_normal(clean.shape).astype(np.float32)
    out = den.apply(noisy, "native", batch_size=3)
    assert out.shape == clean.shape
    mse_in, mse_out = np.mean((noisy - clean) ** 2), np.mean((out - clean) ** 2)
    print(f"native: noisy mse {mse_in:.5f}, denoised {mse_out:.5f}")
    assert mse_out < 0.5 * mse_in, (mse_in, mse_out)  # an untrained (identity) U-Net gives mse_out == mse_in
    resized = den.apply(noisy, "resize")
    assert resized.shape == clean.shape and np.mean((resized - clean) ** 2) < mse_in


def test_bottleneck_model_refuses_native(dae_ckpt):
    den = load_denoiser(checkpoint=dae_ckpt, device="cpu")
    assert den.resolution("auto") == "resize" and den.role == "denoiser" and den.sigma_range == (0.05, 0.3)
    with pytest.raises(ModelError, match="resize"):
        den.resolution("native")
    assert den.apply(np.random.default_rng(0).random((2, 20, 50), np.float32), "resize").shape == (2, 20, 50)


def test_non_tuneae_checkpoint_refused(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ModelError, match="not a tuneae checkpoint"):
        load_denoiser(checkpoint=tmp_path / "other.pt")
    with pytest.raises(ModelError, match="no checkpoint file"):
        load_denoiser(checkpoint=tmp_path / "missing")


def _fake_run(root: Path, ckpt: Path | None) -> Path:
    """results/r with a summary.json naming a dunet checkpoint in runs/r (copied there when given)."""
    results = root / "results" / "r"
    results.mkdir(parents=True)
    rec = "train/trial-x/checkpoint_1"
    summary = {"search": {"name": "r"}, "experiment_dir": "../../runs/r",
               "models": {"dunet": {"best_checkpoint": rec, "best_trial": "x", "best_metrics": {"val/mse": 0.01}}}}
    (results / "summary.json").write_text(json.dumps(summary))
    (root / "runs" / "r").mkdir(parents=True)
    if ckpt is not None:
        shutil.copytree(ckpt, root / "runs" / "r" / rec)
    return results


def test_run_picks_its_denoiser_or_says_where_checkpoints_were_expected(tmp_path, ckpt):
    den = load_denoiser(run=_fake_run(tmp_path / "a", ckpt), device="cpu")
    assert isinstance(den, Denoiser) and den.kind == "dunet" and "best trial x" in den.source
    with pytest.raises(ModelError, match="no finished ae model"):
        load_denoiser(run=tmp_path / "a" / "results" / "r", kind="ae")
    with pytest.raises(ModelError, match=r"runs/r/train/trial-x/checkpoint_1 does not exist"):
        load_denoiser(run=_fake_run(tmp_path / "b", None))


# ------------------------------------------------------------------------------------------------ command line
def _noisy_png16(path: Path) -> np.ndarray:
    clean = _phantoms(1, 40, seed=11)[0]
    noisy = clean + 0.1 * np.random.default_rng(5).standard_normal(clean.shape)
    Image.fromarray(np.round(np.clip(noisy, 0, 1.2) * 40000).astype(np.uint16)).save(path)
    return clean


def test_cli_subprocess_writes_every_format(tmp_path, ckpt):
    inputs = tmp_path / "in"
    inputs.mkdir()
    _noisy_png16(inputs / "phantom16.png")
    shutil.copy(Path(NIB_DATA) / "example4d.nii.gz", inputs / "vol4d.nii.gz")
    series = _dicom_series(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "tuneae.denoise", str(inputs / "phantom16.png"), str(inputs / "vol4d.nii.gz"),
           str(series), "--out", "out", "--checkpoint", str(ckpt), "--preview", "--no-progress", "--batch-size", "16"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "out"
    rec = json.loads((out / "denoise.json").read_text())
    assert rec["model"]["kind"] == "dunet" and rec["resolution"] == "native" and rec["model"]["role"] == "denoiser"
    assert rec["model"]["train_noise_sigma"] == [0.05, 0.3]
    assert not any(os.path.isabs(r["output"]) or os.path.isabs(r["input"]) for r in rec["inputs"])
    by_name = {Path(r["input"]).name: r for r in rec["inputs"]}
    assert 0.03 < by_name["phantom16.png"]["sigma"] < 0.3  # 0.1 of 40000 counts on a window of about 1.2 * 40000
    png = np.asarray(Image.open(out / "phantom16.png"))
    assert png.shape == (40, 40) and png.dtype == np.uint16
    old, new = nib.load(inputs / "vol4d.nii.gz"), nib.load(out / "vol4d.nii.gz")
    assert new.shape == old.shape and new.get_data_dtype() == old.get_data_dtype()
    np.testing.assert_array_equal(new.affine, old.affine)
    assert not np.array_equal(np.asanyarray(new.dataobj), np.asanyarray(old.dataobj))
    dcm_out = sorted((out / "dicomdir" / "98892001").rglob("*"))
    dcm_out = [f for f in dcm_out if f.is_file()]
    assert len(dcm_out) == len([f for f in (series / "98892001").rglob("*") if f.is_file()])
    first = pydicom.dcmread(dcm_out[0])
    assert "DERIVED" in first.ImageType and first.pixel_array.shape == (16, 16)
    assert rec["no_pixel_data"] == [os.path.relpath(series / "DICOMDIR", tmp_path)]
    assert all((tmp_path / r["preview"]).is_file() for r in rec["inputs"])


def test_earlier_outputs_kept_without_overwrite(tmp_path, ckpt, capsys):
    img = tmp_path / "x.png"
    _noisy_png16(img)
    args = [str(img), "--out", str(tmp_path / "o"), "--checkpoint", str(ckpt), "--no-progress"]
    assert cli.main(args) == 0
    first = (tmp_path / "o" / "x.png").read_bytes()
    (tmp_path / "o" / "x.png").write_bytes(b"earlier output")
    assert cli.main(args) == 1
    assert "exist already" in capsys.readouterr().err
    assert (tmp_path / "o" / "x.png").read_bytes() == b"earlier output"
    assert cli.main([*args, "--overwrite"]) == 0 and (tmp_path / "o" / "x.png").read_bytes() == first


def test_unreadable_input_named_before_model_load(tmp_path, ckpt, capsys):
    good = tmp_path / "good.png"
    _noisy_png16(good)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    # the checkpoint does not exist: the error must be about the input, so the model was not loaded yet
    assert cli.main([str(good), str(bad), "--out", str(tmp_path / "o"), "--checkpoint", str(tmp_path / "nope"),
                     "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "broken.png" in err and "--skip-unreadable" in err and "nope" not in err
    assert not (tmp_path / "o").exists()
    assert cli.main([str(good), str(bad), "--out", str(tmp_path / "o"), "--checkpoint", str(ckpt),
                     "--no-progress", "--skip-unreadable"]) == 0
    rec = json.loads((tmp_path / "o" / "denoise.json").read_text())
    assert [Path(s["path"]).name for s in rec["skipped"]] == ["broken.png"] and len(rec["inputs"]) == 1


def test_never_overwrites_an_input(tmp_path, ckpt, capsys):
    img = tmp_path / "x.png"
    _noisy_png16(img)
    before = img.read_bytes()
    assert cli.main([str(img), "--out", str(tmp_path), "--checkpoint", str(ckpt), "--no-progress"]) == 1
    assert "overwrite its input" in capsys.readouterr().err and img.read_bytes() == before


def test_reconstruction_model_labelled(tmp_path, dae_ckpt, capsys):
    img = tmp_path / "x.png"
    _noisy_png16(img)
    torch.manual_seed(0)
    ae = build_model(ModelConfig(kind="ae", image_size=SIZE, base_channels=4, depth=2, latent_dim=16))
    save_checkpoint(tmp_path / "ae", ae.eval(), DataConfig(image_size=SIZE), TrainConfig(), 1, {})
    assert cli.main([str(img), "--out", str(tmp_path / "o"), "--checkpoint", str(tmp_path / "ae"),
                     "--no-progress", "--resolution", "native"]) == 1
    assert "use --resolution resize" in capsys.readouterr().err
    assert cli.main([str(img), "--out", str(tmp_path / "o"), "--checkpoint", str(tmp_path / "ae"),
                     "--no-progress"]) == 0
    rec = json.loads((tmp_path / "o" / "denoise.json").read_text())
    assert rec["model"]["role"] == "reconstruction" and rec["resolution"] == "resize"
    assert "trained without noise" in rec["inputs"][0]["sigma_warning"]
    assert np.asarray(Image.open(tmp_path / "o" / "x.png")).shape == (40, 40)
