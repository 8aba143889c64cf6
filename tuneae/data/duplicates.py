"""Duplicates by content: exact (equal decoded pixels) and near (perceptual hash confirmed by pixels), grouped as
connected components.

Two slices are *copies* of one image when

* their decoded grey pixels are equal (same shape, same 16-bit values): byte copies, lossless re-encodes and
  mode changes (``RGB`` with equal channels vs ``L``); or
* they are *near copies*: a hash candidate confirmed by pixels. Candidates are pairs whose 256-bit difference
  hashes (``imagehash.dhash``, ``hash_size=16``) differ in at most ``max_distance`` bits
  (``DataConfig.near_distance``, default ``MAX_DISTANCE``), on the whole slice or on its *content crop*
  (:func:`content_crop`: the model input cropped to the box holding the central 98% of its foreground intensity,
  so padding, a shift or a rescale of the head does not move the hash) with ``CROP_SLACK`` more bits allowed.
  A candidate is confirmed when the two images' 32 x 32 thumbnails correlate at least ``min_corr``
  (``DataConfig.near_min_corr``, default 0.95), whole or cropped, whichever is higher.

Near-blank slices (:func:`signal_fraction` below ``DataConfig.min_signal``) and constant slices take part in no
near match: their hashes are noise, and on a set of almost-black images chained hash links once joined most of
the set into one group. Near matches between slices of one file (neighbouring slices of a volume) are not copies.

Copy groups are the connected components of these links. Split *units* join the copy groups with the scan groups
(:mod:`tuneae.data.scans`: the slices of one file, patient, series or numbered scan), so that no scan straddles
two splits. Components come from :func:`scipy.sparse.csgraph.connected_components` (union-find in effect).

Why these numbers, measured on the brain-tumour MRI folder (3264 files, 2870 distinct pixel images, model input
128 x 128):

* ``MAX_DISTANCE = 9`` of 256 bits on the whole slice: every pair of distinct pixel images at distance 1-9 that
  was looked at is one slice resized, shifted or cropped by a few pixels, or recompressed (8 of 8 pairs at 7-9,
  decoded PSNR 25-41 dB); at 10 the first pair of different slices appears (``p (802)`` / ``p (803)``). The 160
  such pairs with distinct pixels have whole-image thumbnails correlating >= 0.991; for 11 of them the content
  crop differs (a faint background moves the box), hence the higher of the two correlations.
* The content crop: ``test/meningioma/image(112).jpg`` (206 x 249) and ``image(30).jpg`` (204 x 249) are one
  slice rescaled and shifted: whole-slice hashes 25 bits apart, content-crop hashes 1, cropped thumbnails
  correlate 0.9999 (a plain bounding box of the pixels above 0.05 is fragile: 10 or 19 bits, depending on one
  grey level of the threshold). Crop hashes within 16 bits (9 + ``CROP_SLACK``): 244 pairs with distinct pixels,
  all correlating >= 0.951 when cropped; of 3217 pairs of slices numbered 1 apart, 3 are within 16 bits (0.5%
  within 26).
* ``min_corr = 0.95``: below every candidate pair above (a copy); 1-apart slices of one scan, never candidates,
  would pass it in 5% of pairs (cropped), so it guards against chance hash matches, not neighbours.

The near-duplicate search compares every pair of hashes (XOR and popcount in numpy), O(M^2) in time and O(M) in
memory: about half a second for 3300 slices.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from tuneae.data.decode import HASH_SIZE
from tuneae.images import FOREGROUND_LEVEL

MAX_DISTANCE = 9
"""Default largest Hamming distance (bits of 256) between the difference hashes of two near copies."""

CROP_SLACK = 7
"""Extra bits allowed between content-crop hashes (``max_distance + CROP_SLACK``; 16 at the default)."""

MIN_CORR = 0.95
"""Default thumbnail correlation that confirms a near-copy candidate (``DataConfig.near_min_corr``)."""

CROP_MASS = 0.01
"""Share of the foreground intensity cut off at each side by :func:`content_crop`."""

_LEVEL = FOREGROUND_LEVEL * 255  # foreground grey level of a uint8 model input
_THUMB = 32

KINDS = ("byte", "pixel", "near")
"""How a copy relates to the image kept from its group: the same file bytes (and slice), equal decoded pixels
(bytes differ: re-encoded or another mode), or only a close perceptual hash (resized, recompressed)."""


@dataclass(frozen=True)
class Groups:
    """Group labels of M slices."""

    copy: np.ndarray
    """(M,) int64: copy group, a connected component of equal-pixel and near-hash links."""
    unit: np.ndarray
    """(M,) int64: split unit, copy groups joined with the scan groups (at least: the other slices of their file)."""


@dataclass(frozen=True)
class Features:
    """Content features of M model inputs for the near-copy test."""

    thumbs: np.ndarray
    """(M, 1024) float32 zero-mean unit-norm 32 x 32 thumbnails of the whole input."""
    crop_thumbs: np.ndarray
    """(M, 1024) float32 the same of the content crop."""
    crop_hash: np.ndarray
    """(M, 32) uint8 packed 256-bit difference hash of the content crop."""
    signal: np.ndarray
    """(M,) float: fraction of pixels above 0.05 (see :func:`signal_fraction`)."""


def signal_fraction(images: np.ndarray) -> np.ndarray:
    """Fraction of each image's pixels above ``FOREGROUND_LEVEL`` (0.05 of full scale).

    Args:
        images: (M, 1, S, S) uint8 in [0, 255].

    Returns:
        (M,) float64 in [0, 1].
    """
    return (images > _LEVEL).reshape(len(images), -1).mean(axis=1) if len(images) else np.zeros(0)


def _thumb(a: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(a).resize((_THUMB, _THUMB), Image.Resampling.BILINEAR), np.float32).ravel()


def _normalise(t: np.ndarray) -> np.ndarray:
    t = t - t.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(t, axis=1, keepdims=True)
    return np.divide(t, norm, out=np.zeros_like(t), where=norm > 1e-6)


def content_crop(image: np.ndarray, mass: float = CROP_MASS) -> np.ndarray:
    """The box holding the central part of an image's foreground: rows (and columns) between the ``mass`` and
    ``1 - mass`` quantiles of the intensity of pixels above 0.05 of full scale, so a stray bright pixel or a faint
    background does not move it.

    Args:
        image: (H, W) uint8.
        mass: the share of foreground intensity cut off at each side.

    Returns:
        A view of ``image`` (the whole image if it has no foreground).
    """
    w = np.where(image > _LEVEL, image, 0).astype(np.float64)
    total = w.sum()
    if total <= 0:
        return image
    rows, cols = np.cumsum(w.sum(axis=1)) / total, np.cumsum(w.sum(axis=0)) / total
    y0, y1 = np.searchsorted(rows, mass), np.searchsorted(rows, 1 - mass)
    x0, x1 = np.searchsorted(cols, mass), np.searchsorted(cols, 1 - mass)
    return image[y0:y1 + 1, x0:x1 + 1]


def features(images: np.ndarray) -> Features:
    """Thumbnails, content-crop thumbnails and hashes, and signal fraction of (M, 1, S, S) uint8 model inputs.

    About 1 s for 3300 inputs of 128 x 128 pixels.
    """
    import imagehash

    m = len(images)
    if m == 0:
        z = np.zeros((0, _THUMB * _THUMB), np.float32)
        return Features(z, z, np.zeros((0, HASH_SIZE * HASH_SIZE // 8), np.uint8), np.zeros(0))
    crops = [content_crop(im[0]) for im in images]
    thumbs = _normalise(np.stack([_thumb(im[0]) for im in images]))
    crop_thumbs = _normalise(np.stack([_thumb(c) for c in crops]))
    crop_hash = np.stack([np.packbits(imagehash.dhash(Image.fromarray(c), hash_size=HASH_SIZE).hash.ravel())
                          for c in crops])
    return Features(thumbs, crop_thumbs, crop_hash, signal_fraction(images))


def near_pairs(dhash: np.ndarray, usable: np.ndarray, max_distance: int = MAX_DISTANCE) -> np.ndarray:
    """Pairs of slices whose difference hashes differ in at most ``max_distance`` bits.

    Args:
        dhash: (M, B) uint8 packed hash bits, B a multiple of 8 (32 for 256 bits).
        usable: (M,) bool; slices marked False take part in no pair.
        max_distance: the largest Hamming distance in bits.

    Returns:
        (P, 2) int64 pairs ``(i, j)``, ``i < j``, indices into the M slices.
    """
    idx = np.flatnonzero(usable)
    h = np.ascontiguousarray(dhash[idx]).view("<u8")  # (N, B / 8): 64 bits per word
    n = len(idx)
    rows = max(1, (1 << 20) // max(n, 1))  # ~1M pairs per block: bounded memory
    found = []
    for i0 in range(0, n, rows):
        block = h[i0:i0 + rows]  # (c, W)
        dist = np.bitwise_count(block[:, None, :] ^ h[None, i0:, :]).sum(-1, dtype=np.int64)  # (c, n - i0)
        ii, jj = np.nonzero(dist <= max_distance)
        keep = jj > ii  # jj counts from i0, as ii does: the upper triangle without the diagonal
        found.append(np.stack([idx[i0 + ii[keep]], idx[i0 + jj[keep]]], axis=1))
    return np.concatenate(found) if found else np.zeros((0, 2), np.int64)


def components(n: int, pairs: np.ndarray) -> np.ndarray:
    """Connected components of an undirected graph on ``n`` nodes: (n,) int64 labels, numbered in order of their
    smallest node (scipy's breadth-first labelling starts from node 0)."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    graph = coo_matrix((np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64)


def _same_value_pairs(values: np.ndarray) -> np.ndarray:
    """(M, 2) pairs linking every item to the first item with the same value."""
    _, first, inverse = np.unique(values, return_index=True, return_inverse=True)
    return np.stack([np.arange(len(values)), first[inverse.ravel()]], axis=1)


def near_copy_pairs(dhash: np.ndarray, feats: Features, usable: np.ndarray, file_id: np.ndarray,
                    max_distance: int = MAX_DISTANCE, min_corr: float = MIN_CORR) -> np.ndarray:
    """Near copies: hash candidates (whole slice or content crop) confirmed by thumbnail correlation.

    Args:
        dhash: (M, 32) uint8 packed 256-bit difference hashes of the whole slices.
        feats: :func:`features` of the model inputs.
        usable: (M,) bool; False (near-blank, constant) items take part in no pair.
        file_id: (M,) int; pairs within one file are not copies.
        max_distance: see ``MAX_DISTANCE``; negative: no near copies.
        min_corr: the confirming correlation.

    Returns:
        (P, 2) int64 pairs ``(i, j)``, ``i < j``.
    """
    if max_distance < 0:
        return np.zeros((0, 2), np.int64)
    cand = np.concatenate([near_pairs(dhash, usable, max_distance),
                           near_pairs(feats.crop_hash, usable, max_distance + CROP_SLACK)])
    cand = np.unique(cand, axis=0) if len(cand) else cand
    cand = cand[file_id[cand[:, 0]] != file_id[cand[:, 1]]]
    a, b = cand[:, 0], cand[:, 1]
    corr = np.maximum(np.einsum("ij,ij->i", feats.thumbs[a], feats.thumbs[b]),
                      np.einsum("ij,ij->i", feats.crop_thumbs[a], feats.crop_thumbs[b]))
    return cand[corr >= min_corr]


def find_groups(pixel_hash: np.ndarray, near: np.ndarray, scan_pairs: np.ndarray) -> Groups:
    """Copy groups and split units of M slices (see the module docstring for the rule).

    Args:
        pixel_hash: (M,) str fingerprints of the decoded pixels (equal = same image).
        near: (P, 2) int near-copy pairs (:func:`near_copy_pairs`).
        scan_pairs: (Q, 2) int links of slices of one scan, at least every slice to the others of its file
            (:attr:`tuneae.data.scans.ScanGroups.pairs`).

    Returns:
        :class:`Groups`.
    """
    m = len(pixel_hash)
    links = np.concatenate([_same_value_pairs(pixel_hash), np.asarray(near, np.int64).reshape(-1, 2)])
    return Groups(copy=components(m, links),
                  unit=components(m, np.concatenate([links, np.asarray(scan_pairs, np.int64).reshape(-1, 2)])))


def representatives(group: np.ndarray, eligible: np.ndarray, order: np.ndarray) -> np.ndarray:
    """The item kept from each group: the first eligible item in ``order``.

    Args:
        group: (M,) int group labels in [0, G).
        eligible: (M,) bool; only these items can be kept.
        order: (M,) int permutation of the items, most preferred first.

    Returns:
        (G,) int64: the kept item of each group, -1 where a group has no eligible item.
    """
    rep = np.full(int(group.max(initial=-1)) + 1, -1, np.int64)
    for i in order[eligible[order]][::-1]:  # backwards: the most preferred item is written last
        rep[group[i]] = i
    return rep


def copy_kinds(rep_of_item: np.ndarray, file_sha: np.ndarray, slice_index: np.ndarray,
               pixel_hash: np.ndarray) -> np.ndarray:
    """How each item relates to the kept item of its copy group.

    Args:
        rep_of_item: (M,) int index of the item kept from each item's copy group (-1: none kept).
        file_sha, slice_index, pixel_hash: (M,) the items' file sha256, slice index and pixel fingerprint.

    Returns:
        (M,) str: ``""`` for a kept item or one whose group keeps none, else one of ``KINDS``.
    """
    idx = np.arange(len(rep_of_item))
    r = np.where(rep_of_item < 0, idx, rep_of_item)
    same_bytes = (file_sha == file_sha[r]) & (slice_index == slice_index[r])
    kind = np.where(same_bytes, "byte", np.where(pixel_hash == pixel_hash[r], "pixel", "near"))
    return np.where(r == idx, "", kind).astype("U5")


def mixed_label_groups(group: np.ndarray, label: np.ndarray) -> np.ndarray:
    """(M,) bool: True for items of a group whose members carry more than one label."""
    pairs = np.unique(np.stack([group, label], axis=1), axis=0)  # (distinct (group, label), 2)
    n_labels = np.bincount(pairs[:, 0], minlength=int(group.max(initial=-1)) + 1)
    return n_labels[group] > 1
