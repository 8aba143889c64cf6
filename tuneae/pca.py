"""The linear baseline of a bottleneck autoencoder: PCA-k reconstruction, fitted on training images only.

A bottleneck model with a k-number code earns its place only where it reconstructs better than the best linear code
of the same size: principal component analysis with k components (Pearson 1901) fitted on the TRAINING images,
each image projected onto the components and back (``mean + (x - mean) V_k^T V_k``). By the Eckart-Young theorem
this is the rank-k affine code with the least squared error on the training images.

Two solvers: ``"full"`` (an exact SVD of the centred training images, LAPACK through scikit-learn; its components
are nested, so one fit at the largest k serves every smaller k, :class:`PCABasis`) and ``"randomized"`` (Halko et
al. 2011, scikit-learn's default for large inputs; ``benchmarks/pca_baseline.py`` used it for its committed
results). Images are ``(N, 1, S, S)`` floats in [0, 1]; reconstructions are clipped to [0, 1] as a model's
sigmoid output is.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.decomposition import PCA

SOLVERS = ("full", "randomized")
"""The SVD solvers :func:`fit_pca` accepts (scikit-learn's ``svd_solver``)."""


def max_components(n_train: int, pixels: int) -> int:
    """The most principal components that carry variance of ``n_train`` centred images of ``pixels`` pixels:
    ``min(n_train - 1, pixels)`` (centring removes one dimension), at least 1."""
    return max(1, min(n_train - 1, pixels))


@dataclass(frozen=True)
class PCABasis:
    """A fitted PCA: the training mean and the leading components, best first."""

    mean: np.ndarray
    """(P,) mean training image, flattened, P = S * S pixels."""
    components: np.ndarray
    """(K, P) orthonormal principal directions, by decreasing explained variance."""
    explained_variance: np.ndarray
    """(K,) variance of the training images along each component (pixel value units squared)."""
    n_train: int
    """Training images it was fitted on."""

    def reconstruct(self, images: np.ndarray, k: int | None = None) -> np.ndarray:
        """Project ``images`` onto the first ``k`` components and back.

        Args:
            images: (M, 1, S, S) or (M, S, S) floats in [0, 1], the same size as the training images.
            k: components used (default: all of the basis).
        Returns:
            Reconstructions of ``images``' shape, float32, clipped to [0, 1].
        Raises:
            ValueError: ``k`` outside 1..K.
        """
        k = len(self.components) if k is None else k
        if not 1 <= k <= len(self.components):
            raise ValueError(f"k={k}: this basis has {len(self.components)} components")
        v = self.components[:k]  # (k, P)
        x = images.reshape(len(images), -1).astype(np.float64) - self.mean
        out = (x @ v.T) @ v + self.mean
        return np.clip(out, 0.0, 1.0).astype(np.float32).reshape(images.shape)


def fit_pca(train: np.ndarray, k: int, solver: str = "full", seed: int = 0) -> PCABasis:
    """Fit the first ``k`` principal components of the training images.

    Args:
        train: (N, 1, S, S) floats in [0, 1], the fit set (training images only).
        k: components, 1..``min(N, S * S)``.
        solver: ``"full"`` (exact, nested components) or ``"randomized"`` (approximate, ``seed`` seeds it).
        seed: seed of the randomized SVD.
    Returns:
        The basis.
    Raises:
        ValueError: k out of range or an unknown solver.
    """
    n, pixels = len(train), int(np.prod(train.shape[1:]))
    if not 1 <= k <= min(n, pixels):
        raise ValueError(f"components {k}: must be between 1 and min(training images {n}, pixels {pixels})")
    if solver not in SOLVERS:
        raise ValueError(f"solver {solver!r}: expected one of {SOLVERS}")
    pca = PCA(n_components=k, svd_solver=solver, random_state=seed if solver == "randomized" else None)
    pca.fit(train.reshape(n, -1).astype(np.float64 if solver == "full" else np.float32))
    return PCABasis(pca.mean_.astype(np.float64), pca.components_.astype(np.float64),
                    pca.explained_variance_.astype(np.float64), n)


def pca_reconstruct(train: np.ndarray, test: np.ndarray, k: int, seed: int = 0,
                    solver: str = "randomized") -> np.ndarray:
    """Reconstruct ``test`` through the first ``k`` principal components of ``train``.

    Args:
        train: (N, 1, S, S) float images in [0, 1], the fit set.
        test: (M, 1, S, S) float images in [0, 1].
        k: number of components (the code size), at most min(N, S*S).
        seed: seed of the randomized SVD.
        solver: see :func:`fit_pca`.
    Returns:
        (M, 1, S, S) float32 reconstructions, clipped to [0, 1].
    Raises:
        ValueError: k is larger than the training set or the pixel count allows.
    """
    return fit_pca(train, k, solver, seed).reconstruct(test, k)


__all__ = ["SOLVERS", "PCABasis", "fit_pca", "max_components", "pca_reconstruct"]
