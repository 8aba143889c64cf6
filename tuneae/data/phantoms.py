"""Synthetic head phantoms: the data of smoke runs and tests (no files, no network)."""
from __future__ import annotations

import numpy as np

PHANTOM_CLASSES = ("phantom_lesion", "phantom_no_lesion")
"""Class names of the synthetic source; the prefix keeps them from being mistaken for real data."""


def phantom_images(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Synthetic head phantoms: a bright skull ring around a grey brain with darker ventricles and faint
    blobs; half the images also hold a bright "lesion" blob. Clearly not MRI; for smoke runs and tests.

    Args:
        n: number of images.
        size: side in pixels.
        seed: the images depend on it alone (and on n, size).

    Returns:
        images (n, 1, size, size) uint8 in [0, 255], labels (n,) int64 (index into the classes),
        classes ``PHANTOM_CLASSES`` = ("phantom_lesion", "phantom_no_lesion").
    """
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 2).astype(np.int64)  # balanced: 0 lesion, 1 no lesion
    yy, xx = np.mgrid[-1:1:size * 1j, -1:1:size * 1j]  # (S, S) each, in [-1, 1]
    edge = 2.0 / size  # soft edges about one pixel wide

    def ellipse(cx, cy, ax, ay, theta):  # (S, S) in [0, 1], 1 inside
        c, s = np.cos(theta), np.sin(theta)
        u, v = (xx - cx) * c + (yy - cy) * s, -(xx - cx) * s + (yy - cy) * c
        r = np.sqrt((u / ax) ** 2 + (v / ay) ** 2)
        return np.clip((1 - r) * min(ax, ay) / edge + 0.5, 0, 1)

    out = np.empty((n, 1, size, size), np.uint8)
    for i in range(n):
        cx, cy, th = rng.uniform(-0.05, 0.05), rng.uniform(-0.05, 0.05), rng.uniform(-0.3, 0.3)
        ay = rng.uniform(0.8, 0.92)  # half height of the head
        ax = ay * rng.uniform(0.72, 0.85)
        img = rng.uniform(0.8, 1.0) * ellipse(cx, cy, ax, ay, th)  # skull
        brain = ellipse(cx, cy, ax * 0.88, ay * 0.9, th)
        img = img * (1 - brain) + rng.uniform(0.35, 0.5) * brain
        for side in (-1, 1):  # ventricles
            img -= 0.2 * ellipse(cx + side * ax * 0.12, cy - 0.05, ax * 0.08, ay * 0.22, th + side * 0.3)
        for _ in range(3):  # faint blobs as tissue texture
            bx, by = cx + rng.uniform(-0.4, 0.4) * ax, cy + rng.uniform(-0.4, 0.4) * ay
            img += rng.uniform(-0.08, 0.08) * ellipse(bx, by, rng.uniform(0.08, 0.2), rng.uniform(0.08, 0.2),
                                                     rng.uniform(0, 3))
        if labels[i] == 0:  # lesion: bright Gaussian blob inside the brain
            lx, ly = cx + rng.uniform(-0.45, 0.45) * ax, cy + rng.uniform(-0.45, 0.45) * ay
            r2 = (xx - lx) ** 2 + (yy - ly) ** 2
            img += rng.uniform(0.35, 0.55) * np.exp(-r2 / (2 * rng.uniform(0.05, 0.1) ** 2)) * brain
        out[i, 0] = np.round(np.clip(img, 0, 1) * 255)
    return out, labels, PHANTOM_CLASSES
