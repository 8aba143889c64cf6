"""MRI as it really comes: a folder of DICOM files and NIfTI volumes loads through the data loader and
through a smoke search of the real entry point. The DICOM files are pydicom's own ``MR_small.dcm`` (a real 64x64
16-bit MR slice) with distinct smooth pixel data per file, so de-duplication keeps them apart."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from scipy.ndimage import zoom

from tuneae.config import DataConfig
from tuneae.data import load_splits


def _smooth_volume(seed: int, shape: tuple[int, int, int]) -> np.ndarray:
    """Smooth random values in [0, 1] of ``shape``, distinct per seed (cubic zoom of a 6 x 6 x d grid)."""
    rng = np.random.default_rng(seed)
    small = rng.random((6, 6, shape[2]))
    return zoom(small, (shape[0] / 6, shape[1] / 6, 1), order=3).clip(0, 1)


def _mri_folder(root: Path, n_dicom: int = 12, n_nifti: int = 4) -> Path:
    """``root/<k>.dcm`` (one slice each, 12-bit values as scanners store them; every other file with no suffix,
    found by its DICM marker) and ``root/vol<k>.nii.gz`` (64 x 64 x 4 volumes, values up to 3000)."""
    import nibabel as nib
    import pydicom
    from pydicom.data import get_testdata_file

    root.mkdir(parents=True)
    template = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    rows, cols = int(template.Rows), int(template.Columns)
    for k in range(n_dicom):
        ds = template.copy()
        pixels = (_smooth_volume(100 + k, (rows, cols, 1))[..., 0] * 4000).astype(template.pixel_array.dtype)
        ds.PixelData = pixels.tobytes()
        ds.save_as(root / (f"slice{k}.dcm" if k % 2 else f"IM{k:04d}"))
    for k in range(n_nifti):
        vol = (_smooth_volume(200 + k, (64, 64, 4)) * 3000).astype(np.float32)
        nib.Nifti1Image(vol, np.eye(4)).to_filename(root / f"vol{k}.nii.gz")
    return root


def test_dicom_and_nifti_folder_loads(tmp_path):
    root = _mri_folder(tmp_path / "scans")
    s = load_splits(DataConfig(source=str(root), image_size=32, cache_dir=str(tmp_path / "cache")))
    c = s.counts
    assert c["layout"] == "flat folder" and c["files"] == 16 and c["slices"] == 12 + 4 * 4
    assert sum(c["copies_removed"].values()) == 0
    images = np.concatenate([s.train, s.val, s.test])
    assert images.dtype == np.uint8 and images.shape[1:] == (1, 32, 32)
    # the percentile window spreads each file over the grey range: no file is black or saturated
    flat = images.reshape(len(images), -1)
    assert (flat.max(1) >= 200).all() and ((flat == 255).mean(1) < 0.05).all()


def test_dicom_and_nifti_folder_in_a_smoke_search(tmp_path):
    root = _mri_folder(tmp_path / "scans")
    env = {**os.environ, "HOME": str(tmp_path / "home"), "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    cmd = [sys.executable, "-m", "tuneae.search", "--preset", "smoke", "--data", str(root), "--model", "ae",
           "--num-samples", "1", "--epochs", "1", "--no-wandb", "--name", "mri",
           "--storage-path", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "results")]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((tmp_path / "results" / "mri" / "summary.json").read_text())
    ae = summary["models"]["ae"]
    assert (ae["trials"], ae["failed"]) == (1, 0) and ae["best_checkpoint"]
    manifest = (tmp_path / "results" / "mri" / "manifest.csv").read_text()
    assert "vol0.nii.gz" in manifest and "IM0000" in manifest
