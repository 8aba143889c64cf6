"""Classical denoisers, each tuned on VALIDATION images over a grid whose chosen value must be interior.

The comparators of the learned denoisers: non-local means, total-variation (Chambolle), wavelet shrinkage with
cycle spinning, and BM3D. Each has one parameter, a factor of the noise sd sigma (``Method.grid``); :func:`tune`
picks the factor with the highest mean PSNR on validation images (never test images) and widens the grid while the
best factor sits at an edge (``MAX_WIDENINGS`` times, one geometric step at a time); if it still sits at an edge it
raises :class:`GridEdgeError` (or, with ``strict=False``, warns and marks the result ``interior=False``).

Under the ``clipped8`` protocol (``tuneae.noise``) every method is bias-aware: it is tuned on validation images with
the same clipped noise, and its output is mapped through the inverse of the clipped-Gaussian expectation
(:func:`debias_clipped`, Foi 2009), which removes the upward bias that clipping gives dark regions. Clipping also
lowers the noise sd near black and white below the nominal sigma, so there non-local means tunes the sd it is told
(with h tied to it) instead of h alone (``Method.clipped``); BM3D tunes the sd it is told under every protocol.

Under the ``rician`` protocol (magnitude MR noise) every method is bias-corrected the same way: tuned on validation
images with Rician noise and told the true sigma, its output, an estimate of the local mean of the Rician data, is
mapped through the inverse of the Rician mean (:func:`debias_rician`, the mean of Gudbjartsson & Patz 1995), which
removes the upward bias of weak signal (the black background's sigma sqrt(pi / 2) becomes 0).
Every output is clipped to [0, 1], the range of the clean images (as a learned model's sigmoid output is).
"""
from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from itertools import pairwise
from multiprocessing import get_context

import bm3d
import numpy as np
import pywt
from scipy.stats import norm
from skimage.restoration import cycle_spin, denoise_nl_means, denoise_tv_chambolle, denoise_wavelet
from tqdm.auto import tqdm

from tuneae.metrics import psnr
from tuneae.noise import CLIPPED8, PRIMARY, RICIAN, check_protocol, check_sigma, rician_mean

MAX_WIDENINGS = 4
"""How often :func:`tune` extends a grid by one geometric step past the edge where the best factor sits."""
NLM_PATCH_SIZE, NLM_PATCH_DISTANCE = 5, 6
"""Non-local means: 5x5 patches searched within 13x13 (distance 6), scikit-image's fast mode."""
NLM_H_PER_SIGMA = 0.8
"""Non-local means under ``clipped8``: h = 0.8 x the sigma it is told (scikit-image's guidance for fast mode)."""
WAVELET = "db4"
"""Wavelet of the shrinkage denoiser: Daubechies' wavelet with 4 vanishing moments (8 taps), decomposed to as many
levels as the image allows without the filter overrunning the coarsest band (``pywt.dwt_max_level``: 4 at 128 px;
scikit-image's default, 3 levels fewer, leaves the coarse noise in place: 1 level, 2.7 dB worse at sigma 0.2 on 24
of this project's validation images)."""
WAVELET_SHIFTS = 3
"""Cycle spinning: the image is shifted by 0..3 pixels along each axis (16 shifts) and the results averaged."""
BM3D_THREADS = 1
"""Threads of one BM3D call: 1 makes its output exactly reproducible (the package warns that its multi-threaded
aggregation varies slightly); run images in parallel with ``workers`` instead."""
DEBIAS_POINTS = 4097
"""Points of the table on which :func:`debias_clipped` and :func:`debias_rician` invert the expectation of the noisy
data."""


class GridEdgeError(ValueError):
    """A tuned parameter stayed at the edge of its grid after every widening; the message names method, sigma,
    protocol, grid and scores."""


def _nl_means(image: np.ndarray, sigma: float, factor: float) -> np.ndarray:
    return denoise_nl_means(image, h=factor * sigma, sigma=sigma, patch_size=NLM_PATCH_SIZE,
                            patch_distance=NLM_PATCH_DISTANCE, fast_mode=True)


def _nl_means_clipped(image: np.ndarray, sigma: float, factor: float) -> np.ndarray:
    told = factor * sigma  # clipped noise has a lower, unknown sd near black and white: tune what NL-means is told
    return denoise_nl_means(image, h=NLM_H_PER_SIGMA * told, sigma=told, patch_size=NLM_PATCH_SIZE,
                            patch_distance=NLM_PATCH_DISTANCE, fast_mode=True)


def _tv(image: np.ndarray, sigma: float, factor: float) -> np.ndarray:
    return denoise_tv_chambolle(image, weight=factor * sigma)


def _wavelet(image: np.ndarray, sigma: float, factor: float) -> np.ndarray:
    levels = max(1, pywt.dwt_max_level(min(image.shape), pywt.Wavelet(WAVELET).dec_len))
    kw = {"sigma": factor * sigma, "wavelet": WAVELET, "wavelet_levels": levels, "method": "BayesShrink",
          "mode": "soft", "rescale_sigma": True}
    return cycle_spin(image, denoise_wavelet, max_shifts=WAVELET_SHIFTS, workers=1, func_kw=kw)


def _bm3d(image: np.ndarray, sigma: float, factor: float) -> np.ndarray:
    profile = bm3d.BM3DProfile()  # 'np', the package's default
    profile.num_threads = BM3D_THREADS
    return bm3d.bm3d(image, sigma_psd=factor * sigma, profile=profile, stage_arg=bm3d.BM3DStages.ALL_STAGES)


def geometric_grid(centre: float, ratio: float, n: int) -> tuple[float, ...]:
    """``n`` (odd) factors ``centre * ratio**k``, k = -(n-1)/2 .. (n-1)/2, rounded to 4 significant digits."""
    half = n // 2
    return tuple(float(f"{centre * ratio**k:.4g}") for k in range(-half, half + 1))


@dataclass(frozen=True)
class Method:
    """A classical denoiser with one parameter, a factor of sigma.

    Attributes:
        name: the key in ``METHODS`` and in the report's tables.
        label: a human name.
        fn: ``(image (H, W) float64, sigma, factor) -> (H, W)``; the noisy image may leave [0, 1].
        grid: the starting grid of factors, ascending, geometric, at least 3 values.
        parameter: what the factor scales, for the report.
        source: the paper and the library call.
        tune_images: validation images :func:`tune` should use (fewer for a slow method).
        clipped: ``(fn, grid, parameter)`` used instead under the ``clipped8`` protocol, or None (the same).
    """

    name: str
    label: str
    fn: Callable[[np.ndarray, float, float], np.ndarray] = field(repr=False)
    grid: tuple[float, ...]
    parameter: str
    source: str
    tune_images: int = 24
    clipped: tuple[Callable[[np.ndarray, float, float], np.ndarray], tuple[float, ...], str] | None = \
        field(default=None, repr=False)

    def under(self, protocol: str) -> tuple[Callable[[np.ndarray, float, float], np.ndarray], tuple[float, ...], str]:
        """``(fn, starting grid, what the factor scales)`` of this method under a noise protocol."""
        if protocol == CLIPPED8 and self.clipped is not None:
            return self.clipped
        return self.fn, self.grid, self.parameter


GRID_RATIO = 2**0.25
"""Spacing of every starting grid (and of each widening step): a factor of 1.19 between neighbours."""

METHODS: dict[str, Method] = {m.name: m for m in (
    Method("nl_means", "non-local means", _nl_means, geometric_grid(0.8, GRID_RATIO, 5),
           "h / sigma (filter strength), with the noise sd sigma given",
           "Buades et al. 2005, 'A non-local algorithm for image denoising', CVPR; skimage.restoration."
           "denoise_nl_means (fast mode, 5x5 patches, distance 6)",
           clipped=(_nl_means_clipped, geometric_grid(1.0, GRID_RATIO, 5),
                    f"assumed noise sd / sigma, h = {NLM_H_PER_SIGMA} x the assumed sd (clipped noise)")),
    Method("tv_chambolle", "TV Chambolle", _tv, geometric_grid(1.0, GRID_RATIO, 5),
           "weight / sigma",
           "Chambolle 2004, 'An algorithm for total variation minimization and applications', JMIV 20; "
           "skimage.restoration.denoise_tv_chambolle"),
    Method("wavelet", "wavelet (db4, cycle spinning)", _wavelet, geometric_grid(1.0, GRID_RATIO, 5),
           "threshold sd / sigma (BayesShrink, soft)",
           "Chang et al. 2000, 'Adaptive wavelet thresholding for image denoising and compression', IEEE TIP 9(9) "
           "(BayesShrink); Coifman & Donoho 1995, 'Translation-invariant de-noising' (cycle spinning); "
           "skimage.restoration.denoise_wavelet under cycle_spin"),
    Method("bm3d", "BM3D", _bm3d, geometric_grid(1.0, GRID_RATIO, 5),
           "assumed noise sd / sigma",
           "Dabov et al. 2007, 'Image denoising by sparse 3-D transform-domain collaborative filtering', IEEE TIP "
           "16(8); Makinen et al. 2020, IEEE TIP 29; the bm3d package (profile 'np', both stages; licensed for "
           "non-commercial use only)", tune_images=6),
)}
"""Every classical denoiser, by name."""


def method(name: str) -> Method:
    """``METHODS[name]``.

    Raises:
        ValueError: an unknown name, listing the known ones.
    """
    if name not in METHODS:
        raise ValueError(f"unknown classical denoiser {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name]


def clipped_mean(x: np.ndarray, sigma: float) -> np.ndarray:
    """E[clip(x + sigma * Z, 0, 1)] for Z ~ N(0, 1): the mean of clipped Gaussian noisy data at clean value x.

    Closed form (the mean of a clipped normal variable; Foi 2009, see :func:`debias_clipped`): with
    a = -x / sigma and b = (1 - x) / sigma, ``(1 - Phi(b)) + x (Phi(b) - Phi(a)) + sigma (phi(a) - phi(b))``;
    strictly increasing in x, sigma / sqrt(2 pi) at x = 0.

    Args:
        x: clean values, any shape, in [0, 1].
        sigma: noise sd on the [0, 1] scale, > 0.
    Returns:
        Same shape as x, in (0, 1).
    """
    x = np.asarray(x, dtype=np.float64)
    a, b = -x / sigma, (1.0 - x) / sigma
    return norm.sf(b) + x * (norm.cdf(b) - norm.cdf(a)) + sigma * (norm.pdf(a) - norm.pdf(b))


def debias_clipped(estimate: np.ndarray, sigma: float) -> np.ndarray:
    """Undo the bias of clipped noise: map an estimate of the clipped data's mean back to the clean value.

    Foi 2009 ("Clipped noisy images: heteroskedastic modeling and practical denoising", Signal Processing 89(12)):
    a denoiser applied to clipped noisy data estimates E[clipped data] = :func:`clipped_mean` (x), not
    x; applying the inverse of that function removes the bias (in the black background, an estimate of
    sigma / sqrt(2 pi) becomes 0). Inverted by interpolation on ``DEBIAS_POINTS`` values of x; estimates below
    clipped_mean(0) map to 0, above clipped_mean(1) to 1. The 8-bit quantization of ``clipped8`` adds no bias
    worth correcting (rounding to 1/255 is unbiased away from the ends).

    Args:
        estimate: any shape, on the [0, 1] scale.
        sigma: the noise sd the data was made with, > 0.
    Returns:
        Same shape, float64 in [0, 1].
    """
    xs = np.linspace(0.0, 1.0, DEBIAS_POINTS)
    return np.interp(np.asarray(estimate, dtype=np.float64), clipped_mean(xs, sigma), xs)


def debias_rician(estimate: np.ndarray, sigma: float) -> np.ndarray:
    """Undo the bias of Rician data: map an estimate of the Rician data's mean back to the clean value.

    A denoiser applied to magnitude data y = |x + complex Gaussian noise| estimates E[y] = :func:`tuneae.noise.
    rician_mean` (x) (Gudbjartsson & Patz 1995, "The Rician distribution of noisy MRI data", Magnetic Resonance in
    Medicine 34(6)), which exceeds x, most where x is small (x = 0 gives sigma sqrt(pi / 2)); applying the inverse of
    that strictly increasing function removes the bias, as :func:`debias_clipped` does for clipped data (Foi 2009).
    Inverted by interpolation on ``DEBIAS_POINTS`` values of x in [0, 1]; estimates below sigma sqrt(pi / 2) map to 0,
    above rician_mean(1) to 1. For x >> sigma this is Gudbjartsson & Patz's simple correction
    sqrt(estimate^2 - sigma^2), to which rician_mean tends.

    Args:
        estimate: any shape, on the [0, 1] scale.
        sigma: the noise sd of each channel the data was made with, on the [0, 1] scale, > 0.
    Returns:
        Same shape, float64 in [0, 1].
    """
    xs = np.linspace(0.0, 1.0, DEBIAS_POINTS)
    return np.interp(np.asarray(estimate, dtype=np.float64), rician_mean(xs, sigma), xs)


def _denoise_one(name: str, sigma: float, factor: float, protocol: str, image: np.ndarray) -> np.ndarray:
    out = METHODS[name].under(protocol)[0](np.asarray(image, dtype=np.float64), sigma, factor)
    if protocol == CLIPPED8:
        out = debias_clipped(out, sigma)
    elif protocol == RICIAN:
        out = debias_rician(out, sigma)
    return np.clip(out, 0.0, 1.0)


def denoise(name: str, noisy: np.ndarray, sigma: float, factor: float, protocol: str = PRIMARY,
            workers: int = 1, progress: bool = False) -> np.ndarray:
    """Denoise a stack of images with one classical method at one parameter value.

    Args:
        name: a key of ``METHODS``.
        noisy: (N, H, W) float, noisy images on the [0, 1] scale (``awgn``: values may leave [0, 1]).
        sigma: the noise sd on the [0, 1] scale, in (0, 1]; the method is told it (times ``factor``).
        factor: the method's parameter, a factor of sigma (see ``Method.parameter``), > 0.
        protocol: the noise protocol of ``noisy``; ``clipped8`` applies :func:`debias_clipped` to each output,
            ``rician`` :func:`debias_rician` (the bias-corrected variant; ``awgn`` on Rician data gives the
            uncorrected one).
        workers: processes to spread the images over (1: this process). Worth it for BM3D (~0.7 s per 128 px
            image); each worker process starts fresh (spawn), about a second.
        progress: show a tqdm progress bar on stderr.
    Returns:
        (N, H, W) float64 in [0, 1].
    Raises:
        ValueError: an unknown method or protocol, sigma outside (0, 1], factor <= 0, workers < 1 or images that are
            not (N, H, W).
    """
    method(name)
    check_protocol(protocol)
    sigma = check_sigma(sigma)
    noisy = np.asarray(noisy, dtype=np.float64)
    if noisy.ndim != 3:
        raise ValueError(f"noisy images of shape {noisy.shape}: need (N, H, W)")
    if not (math.isfinite(factor) and factor > 0) or workers < 1:
        raise ValueError(f"{name}: factor={factor} must be > 0 and workers={workers} >= 1")
    one = partial(_denoise_one, name, sigma, float(factor), protocol)
    bar = {"total": len(noisy), "desc": f"{name} sigma {sigma:g}", "unit": "img", "file": sys.stderr,
           "disable": not progress, "leave": False}
    if workers == 1 or len(noisy) < 2:
        return np.stack([one(im) for im in tqdm(noisy, **bar)])
    with ProcessPoolExecutor(min(workers, len(noisy)), mp_context=get_context("spawn")) as pool:
        return np.stack(list(tqdm(pool.map(one, noisy, chunksize=max(1, len(noisy) // (4 * workers))), **bar)))


@dataclass(frozen=True)
class Tuned:
    """The result of :func:`tune`.

    Attributes:
        method, sigma, protocol: what was tuned, at which noise sd (on the [0, 1] scale), under which protocol.
        factor: the chosen parameter (highest mean validation PSNR).
        scores: every factor tried -> mean validation PSNR in dB, ascending by factor.
        widenings: how many times the grid was extended.
        interior: whether the chosen factor has a tried neighbour on both sides.
        images: validation images used.
    """

    method: str
    sigma: float
    protocol: str
    factor: float
    scores: dict[float, float]
    widenings: int
    interior: bool
    images: int

    def as_dict(self) -> dict:
        """A JSON-ready dict (score keys as strings, PSNR rounded to 0.001 dB)."""
        return {"method": self.method, "sigma": self.sigma, "protocol": self.protocol, "factor": self.factor,
                "scores_db": {f"{k:g}": round(v, 3) for k, v in self.scores.items()},
                "widenings": self.widenings, "interior": self.interior, "validation_images": self.images}


def _check_grid(grid: tuple[float, ...], name: str) -> tuple[float, ...]:
    g = tuple(float(v) for v in grid)
    if len(g) < 3 or any(v <= 0 or not math.isfinite(v) for v in g) or any(b <= a for a, b in pairwise(g)):
        raise ValueError(f"{name}: grid {list(grid)} must hold >= 3 positive, strictly increasing factors")
    return g


def tune(name: str, clean: np.ndarray, noisy: np.ndarray, sigma: float, protocol: str = PRIMARY,
         grid: tuple[float, ...] | None = None, max_widenings: int = MAX_WIDENINGS, strict: bool = True,
         workers: int = 1, progress: bool = False) -> Tuned:
    """Choose a method's factor on validation images, widening the grid until the choice is interior.

    The rule: score every grid factor by mean PSNR (dB) over the images; while the best factor is the smallest
    (largest) one tried, add one factor a grid step below (above) it, the step being the ratio of the two
    outermost factors on that side, at most ``max_widenings`` times in all. Ties go to the smaller factor.

    Args:
        name: a key of ``METHODS``.
        clean, noisy: (K, H, W) validation images on the [0, 1] scale, clean and with ``protocol`` noise at
            ``sigma``; never test images.
        sigma: the noise sd on the [0, 1] scale.
        protocol: the noise protocol (``clipped8`` / ``rician``: outputs are debiased, see :func:`denoise`).
        grid: starting factors (default the method's grid under ``protocol``, see ``Method.under``).
        max_widenings: the most grid extensions, >= 0.
        strict: raise when the choice stays at an edge; False: warn and return ``interior=False``.
        workers, progress: as :func:`denoise`.
    Returns:
        The :class:`Tuned` result.
    Raises:
        GridEdgeError: strict and the best factor is still at an edge after ``max_widenings`` extensions.
        ValueError: an unknown method or protocol, a bad grid, or clean / noisy of different shapes.
    """
    m = method(name)
    check_protocol(protocol)
    g = list(_check_grid(grid if grid is not None else m.under(protocol)[1], name))
    clean, noisy = np.asarray(clean, dtype=np.float64), np.asarray(noisy, dtype=np.float64)
    if clean.shape != noisy.shape or clean.ndim != 3:
        raise ValueError(f"{name}: clean {clean.shape} and noisy {noisy.shape} must be the same (K, H, W) stack")
    scores: dict[float, float] = {}

    def score(factor: float) -> None:
        out = denoise(name, noisy, sigma, factor, protocol, workers=workers, progress=progress)
        scores[factor] = float(psnr(out, clean).mean())

    for f in g:
        score(f)
    widenings = 0
    while True:
        tried = sorted(scores)
        best = max(tried, key=lambda f: (scores[f], -f))
        at_low, at_high = best == tried[0], best == tried[-1]
        if not (at_low or at_high) or widenings >= max_widenings:
            break
        new = tried[0] ** 2 / tried[1] if at_low else tried[-1] ** 2 / tried[-2]
        score(float(f"{new:.4g}"))
        widenings += 1
    result = Tuned(name, float(sigma), protocol, best, dict(sorted(scores.items())), widenings,
                   not (at_low or at_high), len(clean))
    if not result.interior:
        msg = (f"{name} at sigma {sigma:g} ({protocol}): the best factor {best:g} is at the "
               f"{'low' if at_low else 'high'} edge of the grid {sorted(scores)} after {widenings} widenings "
               f"(mean validation PSNR {result.as_dict()['scores_db']}); widen the method's grid")
        if strict:
            raise GridEdgeError(msg)
        warnings.warn(msg, stacklevel=2)
    return result


__all__ = [
    "GRID_RATIO",
    "MAX_WIDENINGS",
    "METHODS",
    "GridEdgeError",
    "Method",
    "Tuned",
    "clipped_mean",
    "debias_clipped",
    "debias_rician",
    "denoise",
    "geometric_grid",
    "method",
    "tune",
]
