"""Duplicates by content: exact (equal decoded pixels) and near (perceptual hash), grouped as connected components.

Two slices are *copies* of one image when

* their decoded grey pixels are equal (same shape, same 16-bit values): byte copies, lossless re-encodes and
  mode changes (``RGB`` with equal channels vs ``L``); or
* their 256-bit difference hashes (``imagehash.dhash``, ``hash_size=16``) differ in at most ``max_distance`` bits
  (``DataConfig.near_distance``, default ``MAX_DISTANCE``): resized, slightly cropped, recompressed copies.
  Constant slices (all one grey) have an all-zero hash and are only matched exactly; near matches between slices
  of one file (neighbouring slices of a volume) are not copies.

Copy groups are the connected components of these links (so a chain of near copies forms one group). Split
*units* join the copy groups of slices of one file as well (the slices of one volume, one patient, must not
straddle two splits). Components come from :func:`scipy.sparse.csgraph.connected_components`.

Why ``MAX_DISTANCE = 9`` of 256 bits: on the brain-tumour MRI folder (3264 files, 2870 distinct pixel images),
every pair of distinct pixel images at distance 1-9 that was looked at is one scan slice resized, shifted or
cropped by a few pixels, or recompressed (8 of 8 pairs at 7-9, decoded PSNR 25-41 dB); at distance 10 the first
pair of different slices appears (two neighbouring slices of one scan, ``p (802)`` / ``p (803)``). The data
README's count at 6 bits, 2834 groups, is reproduced at 6. Registered volumes (slices of different subjects at one
position) may need a smaller distance: ``DataConfig.near_distance``.

The near-duplicate search compares every pair of hashes (XOR and popcount in numpy), O(M^2) in time and O(M) in
memory: about half a second for 3300 slices.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

MAX_DISTANCE = 9
"""Default largest Hamming distance (bits of 256) between the difference hashes of two near copies."""

KINDS = ("byte", "pixel", "near")
"""How a copy relates to the image kept from its group: the same file bytes (and slice), equal decoded pixels
(bytes differ: re-encoded or another mode), or only a close perceptual hash (resized, recompressed)."""


@dataclass(frozen=True)
class Groups:
    """Group labels of M slices."""

    copy: np.ndarray
    """(M,) int64: copy group, a connected component of equal-pixel and near-hash links."""
    unit: np.ndarray
    """(M,) int64: split unit, copy groups joined with the other slices of their file."""


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


def find_groups(pixel_hash: np.ndarray, dhash: np.ndarray, informative: np.ndarray, file_id: np.ndarray,
                max_distance: int = MAX_DISTANCE) -> Groups:
    """Copy groups and split units of M slices (see the module docstring for the rule).

    Args:
        pixel_hash: (M,) str fingerprints of the decoded pixels (equal = same image).
        dhash: (M, 32) uint8 packed 256-bit difference hashes.
        informative: (M,) bool; constant slices are matched only by ``pixel_hash``.
        file_id: (M,) int; slices with the same id come from one file.
        max_distance: see ``MAX_DISTANCE``; -1 (any negative) links equal pixels only.

    Returns:
        :class:`Groups`.
    """
    m = len(pixel_hash)
    near = near_pairs(dhash, informative & (max_distance >= 0), max_distance)
    near = near[file_id[near[:, 0]] != file_id[near[:, 1]]]
    links = np.concatenate([_same_value_pairs(pixel_hash), near])
    return Groups(copy=components(m, links), unit=components(m, np.concatenate([links, _same_value_pairs(file_id)])))


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
