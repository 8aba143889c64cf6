"""Scan groups and left-out images: DICOM (with and without a DICOMDIR, pydicom's own test series), NIfTI volumes,
numbered 2-D slices, a groups CSV; near copies after a rescale and shift; near-blank images; the refusal when most
images are left out. Images are tiny (16-64 px) and made here."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tuneae.config import DataConfig
from tuneae.data import DataError, load_splits


def _cfg(tmp_path: Path, source: Path, **kw) -> DataConfig:
    return DataConfig(source=str(source), image_size=kw.pop("image_size", 32), cache_dir=str(tmp_path / "cache"), **kw)


def _rows(splits) -> dict[str, dict]:
    return {r["path"]: r for r in splits.manifest}


def _head(seed: int, n: int = 48, scale: float = 1.0, shift: tuple[int, int] = (0, 0),
          canvas: tuple[int, int] | None = None) -> Image.Image:
    """A 'head': smooth random texture inside an ellipse on black, optionally rescaled and shifted on a canvas."""
    rng = np.random.default_rng(seed)
    tex = np.asarray(Image.fromarray((rng.random((5, 5)) * 155 + 100).astype(np.uint8)).resize(
        (n, n), Image.Resampling.BICUBIC), np.float64)
    yy, xx = np.mgrid[:n, :n]
    head = np.where(((yy - n / 2) / (n * 0.42)) ** 2 + ((xx - n / 2) / (n * 0.36)) ** 2 <= 1, tex, 0)
    img = Image.fromarray(head.astype(np.uint8))
    if scale != 1.0 or canvas:
        side = round(n * scale)
        img = img.resize((side, side), Image.Resampling.LANCZOS)
        w, h = canvas or (n, n)
        out = Image.new("L", (w, h))
        out.paste(img, ((w - side) // 2 + shift[0], (h - side) // 2 + shift[1]))
        img = out
    return img


def _texture(seed: int, n: int = 48) -> Image.Image:
    """A smooth random texture over the whole frame (6 x 6 random values, bicubic)."""
    rng = np.random.default_rng(seed)
    return Image.fromarray((rng.random((6, 6)) * 255).astype(np.uint8)).resize((n, n), Image.Resampling.BICUBIC)


def _scan(seed: int, k: int, n: int = 48) -> Image.Image:
    """Slice k of a scan: one head whose texture drifts a little from slice to slice (neighbours alike)."""
    a = np.asarray(_head(seed, n), np.float64)
    b = np.asarray(_head(seed + 1000, n), np.float64)
    return Image.fromarray(np.round(a * (1 - 0.04 * k) + b * 0.04 * k).astype(np.uint8))


def _save(img: Image.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def _dicom_tree(dst: Path, with_dicomdir: bool) -> Path:
    """pydicom's DICOMDIR test media (2 patients, 6 studies, 13 series of 16 x 16 images)."""
    from pydicom.data import get_testdata_file

    src = Path(get_testdata_file("DICOMDIR")).parent
    for patient in ("77654033", "98892001", "98892003"):
        shutil.copytree(src / patient, dst / patient)
    if with_dicomdir:
        shutil.copy(src / "DICOMDIR", dst / "DICOMDIR")
    return dst


# ---------------------------------------------------------------------------------------------------- DICOM
def test_dicomdir_media_grouped_by_series_and_patient(tmp_path):
    root = _dicom_tree(tmp_path / "media", with_dicomdir=True)
    s = load_splits(_cfg(tmp_path, root, group_by="series"))
    rows = _rows(s)
    assert s.counts["layout"] == "DICOM media" and rows["DICOMDIR"]["status"] == "dicomdir"
    assert s.counts["dicomdir_skipped"] == 1 and s.counts["scans"]["by"]["dicom"] == 31
    series = [rows[f"98892003/MR2/{f}"] for f in ("4950", "5011", "4981")]  # instances 1, 2, 3 of one series
    assert len({r["scan"] for r in series}) == 1 and len({r["split"] for r in series if r["split"]}) <= 1
    assert all(r["reason"] for r in s.manifest if r["status"] != "kept")
    # two patients: one class cannot be split three ways
    with pytest.raises(DataError, match=r"2 distinct image group\(s\); the split needs at least 3"):
        load_splits(_cfg(tmp_path, root))


def test_dicom_without_dicomdir_grouped_by_study(tmp_path):
    from tuneae.data.decode import decode_files
    from tuneae.data.duplicates import features
    from tuneae.data.items import build_items
    from tuneae.data.scans import scan_groups
    from tuneae.data.sources import folder_listing

    root = _dicom_tree(tmp_path / "flat", with_dicomdir=False)
    cfg = _cfg(tmp_path, root)
    listing = folder_listing(root)
    items = build_items(listing.records, decode_files(listing.records, cfg)[0], False)
    feats = features(items.images)
    usable = np.ones(len(items.file), bool)
    n = {level: len(set(scan_groups(items, feats.thumbs, usable, group_by=level).scan.tolist()))
         for level in ("patient", "study", "series")}
    assert n == {"patient": 2, "study": 6, "series": 13}


# ---------------------------------------------------------------------------------------------------- 2-D, NIfTI
def test_numbered_alike_slices_and_volumes_stay_together(tmp_path):
    import nibabel as nib

    root = tmp_path / "d"
    for c, cls in enumerate(("a", "b", "c")):
        for k in range(1, 5):  # one scan of 4 alike slices, numbered 1-4
            _save(_scan(10 * c, k), root / cls / f"s ({k}).png")
        for k in range(5, 11):  # unrelated textures numbered on: alike neighbours only by chance
            _save(_texture(100 * c + k), root / cls / f"s ({k}).png")
    vol = np.stack([np.asarray(_scan(77, k), np.float32) for k in range(3)], axis=-1)
    nib.Nifti1Image(vol, np.eye(4)).to_filename(root / "a" / "vol.nii.gz")
    s = load_splits(_cfg(tmp_path, root))
    rows = _rows(s)
    for cls in ("a", "b", "c"):
        scan = [rows[f"{cls}/s ({k}).png"] for k in range(1, 5)]
        assert len({r["scan"] for r in scan}) == 1 and len({r["split"] for r in scan}) == 1
    vol_rows = [r for r in s.manifest if r["path"] == "a/vol.nii.gz"]
    assert len(vol_rows) == 3 and len({r["scan"] for r in vol_rows}) == 1
    assert s.counts["scans"]["by"]["numbered"] >= 12 and s.counts["scans"]["by"]["file"] == 3
    off = load_splits(_cfg(tmp_path, root, scan_min_corr=1.5))  # the rule turned off: each image its own scan
    assert off.counts["scans"]["by"]["numbered"] == 0


def test_splits_carry_each_images_cluster_aligned_with_the_images(tmp_path):
    from tuneae.data import write_manifest
    from tuneae.data.pipeline import _load_items

    root = tmp_path / "d"
    for c, cls in enumerate(("a", "b", "c")):
        for k in range(1, 5):  # one scan of 4 slices, numbered 1-4, alike but drifting (few near copies)
            a, b = np.asarray(_head(10 * c), np.float64), np.asarray(_head(10 * c + 1000), np.float64)
            _save(Image.fromarray(np.round(a * (1 - 0.18 * k) + b * 0.18 * k).astype(np.uint8)),
                  root / cls / f"s ({k}).png")
        for k in range(5, 11):
            _save(_texture(100 * c + k), root / cls / f"s ({k}).png")
    cfg = _cfg(tmp_path, root)
    s = load_splits(cfg)
    items, _, _ = _load_items(cfg)  # the decoded slices (cached): which file each split image came from
    rows = {(r["path"], r["slice"]): r for r in s.manifest}
    for name in ("train", "val", "test"):
        images, groups = getattr(s, name), s.groups(name)
        assert groups is getattr(s, f"{name}_groups") and groups.dtype == np.int64 and groups.shape == (len(images),)
        for img, g in zip(images, groups):
            i = next(i for i in range(len(items.rel)) if np.array_equal(items.images[i], img))
            row = rows[(str(items.rel[i]), int(items.slice[i]))]
            assert (row["split"], row["status"], int(g)) == (name, "kept", row["group"])
    for cls in ("a", "b", "c"):  # a scan's kept slices: one cluster, that many images of their split
        scan = [rows[(f"{cls}/s ({k}).png", 0)] for k in range(1, 5)]
        kept = [r for r in scan if r["status"] == "kept"]
        assert len({r["group"] for r in scan}) == 1 and len(kept) >= 2
        assert int((s.groups(scan[0]["split"]) == scan[0]["group"]).sum()) == len(kept)
    again = load_splits(_cfg(tmp_path, root, manifest=str(write_manifest(s, tmp_path / "manifest.csv"))))
    for name in ("train", "val", "test"):  # the split read back from the manifest carries the same clusters
        assert np.array_equal(again.groups(name), s.groups(name))


def test_groups_csv(tmp_path):
    root = tmp_path / "d"
    for cls in ("a", "b"):
        for k in range(6):
            _save(_head(ord(cls) + 10 * k), root / cls / f"x{chr(97 + k)}.png")
    good = tmp_path / "groups.csv"
    good.write_text("path,group\na/xa.png,p1\nb/xf.png,p2\na/xf.png,p1\n")
    s = load_splits(_cfg(tmp_path, root, groups=str(good)))
    rows = _rows(s)
    assert rows["a/xa.png"]["scan"] == rows["a/xf.png"]["scan"] != rows["b/xf.png"]["scan"]
    assert rows["a/xa.png"]["split"] == rows["a/xf.png"]["split"] and s.counts["scans"]["by"]["csv"] == 3
    for text, match in [("path,group\na/xa.png,p1\nc/nope.png,p2\n", "line 3: 'c/nope.png' is not an image"),
                        ("path,group\na/xa.png,\n", "line 2: empty path or group"),
                        ("path,group\na/xa.png,p\na/xa.png,q\n", "line 3: 'a/xa.png' listed twice"),
                        ("file,patient\na/xa.png,p\n", "expected path,group")]:
        bad = tmp_path / "bad.csv"
        bad.write_text(text)
        with pytest.raises(DataError, match=match):
            load_splits(_cfg(tmp_path, root, groups=str(bad)))
    with pytest.raises(DataError, match="no such file"):
        load_splits(_cfg(tmp_path, root, groups=str(tmp_path / "missing.csv")))


# ---------------------------------------------------------------------------------------------------- copies, blank
def test_rescaled_and_shifted_copy_is_a_near_copy(tmp_path):
    root = tmp_path / "d"
    for cls in ("a", "b"):
        for k in range(5):
            _save(_head(ord(cls) + 7 * k), root / cls / f"h{chr(97 + k)}.png")
    _save(_head(ord("a"), scale=0.9, shift=(3, -2), canvas=(50, 46)), root / "a" / "moved.png")
    s = load_splits(_cfg(tmp_path, root, image_size=64))
    row = _rows(s)["a/moved.png"]
    assert (row["status"], row["duplicate"], row["copy_of"]) == ("copy", "near", "a/ha.png")
    plain = load_splits(_cfg(tmp_path, root, image_size=64, near_min_corr=1.5))  # nothing confirmed
    assert _rows(plain)["a/moved.png"]["status"] == "kept"


def _dark(seed: int, n: int = 32) -> Image.Image:
    """An almost black image: grey levels 0-2 at random."""
    return Image.fromarray(np.random.default_rng(seed).integers(0, 3, (n, n)).astype(np.uint8))


def test_near_blank_left_out_loudly_without_chaining(tmp_path, capsys):
    root = tmp_path / "d"
    for c, cls in enumerate(("a", "b", "c")):
        for k in range(4):
            _save(_head(50 * c + 3 * k), root / cls / f"h{chr(97 + k)}.png")
        for k in range(2):
            _save(_dark(10 * c + k), root / cls / f"dark{chr(97 + k)}.png")
    s = load_splits(_cfg(tmp_path, root))
    rows = _rows(s)
    dark = [r for p, r in rows.items() if "dark" in p]
    assert {r["status"] for r in dark} == {"blank"} and all("near-blank" in r["reason"] for r in dark)
    assert s.counts["blank_removed"] == 6 and s.counts["cross_label_images"] == 0
    assert sum(s.counts[k] for k in ("train", "val", "test")) == 12  # no head was swallowed by a chain
    assert any("near-blank" in w for w in s.counts["warnings"]) and "near-blank" in capsys.readouterr().err


def test_mostly_dropped_refused_unless_allowed(tmp_path):
    root = tmp_path / "d"
    for c, cls in enumerate(("a", "b")):
        for k in range(3):
            _save(_head(40 * c + 3 * k), root / cls / f"h{chr(97 + k)}.png")
        for k in range(4):
            _save(_dark(10 * c + k), root / cls / f"dark{chr(97 + k)}.png")
    with pytest.raises(DataError, match=r"8 of 14 images \(57%\) would be left out: 8 blank"):
        load_splits(_cfg(tmp_path, root))
    s = load_splits(_cfg(tmp_path, root, allow_mostly_dropped=True))
    assert s.counts["left_out"]["blank"] == 8 and len(s.train) + len(s.val) + len(s.test) == 6
