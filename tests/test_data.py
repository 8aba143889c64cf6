"""Tests of tuneae.data: layouts, duplicates by content, the group split, the manifest, errors, phantoms, noise.

Every test builds its tiny folder in tmp_path from smooth random images (distinct seeds differ in about 70 of the
256 bits of their difference hash; see ``_smooth``).
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tuneae.config import DataConfig, ModelConfig
from tuneae.data import (
    LAYOUTS,
    DataError,
    canonical_class,
    check_source,
    load_splits,
    phantom_images,
    read_manifest,
    to_float,
    write_manifest,
)
from tuneae.data import decode as decode_mod
from tuneae.data.__main__ import main as data_main
from tuneae.data.duplicates import near_pairs

from .conftest import REAL_DATA

REAL = next((p for p in (REAL_DATA, Path("/work/shared/data/brain-tumor-mri")) if p.exists()), REAL_DATA)
"""The real data set: ``../shared/data/brain-tumor-mri`` beside the checkout (as README's command 2 uses it), else
this project's machines' fixed location; tests that need it are skipped where neither exists."""


def _smooth(seed: int, n: int = 64) -> Image.Image:
    """A smooth random grey image (6x6 random values, bicubic up to n x n): distinct per seed, stable under
    re-encoding and resizing, as scans are."""
    rng = np.random.default_rng(seed)
    small = Image.fromarray((rng.random((6, 6)) * 255).astype(np.uint8), "L")
    return small.resize((n, n), Image.Resampling.BICUBIC)


def _save(img: Image.Image, path: Path, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kw)
    return path


def _classes_folder(root: Path, n_per_class: int = 6, classes=("a", "b", "c"), split: str = "",
                    first_seed: int = 0) -> Path:
    """``root/[split/]<class>/i<k>.png``: n distinct images per class (seeds from first_seed on)."""
    seed = first_seed
    for cls in classes:
        for k in range(n_per_class):
            _save(_smooth(seed), root / split / cls / f"i{k}.png")
            seed += 1
    return root


def _cfg(tmp_path: Path, source, **kw) -> DataConfig:
    return DataConfig(source=str(source), image_size=kw.pop("image_size", 32), cache_dir=str(tmp_path / "cache"), **kw)


def _rows(splits) -> dict[str, dict]:
    return {r["path"]: r for r in splits.manifest}


def _check_groups(splits) -> None:
    """No group has members in two splits; kept images match the split arrays."""
    by_group: dict[int, set[str]] = {}
    for r in splits.manifest:
        if r["split"]:
            by_group.setdefault(r["group"], set()).add(r["split"])
    assert by_group and all(len(s) == 1 for s in by_group.values())
    for name in ("train", "val", "test"):
        assert sum(r["status"] == "kept" and r["split"] == name for r in splits.manifest) == len(getattr(splits, name))


# ---------------------------------------------------------------------------------------------------- duplicates
def test_reencoded_resized_and_mode_copies_are_duplicates(tmp_path):
    root = _classes_folder(tmp_path / "d", n_per_class=5, classes=("a", "b"))
    orig = _smooth(0)  # = a/i0.png
    _save(orig, root / "a/q95.jpg", quality=95)
    _save(orig, root / "a/q60.jpg", quality=60)  # recompressed: near
    _save(orig.convert("RGB"), root / "a/rgb.png")  # RGB with equal channels vs L: equal pixels
    _save(orig.resize((48, 48), Image.Resampling.LANCZOS), root / "a/small.png")  # resized: near
    shutil.copy(root / "a/i0.png", root / "a/i0_copy.png")  # byte copy
    s = load_splits(_cfg(tmp_path, root))
    rows = _rows(s)
    assert rows["a/i0.png"]["status"] == "kept"  # the largest, first by path
    assert {p: rows[p]["duplicate"] for p in ("a/i0_copy.png", "a/rgb.png", "a/q95.jpg", "a/q60.jpg", "a/small.png")} \
        == {"a/i0_copy.png": "byte", "a/rgb.png": "pixel", "a/q95.jpg": "near", "a/q60.jpg": "near",
            "a/small.png": "near"}
    copies = ("a/i0_copy.png", "a/rgb.png", "a/q95.jpg", "a/q60.jpg", "a/small.png")
    assert all(rows[p]["copy_of"] == "a/i0.png" and rows[p]["status"] == "copy" for p in copies)
    assert {(rows[p]["group"], rows[p]["split"]) for p in (*copies, "a/i0.png")} == \
        {(rows["a/i0.png"]["group"], rows["a/i0.png"]["split"])}
    c = s.counts
    assert c["copies_removed"] == {"byte": 1, "pixel": 1, "near": 3}
    assert (c["files"], c["distinct_files"], c["distinct_images"]) == (15, 14, 10)
    assert c["slices"] == c["train"] + c["val"] + c["test"] + sum(c["copies_removed"].values())
    _check_groups(s)
    exact = load_splits(_cfg(tmp_path, root, near_distance=-1))  # equal pixels only
    assert exact.counts["copies_removed"] == {"byte": 1, "pixel": 1, "near": 0}
    assert _rows(exact)["a/small.png"]["status"] == "kept"


def test_a_png_of_a_jpegs_pixels_is_a_pixel_copy(tmp_path):
    root = _classes_folder(tmp_path / "d", n_per_class=4, classes=("a",))
    jpg = _save(_smooth(50), root / "a/x.jpg", quality=80)
    with Image.open(jpg) as im:
        _save(im.convert("L"), root / "a/x.png")
    rows = _rows(load_splits(_cfg(tmp_path, root)))
    assert {rows["a/x.jpg"]["status"], rows["a/x.png"]["status"]} == {"kept", "copy"}
    assert "pixel" in {rows["a/x.jpg"]["duplicate"], rows["a/x.png"]["duplicate"]}


def test_cross_label_group_reported_and_left_out(tmp_path):
    root = _classes_folder(tmp_path / "d", n_per_class=4, classes=("a", "b"))
    _save(_smooth(0), root / "b/same_as_a0.jpg", quality=90)  # a/i0.png again, labelled b
    s = load_splits(_cfg(tmp_path, root))
    rows = _rows(s)
    assert rows["a/i0.png"]["status"] == rows["b/same_as_a0.jpg"]["status"] == "cross_label"
    assert rows["a/i0.png"]["split"] == "" and rows["a/i0.png"]["group"] == rows["b/same_as_a0.jpg"]["group"]
    c = s.counts
    assert (c["cross_label_groups"], c["cross_label_images"]) == (1, 2)
    assert sorted(c["cross_label_examples"][0]) == ["a: a/i0.png", "b: b/same_as_a0.jpg"]
    assert c["train"] + c["val"] + c["test"] == 7  # 8 distinct images, one left out


def test_near_pairs_match_brute_force():
    rng = np.random.default_rng(0)
    h = rng.integers(0, 256, (300, 32), dtype=np.uint8)
    h[5] = h[17]
    h[40] = h[3] ^ np.eye(32, dtype=np.uint8)[0] * 0b1011  # 3 bits apart
    bits = np.unpackbits(h, axis=1)
    usable = np.ones(300, bool)
    usable[9] = False
    want = {(i, j) for i in range(300) for j in range(i + 1, 300) if usable[i] and usable[j]
            and (bits[i] != bits[j]).sum() <= 100}
    assert {tuple(p) for p in near_pairs(h, usable, 100).tolist()} == want and len(want) > 2
    assert {tuple(p) for p in near_pairs(h, usable, 3).tolist()} == {(5, 17), (3, 40)}


# ---------------------------------------------------------------------------------------------------- splits
def test_group_split_every_class_in_test_and_seeded(tmp_path):
    root = _classes_folder(tmp_path / "d", n_per_class=20, classes=("a", "b", "c"))
    for k in range(6):  # copies in every class, which must follow their original's split
        cls = "abc"[k % 3]
        shutil.copy(root / cls / f"i{k}.png", root / cls / f"dup{k}.png")
    s = load_splits(_cfg(tmp_path, root, seed=1))
    _check_groups(s)
    assert s.counts["per_class"] == {"train": dict.fromkeys("abc", 16), "val": dict.fromkeys("abc", 2),
                                     "test": dict.fromkeys("abc", 2)}
    assert s.counts["split"] == "group" and s.counts["layout"] == "class folders" and not s.counts["warnings"]
    again = load_splits(_cfg(tmp_path, root, seed=1))
    assert np.array_equal(again.test, s.test) and np.array_equal(again.val_labels, s.val_labels)
    other = load_splits(_cfg(tmp_path, root, seed=2))
    assert not np.array_equal(other.test, s.test)


def test_too_few_distinct_images_for_a_class(tmp_path):
    root = _classes_folder(tmp_path / "d", n_per_class=5, classes=("a",))
    _save(_smooth(99), root / "b/one.png")
    shutil.copy(root / "b/one.png", root / "b/two.png")  # a copy is not a second image
    with pytest.raises(DataError, match="class 'b' has 1 distinct"):
        load_splits(_cfg(tmp_path, root))


def test_original_split_removes_cross_split_copies(tmp_path):
    root = _classes_folder(tmp_path / "d", n_per_class=6, classes=("a", "b"), split="train")
    _classes_folder(root, n_per_class=3, classes=("a", "b"), split="test", first_seed=100)
    _save(_smooth(0), root / "test/a/seen.jpg", quality=85)  # train/a/i0.png re-encoded
    shutil.copy(root / "train/b/i0.png", root / "test/b/seen.png")
    s = load_splits(_cfg(tmp_path, root, split="original"))
    rows = _rows(s)
    assert rows["test/a/seen.jpg"]["status"] == rows["test/b/seen.png"]["status"] == "cross_split"
    assert rows["train/a/i0.png"]["status"] == "kept" and rows["train/a/i0.png"]["split"] in ("train", "val")
    c = s.counts
    assert (c["cross_split_removed"], c["groups_across_folder_splits"], c["test"]) == (2, 2, 6)
    assert c["files_per_folder_split"] == {"train": 12, "test": 8} and c["train"] + c["val"] == 12
    assert all(n >= 1 for n in c["per_class"]["val"].values())
    grouped = load_splits(_cfg(tmp_path, root))  # default: the same folder split by group
    assert grouped.counts["groups_across_folder_splits"] == 2 and grouped.counts["cross_split_removed"] == 0
    _check_groups(grouped)


def test_original_split_needs_split_folders(tmp_path):
    root = _classes_folder(tmp_path / "d", n_per_class=4)
    with pytest.raises(DataError, match="needs train/ and test/"):
        check_source(_cfg(tmp_path, root, split="original"))


# ---------------------------------------------------------------------------------------------------- layouts
def test_three_layouts_load(tmp_path):
    split = _classes_folder(tmp_path / "split", 4, ("a", "b"), "train")
    _classes_folder(split, 3, ("a", "b"), "test", first_seed=50)
    classes = _classes_folder(tmp_path / "classes", 4, ("yes", "no"))
    flat = tmp_path / "flat"
    for k in range(8):
        _save(_smooth(200 + k), flat / f"scan{k}.jpg", quality=95)
    got = {}
    for root in (split, classes, flat):
        s = load_splits(_cfg(tmp_path, root))
        got[root.name] = (s.counts["layout"], s.classes, s.counts["train"] + s.counts["val"] + s.counts["test"])
        assert all(len(x) for x in (s.train, s.val, s.test))
    assert got == {"split": ("split folders", ("a", "b"), 14), "classes": ("class folders", ("no_tumor", "yes"), 8),
                   "flat": ("flat folder", ("unlabeled",), 8)}


@pytest.mark.parametrize("make, why", [
    (lambda r: r.mkdir(), "holds no image files"),
    (lambda r: (_save(_smooth(1), r / "x.png"), _save(_smooth(2), r / "c/y.png")), "both directly"),
    (lambda r: (_classes_folder(r, 3, ("a",), "train"), _save(_smooth(9), r / "extra/z.png")), "mixes split"),
])
def test_no_layout_lists_the_three(tmp_path, make, why):
    root = tmp_path / "bad"
    make(root)
    with pytest.raises(DataError, match=why) as e:
        check_source(_cfg(tmp_path, root))
    assert all(layout in str(e.value) for layout in LAYOUTS)


def test_brackets_in_path_and_metadata_csv(tmp_path):
    root = _classes_folder(tmp_path / "data [v2]", n_per_class=4, classes=("a[1]", "b"))
    for cls in ("a[1]", "b"):
        (root / cls / "metadata.csv").write_text("file_name,patient_id\ni0.png,p1\n")
    (root / "README.md").write_text("notes")
    s = load_splits(_cfg(tmp_path, root))  # no --skip-unreadable needed
    c = s.counts
    assert (c["files"], c["non_image_skipped"], c["slices"]) == (11, 3, 8)
    assert sorted(c["non_image_examples"]) == ["README.md", "a[1]/metadata.csv", "b/metadata.csv"]
    assert s.classes == ("a_1", "b") and _rows(s)["a[1]/metadata.csv"]["status"] == "not_image"
    assert load_splits(_cfg(tmp_path, root, skip_unreadable=True)).counts == c  # the advice of the old error works


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="no such folder") as e:
        load_splits(_cfg(tmp_path, tmp_path / "nope"))
    assert str(tmp_path / "nope") in str(e.value)


def test_volumes_slices_of_one_file_stay_in_one_split(tmp_path):
    import nibabel as nib
    from scipy.ndimage import zoom

    root = tmp_path / "vols"
    root.mkdir()
    for k in range(6):  # smooth volumes, 32 x 32 x 5 slices, distinct per file
        vol = zoom(np.random.default_rng(k).random((6, 6, 5)), (32 / 6, 32 / 6, 1), order=3).astype(np.float32)
        nib.Nifti1Image(vol * 1000, np.eye(4)).to_filename(root / f"scan{k}.nii.gz")
    s = load_splits(_cfg(tmp_path, root))
    c = s.counts
    assert (c["layout"], c["files"], c["slices"]) == ("flat folder", 6, 30) and sum(c["copies_removed"].values()) == 0
    by_file: dict[str, set] = {}
    for r in s.manifest:
        by_file.setdefault(r["path"], set()).add((r["group"], r["split"]))
    assert all(len(v) == 1 for v in by_file.values()) and len(by_file) == 6
    assert (c["train"], c["val"], c["test"]) == (20, 5, 5)  # whole files: 4 / 1 / 1


# ---------------------------------------------------------------------------------------------------- manifest
def test_manifest_reproduces_the_split(tmp_path):
    root = _classes_folder(tmp_path / "d", n_per_class=10, classes=("a", "b"))
    shutil.copy(root / "a/i3.png", root / "a/copy.png")
    s = load_splits(_cfg(tmp_path, root, seed=4))
    path = write_manifest(s, tmp_path / "out/manifest.csv")
    with open(path, newline="") as f:
        header = next(csv.reader(f))
    assert header == ["path", "slice", "class", "group", "split", "status", "duplicate", "copy_of", "sha256", "scan",
                      "reason"]
    assert len(read_manifest(path)) == 21
    again = load_splits(_cfg(tmp_path, root, seed=99, manifest=str(path)))  # the seed no longer matters
    for name in ("train", "val", "test"):
        assert np.array_equal(getattr(again, name), getattr(s, name))
        assert np.array_equal(getattr(again, f"{name}_labels"), getattr(s, f"{name}_labels"))
    assert again.counts["split"] == "manifest" and again.counts["copies_removed"]["byte"] == 1
    assert [{k: r[k] for k in ("path", "split", "status")} for r in again.manifest] == \
        [{k: r[k] for k in ("path", "split", "status")} for r in s.manifest]
    kept_test = next(r["path"] for r in s.manifest if r["split"] == "test" and r["status"] == "kept")
    _save(_smooth(777), root / kept_test)  # the file changed: the manifest no longer describes the data
    with pytest.raises(DataError, match="changed since the manifest"):
        load_splits(_cfg(tmp_path, root, manifest=str(path)))
    (root / kept_test).unlink()
    with pytest.raises(DataError, match="not found in the data"):
        load_splits(_cfg(tmp_path, root, manifest=str(path)))


def test_bad_manifest(tmp_path):
    bad = tmp_path / "m.csv"
    bad.write_text("path,slice,class\nx.png,0,a\n")
    with pytest.raises(DataError, match="lacks column"):
        read_manifest(bad)
    bad.write_text("path,slice,class,group,split,status,duplicate,copy_of,sha256\nx.png,0,a,0,train,maybe,,,0\n")
    with pytest.raises(DataError, match="line 2: status 'maybe'"):
        read_manifest(bad)
    with pytest.raises(DataError, match=r"manifest='nope\.csv'"):
        check_source(DataConfig(source="phantom", manifest="nope.csv"))


def test_cli_writes_manifest_and_summary(tmp_path, monkeypatch, capsys):
    _classes_folder(tmp_path / "imgs", n_per_class=4, classes=("a", "b"))
    monkeypatch.chdir(tmp_path)
    assert data_main(["imgs", "--out", "res", "--image-size", "32", "--cache-dir", "cache"]) == 0
    out = capsys.readouterr().out
    assert "copies removed" in out and "test" in out
    summary = json.loads((tmp_path / "res/summary.json").read_text())
    assert summary["command"].startswith("python -m tuneae.data imgs") and summary["data"]["source"] == "imgs"
    written = (tmp_path / "res/summary.json").read_text() + (tmp_path / "res/manifest.csv").read_text()
    assert str(tmp_path) not in written
    assert data_main(["nope", "--out", "res"]) == 2
    assert "error: " in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------- decoding
def test_cache_reused_and_padding(tmp_path, monkeypatch):
    root = _classes_folder(tmp_path / "d", n_per_class=3, classes=("x", "y"))
    white = Image.new("L", (64, 32), 255)  # wide: 64 x 32 -> black bands above and below
    white.putpixel((0, 0), 128)  # not constant (a constant image is left out as blank)
    white.save(root / "x/white.png")
    s = load_splits(_cfg(tmp_path, root))
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    white = [im[0] for im in np.concatenate([s.train, s.val, s.test]) if im[0, 16, 16] == 255]
    assert len(white) == 1 and white[0][:7].max() == 0 and white[0][-7:].max() == 0 and white[0][10:22, 4:].min() == 255

    def boom(*args, **kwargs):
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(decode_mod.images, "read_slices", boom)
    again = load_splits(_cfg(tmp_path, root))
    assert np.array_equal(again.train, s.train) and again.counts == s.counts
    with pytest.raises(DataError, match="AssertionError"):  # another size is another cache entry: decoded again
        load_splits(_cfg(tmp_path, root, image_size=64))


def test_48px_for_a_depth3_unet(tmp_path):
    from tuneae.models import build_model, check_model_config

    s = load_splits(DataConfig(source="phantom", image_size=48, phantom_count=20, cache_dir=str(tmp_path)))
    assert s.train.shape[1:] == (1, 48, 48)
    for name in ("train", "val", "test"):  # each phantom its own cluster
        g = s.groups(name)
        assert g.shape == (len(getattr(s, name)),) and len(np.unique(g)) == len(g)
    cfg = ModelConfig(kind="unet", image_size=48, depth=3, base_channels=4, norm="group")
    check_model_config(cfg)
    out = build_model(cfg)(to_float(s.val))
    out = out[0] if isinstance(out, tuple) else out
    assert out.shape == (len(s.val), 1, 48, 48)
    with pytest.raises(ValueError, match="not divisible by 2\\*\\*depth=32"):  # the model's rule, not the data's
        check_model_config(ModelConfig(kind="ae", image_size=48, depth=5))


def test_truncated_and_fake_images(tmp_path):
    root = _classes_folder(tmp_path / "d", n_per_class=4, classes=("a", "b"))
    good = (root / "b/i0.png").read_bytes()
    half = root / "b/half.png"
    half.write_bytes(good[: len(good) // 2])
    (root / "a/fake.jpg").write_text("text pretending to be a JPEG")
    with pytest.raises(DataError, match="cannot read image file") as e:
        load_splits(_cfg(tmp_path, root))
    assert "(2 unreadable in all)" in str(e.value)
    s = load_splits(_cfg(tmp_path, root, skip_unreadable=True))
    assert s.counts["unreadable_skipped"] == 2 and s.counts["slices"] == 8
    assert _rows(s)["b/half.png"]["status"] == "unreadable"
    with pytest.raises(DataError, match="cannot read image file"):  # the cache remembers the failures
        load_splits(_cfg(tmp_path, root))


@pytest.mark.parametrize("bad, match", [({"image_size": 4}, "image_size=4"), ({"image_size": 0}, "image_size=0"),
                                        ({"val_fraction": 0.0}, "val_fraction"),
                                        ({"test_fraction": 1.0}, "test_fraction"),
                                        ({"val_fraction": 0.5, "test_fraction": 0.5}, "must be below 1"),
                                        ({"split": "random"}, "split='random'"),
                                        ({"split": "original"}, "phantoms have none")])
def test_bad_settings(tmp_path, bad, match):
    with pytest.raises(DataError, match=match):
        check_source(DataConfig(source="phantom", cache_dir=str(tmp_path), **bad))


# ---------------------------------------------------------------------------------------------------- hub
def test_hub_names_matched_by_name_and_deduplicated(tmp_path, monkeypatch):
    import datasets

    assert [canonical_class(n) for n in ["Glioma Tumor", "Meningioma Tumor", "Pituitary Tumor", "No Tumor"]] == \
        ["glioma", "meningioma", "pituitary", "no_tumor"]
    hub_names = ["Glioma Tumor", "Meningioma Tumor", "Pituitary Tumor", "No Tumor"]  # id 2 = pituitary here
    feats = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=hub_names)})

    def png(seed: int) -> bytes:
        buf = io.BytesIO()
        _smooth(seed).save(buf, "PNG")
        return buf.getvalue()

    def split(first):  # 4 images per class
        rows = {"image": [{"bytes": png(first + 10 * k + j), "path": None} for k in range(4) for j in range(4)],
                "label": [k for k in range(4) for _ in range(4)]}
        return datasets.Dataset.from_dict(rows, features=feats)

    train, test = split(0), split(1000)
    test = datasets.concatenate_datasets([test, train.select([0])])  # a train image in test
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: datasets.DatasetDict({"train": train, "test": test}))
    s = load_splits(_cfg(tmp_path, "benschill/brain-tumor-collection"))
    assert s.classes == ("glioma", "meningioma", "no_tumor", "pituitary") and s.counts["layout"] == "hub"
    assert s.counts["copies_removed"]["byte"] == 1 and s.counts["groups_across_folder_splits"] == 1
    assert sum(s.counts["per_class"]["test"].values()) == 4 and _rows(s)["train[0]"]["copy_of"] == "test[16]"


def test_hub_offline_error(tmp_path, monkeypatch):
    import datasets

    def offline(*a, **k):
        raise ConnectionError("Couldn't reach the Hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match="--data PATH"):
        load_splits(_cfg(tmp_path, "benschill/brain-tumor-collection"))


# ---------------------------------------------------------------------------------------------------- phantoms, noise
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
    assert (c["files"], c["train"], c["val"], c["test"]) == (100, 80, 10, 10)
    assert "synthetic" in c["source"] and s.train.shape[1:] == (1, 32, 32)
    assert not list(tmp_path.iterdir())  # nothing written


def test_to_float():
    x = to_float(np.array([[[[0, 255], [51, 102]]]], dtype=np.uint8))  # (1, 1, 2, 2)
    assert x.dtype == torch.float32 and torch.allclose(x.flatten(), torch.tensor([0.0, 1.0, 0.2, 0.4]))
    with pytest.raises(TypeError):
        to_float(torch.zeros(1, 1, 2, 2))


# ---------------------------------------------------------------------------------------------------- real data
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
    s = load_splits(DataConfig(source=str(REAL), image_size=32, cache_dir=str(tmp_path)))
    c = s.counts
    # The data README's independent counts: 3264 image files (+ README.md, SHA256SUMS), 3027 distinct byte
    # strings, 2870 distinct decoded grey images.
    assert (c["files"], c["non_image_skipped"], c["slices"]) == (3266, 2, 3264)
    assert (c["distinct_files"], c["distinct_pixels"]) == (3027, 2870)
    assert c["distinct_images"] < 2870 and c["cross_label_groups"] == 2 and c["groups_across_folder_splits"] > 150
    assert all(n > 0 for split in c["per_class"].values() for n in split.values())
    _check_groups(s)
    at6 = load_splits(DataConfig(source=str(REAL), image_size=32, cache_dir=str(tmp_path), near_distance=6)).counts
    # near copies confirmed by pixels and scan groups joined: 2825 distinct images at 6 bits (the README's hash-only
    # count is 2834); units spanning the folders' train and test: 181
    assert (at6["distinct_images"], at6["groups_across_folder_splits"], at6["cross_label_groups"]) == (2825, 181, 2)


def test_search_split_flag_and_manifest_path(tmp_path, monkeypatch):
    from tuneae.search import resolve

    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.toml").write_text('[data]\nmanifest = "old/manifest.csv"\n')
    data = resolve(["--preset", "smoke", "--split", "original", "--config", "run.toml"])[0].data
    assert data.split == "original" and data.manifest == str(tmp_path / "old/manifest.csv")  # valid from any folder
    assert resolve(["--preset", "smoke"])[0].data.split == "group"


def test_search_writes_the_manifest(smoke_run):
    rows = read_manifest(smoke_run["results"] / "manifest.csv")
    counts = smoke_run["summary"]["data"]
    for name in ("train", "val", "test"):
        assert sum(r["status"] == "kept" and r["split"] == name for r in rows) == counts[name] > 0


def test_clusters_fall_back_from_unit_to_scan_to_the_image_and_splits_default_to_one_each():
    from tuneae.data import Splits
    from tuneae.data.pipeline import Decision, clusters

    group = np.array([3, 3, -1, -1, -1, 0])
    scan = np.array([0, 0, 5, 5, -1, -1])
    d = Decision(split=np.full(6, "test"), status=np.full(6, "kept"), duplicate=np.full(6, ""),
                 copy_of=np.full(6, ""), group=group, scan=scan, reason=np.full(6, ""), distinct_images=None)
    c = clusters(d)
    assert c.dtype == np.int64 and c[0] == c[1] == 3 and c[5] == 0  # the split unit where known
    assert c[2] == c[3] and c[2] not in (0, 3)  # else the scan group, apart from every unit id
    assert len(set(c.tolist())) == 4 and c[4] not in c[[0, 2, 5]]  # else the image alone
    x, y = np.zeros((3, 1, 8, 8), np.uint8), np.zeros(3, np.int64)
    old = Splits(x, y, x, y, x, y, ("a",), {})  # made without groups (as before): one cluster per image
    assert old.test_groups is None and np.array_equal(old.groups("test"), np.arange(3))
    with pytest.raises(ValueError, match="split='tests'"):
        old.groups("tests")
