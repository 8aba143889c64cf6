"""Image quality per image (PSNR, SSIM as Wang et al. 2004) and bootstrap intervals over images.

Every number the report states about a test set is a mean over images with a 95% percentile-bootstrap interval
(:func:`mean_interval`); every claim that one method does better than another on the same images is a paired
difference with its interval (:func:`paired_difference`), and "beats" holds only where that interval excludes 0
(:func:`beats`). The resampling is seeded (``BOOTSTRAP_SEED``), so a report's intervals are reproducible.

Sources: PSNR for data range 1; SSIM: Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality
assessment: from error visibility to structural similarity", IEEE Trans. Image Processing 13(4), 600-612, 2004,
through scikit-image's ``structural_similarity`` with the paper's settings; bootstrap: B. Efron, R. Tibshirani,
"An Introduction to the Bootstrap", 1993, ch. 13 (percentile interval), through ``scipy.stats.bootstrap``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

# scipy.stats and scikit-image are imported where used: every Ray worker of a trial imports this module through
# tuneae.train, and the two cost about 0.6 s of each worker's start-up (python -X importtime).

DATA_RANGE = 1.0
"""Images are compared on the [0, 1] scale: the peak of PSNR and the dynamic range L of SSIM."""
MSE_FLOOR = 1e-10
"""MSE floor of PSNR (identical images score 100 dB instead of infinity), as ``tuneae.train.psnr_per_image``."""
SSIM_SETTINGS = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False, "data_range": DATA_RANGE}
"""Wang et al. 2004, section III-C: an 11x11 circular-symmetric Gaussian window of standard deviation 1.5 pixels
(scikit-image truncates at 3.5 sd: radius 5), local statistics with population (1/N) covariance, constants
K1 = 0.01, K2 = 0.03 (scikit-image's defaults), dynamic range L = 1. The SSIM of an image is the mean of its SSIM
map over the pixels whose window fits inside the image (the paper's "valid" region). Wang's reference code also
down-samples images larger than 256 px by round(min(H, W) / 256); at this project's 128 px that factor is 1.
scikit-image's default call (7x7 uniform window, sample covariance) is a different measure and is not used."""
CONFIDENCE = 0.95
"""Coverage of every bootstrap interval."""
BOOTSTRAP_RESAMPLES = 10_000
"""Bootstrap resamples per interval: the Monte Carlo error of a 2.5% / 97.5% percentile is then about 1% of the
interval's half-width (Efron & Tibshirani 1993, section 19.3 recommend >= 1000 for percentile intervals)."""
BOOTSTRAP_SEED = 0
"""Seed of the resampling (``numpy.random.default_rng``)."""


def _pair(output: np.ndarray, clean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Check and convert an (output, clean) pair of image stacks to float64 (N, H, W)."""
    o, c = np.asarray(output, dtype=np.float64), np.asarray(clean, dtype=np.float64)
    if o.shape != c.shape or o.ndim != 3:
        raise ValueError(f"output {o.shape} and clean {c.shape}: need two image stacks of the same shape (N, H, W)")
    return o, c


def psnr(output: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """Peak signal-to-noise ratio of each image for data range 1: 10 log10(1 / MSE_i).

    Args:
        output: (N, H, W) float, the estimate (on the [0, 1] scale; values outside are allowed and count as error).
        clean: (N, H, W) float in [0, 1], the reference.
    Returns:
        (N,) PSNR in dB (MSE floored at ``MSE_FLOOR``: at most 100 dB).
    Raises:
        ValueError: the stacks differ in shape or are not (N, H, W).
    """
    o, c = _pair(output, clean)
    mse = np.maximum(((o - c) ** 2).reshape(len(o), -1).mean(1), MSE_FLOOR)  # (N,)
    return 10.0 * np.log10(DATA_RANGE**2 / mse)


def ssim(output: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """Structural similarity of each image exactly as Wang et al. 2004 define it (see ``SSIM_SETTINGS``).

    Args:
        output: (N, H, W) float, the estimate on the [0, 1] scale.
        clean: (N, H, W) float in [0, 1], the reference; H and W at least 11 (the window).
    Returns:
        (N,) SSIM in [-1, 1] (1: identical).
    Raises:
        ValueError: the stacks differ in shape, are not (N, H, W), or the images are smaller than the window.
    """
    o, c = _pair(output, clean)
    if min(o.shape[1:]) < 11:
        raise ValueError(f"images of {o.shape[1]}x{o.shape[2]} px: SSIM's 11x11 Gaussian window needs at least 11 px")
    from skimage.metrics import structural_similarity

    return np.array([structural_similarity(a, b, **SSIM_SETTINGS) for a, b in zip(o, c)])


def image_metrics(output: np.ndarray, clean: np.ndarray) -> dict[str, np.ndarray]:
    """MSE, PSNR and SSIM of each image (see :func:`psnr`, :func:`ssim`).

    Args:
        output, clean: (N, H, W) float, estimate and reference on the [0, 1] scale.
    Returns:
        ``{"mse": (N,) per pixel on the [0, 1] scale, "psnr": (N,) dB, "ssim": (N,) in [-1, 1]}``.
    Raises:
        ValueError: as :func:`ssim`.
    """
    o, c = _pair(output, clean)
    return {"mse": ((o - c) ** 2).reshape(len(o), -1).mean(1), "psnr": psnr(o, c), "ssim": ssim(o, c)}


@dataclass(frozen=True)
class Interval:
    """A mean over images with its percentile-bootstrap interval.

    Attributes:
        mean: the sample mean (of the values, or of the paired differences), in the values' unit (dB for PSNR).
        low, high: the interval's bounds, same unit.
        n: images.
        confidence: the interval's nominal coverage (0.95).
        n_resamples: bootstrap resamples drawn.
    """

    mean: float
    low: float
    high: float
    n: int
    confidence: float = CONFIDENCE
    n_resamples: int = BOOTSTRAP_RESAMPLES

    def as_dict(self) -> dict[str, float | int]:
        """The fields as a plain dict (for ``metrics.json``)."""
        return asdict(self)

    def excludes_zero(self) -> bool:
        """Whether 0 lies outside [low, high]."""
        return self.low > 0 or self.high < 0


def _values(values: np.ndarray, what: str) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or len(v) < 2:
        raise ValueError(f"{what}: need a 1-D array of at least 2 per-image values, got shape {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError(f"{what}: {int((~np.isfinite(v)).sum())} of {len(v)} values are not finite")
    return v


def mean_interval(values: np.ndarray, confidence: float = CONFIDENCE, n_resamples: int = BOOTSTRAP_RESAMPLES,
                  seed: int = BOOTSTRAP_SEED) -> Interval:
    """The mean of per-image values and its percentile-bootstrap interval over images.

    Images are resampled with replacement ``n_resamples`` times (``scipy.stats.bootstrap``, ``method="percentile"``,
    seeded); the interval is the (1 - confidence) / 2 and (1 + confidence) / 2 quantiles of the resampled means.
    Values that are all equal give the degenerate interval [mean, mean].

    Args:
        values: (N,) per-image values, N >= 2, all finite (e.g. PSNR in dB).
        confidence: nominal coverage in (0, 1).
        n_resamples: resamples, >= 1.
        seed: seed of the resampling generator.
    Returns:
        The :class:`Interval`.
    Raises:
        ValueError: fewer than 2 values, a non-finite value, or a bad confidence / n_resamples.
    """
    v = _values(values, "mean_interval")
    if not 0 < confidence < 1 or n_resamples < 1:
        raise ValueError(f"confidence={confidence} must lie in (0, 1) and n_resamples={n_resamples} be >= 1")
    mean = float(v.mean())
    if np.ptp(v) == 0:  # every resample has the same mean; scipy would warn about degenerate data
        return Interval(mean, mean, mean, len(v), confidence, n_resamples)
    from scipy import stats

    res = stats.bootstrap((v,), np.mean, n_resamples=n_resamples, confidence_level=confidence,
                          method="percentile", vectorized=True, rng=np.random.default_rng(seed))
    ci = res.confidence_interval
    return Interval(mean, float(ci.low), float(ci.high), len(v), confidence, n_resamples)


def paired_difference(a: np.ndarray, b: np.ndarray, confidence: float = CONFIDENCE,
                      n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> Interval:
    """Mean of the per-image difference ``a - b`` (method A minus method B on the same images) with its interval.

    The pairs are resampled together (the paired bootstrap), so the variation that both methods share, from easy
    and hard images, cancels: the interval is that of :func:`mean_interval` of ``a - b``.

    Args:
        a, b: (N,) per-image values of two methods on the same N images in the same order, N >= 2.
        confidence, n_resamples, seed: as :func:`mean_interval`.
    Returns:
        The :class:`Interval` of mean(a - b); positive means A scores higher.
    Raises:
        ValueError: a and b differ in shape, or as :func:`mean_interval`.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired_difference: a {a.shape} and b {b.shape} must hold the same images")
    return mean_interval(a - b, confidence, n_resamples, seed)


def unpaired_difference(a: np.ndarray, b: np.ndarray, confidence: float = CONFIDENCE,
                        n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> Interval:
    """mean(a) - mean(b) for two different sets of images, with its percentile-bootstrap interval.

    Each set is resampled on its own (``scipy.stats.bootstrap`` with two samples, ``paired=False``): use it to
    compare groups of images, e.g. a per-image gain on the tumour classes against the same gain on the no-tumour
    class.

    Args:
        a: (N,) per-image values of one group, N >= 2; b: (M,) of the other, M >= 2.
        confidence, n_resamples, seed: as :func:`mean_interval`.
    Returns:
        The :class:`Interval` of mean(a) - mean(b) (``n``: N + M images).
    Raises:
        ValueError: as :func:`mean_interval`, for either group.
    """
    a, b = _values(a, "unpaired_difference (a)"), _values(b, "unpaired_difference (b)")
    if not 0 < confidence < 1 or n_resamples < 1:
        raise ValueError(f"confidence={confidence} must lie in (0, 1) and n_resamples={n_resamples} be >= 1")
    diff = float(a.mean() - b.mean())
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        return Interval(diff, diff, diff, len(a) + len(b), confidence, n_resamples)

    def stat(x, y, axis=-1):
        return np.mean(x, axis=axis) - np.mean(y, axis=axis)

    from scipy import stats

    res = stats.bootstrap((a, b), stat, n_resamples=n_resamples, confidence_level=confidence, method="percentile",
                          vectorized=True, paired=False, rng=np.random.default_rng(seed))
    ci = res.confidence_interval
    return Interval(diff, float(ci.low), float(ci.high), len(a) + len(b), confidence, n_resamples)


def beats(difference: Interval) -> bool:
    """The "beats" rule: method A beats method B only if the interval of mean(A - B) lies wholly above 0.

    Args:
        difference: from :func:`paired_difference` of a higher-is-better metric (PSNR, SSIM).
    Returns:
        True when ``difference.low > 0``; an interval that contains 0 means no claim either way.
    """
    return difference.low > 0


def verdict(difference: Interval, a: str = "A", b: str = "B") -> str:
    """One word for a paired difference of a higher-is-better metric: ``"{a} better"``, ``"{b} better"`` or
    ``"no clear difference"`` (the interval contains 0)."""
    if beats(difference):
        return f"{a} better"
    if difference.high < 0:
        return f"{b} better"
    return "no clear difference"


__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "BOOTSTRAP_SEED",
    "CONFIDENCE",
    "DATA_RANGE",
    "SSIM_SETTINGS",
    "Interval",
    "beats",
    "image_metrics",
    "mean_interval",
    "paired_difference",
    "psnr",
    "ssim",
    "unpaired_difference",
    "verdict",
]
