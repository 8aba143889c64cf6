"""Tests of tuneae.data: a tiny imagefolder built per test, the phantom source, errors, noise, labels."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tuneae import data
from tuneae.config import DataConfig
from tuneae.data import (
    DataError,
    add_gaussian_noise,
    canonical_class,
    check_source,
    load_splits,
    phantom_images,
    to_float,
)

from .conftest import REAL_DATA

REAL = next((p for p in (REAL_DATA, Path("/work/shared/data/brain-tumor-mri")) if p.exists()), REAL_DATA)
"""The real data set: ``../shared/data/brain-tumor-mri`` beside the checkout (as README's command 2 uses it), else
this project's machines' fixed location; tests that need it are skipped where neither exists."""


def _image(path: Path, h: int, w: int, seed: int, mode: str = "RGB") -> Path:
    """Write a random-noise image (distinct content per seed) as JPEG or PNG, by the path's ending."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (h, w, 3) if mode == "RGB" else (h, w), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode).save(path)
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """train: a = {RGB jpg 25x40, grey png 37x20, copy of the jpg}, b = {3 distinct}; test: a = {copy of the train
    png, 1 new}, b = {1 new, a copy of it}."""
    root = tmp_path / "imgs"
    a1 = _image(root / "train/a/a1.jpg", 25, 40, 1)
    a2 = _image(root / "train/a/a2.png", 37, 20, 2, "L")
    shutil.copy(a1, root / "train/a/a1 copy.jpg")
    _image(root / "train/b/b1.jpg", 33, 33, 3)
    _image(root / "train/b/b2.png", 40, 25, 4, "L")
    _image(root / "train/b/b3.jpg", 20, 37, 5)
    root.joinpath("test/a").mkdir(parents=True)
    shutil.copy(a2, root / "test/a/seen_in_train.png")
    _image(root / "test/a/t1.jpg", 30, 30, 6)
    t2 = _image(root / "test/b/t2.jpg", 26, 41, 7)
    shutil.copy(t2, root / "test/b/t2 (1).jpg")
    return root


def _cfg(tmp_path: Path, source, **kw) -> DataConfig:
    return DataConfig(source=str(source), image_size=kw.pop("image_size", 32), cache_dir=str(tmp_path / "cache"), **kw)


def test_folder_counts_shapes_and_cache(folder, tmp_path, monkeypatch):
    s = load_splits(_cfg(tmp_path, folder))
    c = s.counts
    assert s.classes == ("a", "b")
    assert (c["files_train"], c["files_test"], c["unreadable_skipped"]) == (6, 4, 0)
    assert (c["duplicates_removed_train"], c["test_excluded_in_train"], c["duplicates_removed_test"]) == (1, 1, 1)
    assert (c["train"], c["val"], c["test"]) == (3, 2, 2)
    assert c["per_class"] == {"train": {"a": 1, "b": 2}, "val": {"a": 1, "b": 1}, "test": {"a": 1, "b": 1}}
    for x, y in ((s.train, s.train_labels), (s.val, s.val_labels), (s.test, s.test_labels)):
        assert x.shape == (len(y), 1, 32, 32) and x.dtype == np.uint8 and y.dtype == np.int64
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1

    def boom(*a, **k):
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(data, "_decode_image", boom)
    again = load_splits(_cfg(tmp_path, folder))
    assert np.array_equal(again.train, s.train) and np.array_equal(again.test_labels, s.test_labels)
    assert again.counts == c


def test_val_split_seeded(folder, tmp_path):
    a, b = (load_splits(_cfg(tmp_path, folder, seed=3)) for _ in range(2))
    assert np.array_equal(a.val, b.val) and np.array_equal(a.train_labels, b.train_labels)


def test_aspect_padded_black_and_centred(tmp_path):
    root = tmp_path / "wide"
    for split in ("train", "test"):
        for cls, seed in (("x", 0), ("y", 1)):
            _image(root / f"{split}/{cls}/n{seed}.png", 10, 10, seed + (10 if split == "test" else 0))
    Image.new("L", (64, 32), 255).save(root / "train/x/white.png")  # wide: 64 x 32 -> bands above and below
    s = load_splits(_cfg(tmp_path, root, val_fraction=0.01))
    white = [im[0] for im in np.concatenate([s.train, s.val]) if im[0, 16, 16] == 255 and im[0, 0, 16] == 0]
    assert len(white) == 1
    assert white[0][:7].max() == 0 and white[0][-7:].max() == 0 and white[0][10:22].min() == 255


def test_phantoms():
    x, y, classes = phantom_images(100, 32, seed=0)
    assert x.shape == (100, 1, 32, 32) and x.dtype == np.uint8 and y.dtype == np.int64
    assert classes == ("phantom_lesion", "phantom_no_lesion") and set(y.tolist()) == {0, 1}
    x2, y2, _ = phantom_images(100, 32, seed=0)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    assert not np.array_equal(x, phantom_images(100, 32, seed=1)[0])
    assert x.max() > 200 and x[:, :, 0, 0].max() == 0  # bright skull, black corners


def test_phantom_source(tmp_path):
    s = load_splits(DataConfig(source="phantom", image_size=32, phantom_count=100, cache_dir=str(tmp_path)))
    c = s.counts
    assert (c["files_train"], c["files_test"]) == (80, 20) and c["train"] + c["val"] == 80 and c["val"] == 8
    assert "synthetic" in c["source"] and s.train.shape[1:] == (1, 32, 32)
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("bad, match", [({"image_size": 100}, "image_size=100"), ({"image_size": 0}, "image_size=0"),
                                        ({"val_fraction": 0.0}, "val_fraction"),
                                        ({"val_fraction": 1.0}, "val_fraction")])
def test_bad_settings(tmp_path, bad, match):
    with pytest.raises(DataError, match=match):
        check_source(DataConfig(source="phantom", cache_dir=str(tmp_path), **bad))


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(DataError, match="no such folder") as e:
        load_splits(_cfg(tmp_path, tmp_path / "nope"))
    assert str(tmp_path / "nope") in str(e.value)
    (tmp_path / "empty/train/a").mkdir(parents=True)
    with pytest.raises(DataError, match="no test/ folder"):
        check_source(_cfg(tmp_path, tmp_path / "empty"))
    (tmp_path / "empty/test/a").mkdir(parents=True)
    with pytest.raises(DataError, match="holds no image files"):
        check_source(_cfg(tmp_path, tmp_path / "empty"))


def test_truncated_jpeg(folder, tmp_path):
    good = (folder / "train/b/b1.jpg").read_bytes()
    bad = folder / "train/b/half.jpg"
    bad.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match="cannot read image file") as e:
        load_splits(_cfg(tmp_path, folder))
    assert str(bad) in str(e.value)
    s = load_splits(_cfg(tmp_path, folder, skip_unreadable=True))
    assert s.counts["unreadable_skipped"] == 1 and s.counts["files_train"] == 7 and s.counts["train"] == 3
    with pytest.raises(DataError, match=r"half\.jpg"):  # the cache remembers the file is unreadable
        load_splits(_cfg(tmp_path, folder))


def test_non_image_files(folder, tmp_path):
    notes = folder / "train/a/notes.txt"
    notes.write_text("not an image")
    with pytest.raises(DataError, match="not an image file") as e:
        check_source(_cfg(tmp_path, folder))
    assert str(notes) in str(e.value)
    s = load_splits(_cfg(tmp_path, folder, skip_unreadable=True))
    assert s.counts["unreadable_skipped"] == 1 and s.counts["files_train"] == 7
    notes.unlink()
    fake = folder / "test/b/fake.jpg"
    fake.write_text("text pretending to be a JPEG")
    with pytest.raises(DataError, match="cannot read image file") as e:
        load_splits(_cfg(tmp_path, folder))
    assert str(fake) in str(e.value)


def test_hub_names_matched_by_name(tmp_path, monkeypatch):
    import datasets

    assert [canonical_class(n) for n in ["Glioma Tumor", "Meningioma Tumor", "Pituitary Tumor", "No Tumor"]] == \
        ["glioma", "meningioma", "pituitary", "no_tumor"]
    assert {canonical_class(n) for n in ["glioma_tumor", "glioma"]} == {"glioma"}
    hub_names = ["Glioma Tumor", "Meningioma Tumor", "Pituitary Tumor", "No Tumor"]  # id 2 = pituitary here
    feats = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=hub_names)})

    def split(seed):  # 3 images per class; image content encodes its hub label id
        rows = {"image": [], "label": []}
        for k in range(4):
            for j in range(3):
                p = _image(tmp_path / f"hub/{seed}_{k}_{j}.png", 8, 8, 1000 * seed + 10 * k + j, "L")
                rows["image"].append({"bytes": p.read_bytes(), "path": None})
                rows["label"].append(k)
        return datasets.Dataset.from_dict(rows, features=feats)

    fake = datasets.DatasetDict({"train": split(1), "test": split(2)})
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: fake)
    s = load_splits(_cfg(tmp_path, "benschill/brain-tumor-collection"))
    assert s.classes == ("glioma", "meningioma", "no_tumor", "pituitary")
    assert s.counts["per_class"]["test"] == dict.fromkeys(s.classes, 3)


def test_hub_offline_error(tmp_path, monkeypatch):
    import datasets

    def offline(*a, **k):
        raise ConnectionError("Couldn't reach the Hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match="--data PATH"):
        load_splits(_cfg(tmp_path, "benschill/brain-tumor-collection"))


def test_to_float_and_noise():
    x = to_float(np.array([[[[0, 255], [51, 102]]]], dtype=np.uint8))  # (1, 1, 2, 2)
    assert x.dtype == torch.float32 and torch.allclose(x.flatten(), torch.tensor([0.0, 1.0, 0.2, 0.4]))
    with pytest.raises(TypeError):
        to_float(torch.zeros(1, 1, 2, 2))
    x = torch.rand(4, 1, 16, 16)
    assert torch.equal(add_gaussian_noise(x, 0.0), x)
    y = add_gaussian_noise(x, 0.5, generator=torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1 and (y == 0).any() and (y == 1).any()
    assert torch.equal(y, add_gaussian_noise(x, 0.5, generator=torch.Generator().manual_seed(0)))
    z = add_gaussian_noise(x, torch.tensor([0.0, 0.1, 0.0, 0.3]))
    assert torch.equal(z[0], x[0]) and torch.equal(z[2], x[2]) and not torch.equal(z[1], x[1])
    with pytest.raises(ValueError, match="shape"):
        add_gaussian_noise(x, torch.tensor([0.1, 0.2]))
    with pytest.raises(ValueError, match=">= 0"):
        add_gaussian_noise(x, -0.1)


@pytest.mark.skipif(not (REAL / "SHA256SUMS").exists(), reason="real data folder not present")
def test_real_data_checksums_sample():
    lines = (REAL / "SHA256SUMS").read_text().splitlines()
    assert len(lines) == 3264
    for line in lines[::66]:  # 50 files
        digest, name = line.split(None, 1)
        assert hashlib.sha256((REAL / name.lstrip("*")).read_bytes()).hexdigest() == digest, name


@pytest.mark.slow
@pytest.mark.skipif(not REAL.exists(), reason="real data folder not present")
def test_real_data_counts(tmp_path):
    c = load_splits(DataConfig(source=str(REAL), image_size=32, cache_dir=str(tmp_path))).counts
    assert (c["files_train"], c["files_test"], c["test_excluded_in_train"]) == (2870, 394, 88)
    assert (c["duplicates_removed_train"], c["duplicates_removed_test"], c["test"]) == (93, 56, 250)
    assert c["train"] + c["val"] == 2777
