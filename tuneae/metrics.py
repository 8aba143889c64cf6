"""Image quality per image (PSNR, SSIM as Wang et al. 2004) and bootstrap intervals over images.

Every number the report states about a test set is a mean over images with a 95% percentile-bootstrap interval
(:func:`mean_interval`); every claim that one method does better than another on the same images is a paired
difference with its interval (:func:`paired_difference`), and "beats" holds only where that interval excludes 0
(:func:`beats`). The resampling is seeded (``BOOTSTRAP_SEED``), so a report's intervals are reproducible.

Sources: PSNR for data range 1; SSIM: Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality
assessment: from error visibility to structural similarity", IEEE Trans. Image Processing 13(4), 600-612, 2004,
through scikit-image's ``structural_similarity`` with the paper's settings; bootstrap: B. Efron, R. Tibshirani,
"An Introduction to the Bootstrap", 1993, ch. 13 (percentile interval), through ``scipy.stats.bootstrap``;
cluster bootstrap (``groups``: whole groups of correlated images, e.g. the slices of one scan, resampled together):
A. C. Davison, D. V. Hinkley, "Bootstrap Methods and their Application", 1997, section 3.8 (resampling the
clusters, "strategy 1", without the second stage), and C. A. Field, A. H. Welsh, "Bootstrapping clustered data",
JASA 102(479), 2007 (the cluster bootstrap is consistent when the clusters are independent; resampling the images
of correlated clusters as if independent understates the variance).
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
        groups: the clusters resampled (cluster bootstrap; for an unpaired difference, both samples' together),
            None when the images were resampled one by one.
    """

    mean: float
    low: float
    high: float
    n: int
    confidence: float = CONFIDENCE
    n_resamples: int = BOOTSTRAP_RESAMPLES
    groups: int | None = None

    def as_dict(self) -> dict[str, float | int]:
        """The fields as a plain dict (for ``metrics.json``); ``groups`` only for a cluster bootstrap."""
        d = asdict(self)
        if self.groups is None:
            del d["groups"]
        return d

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


def _check_settings(confidence: float, n_resamples: int) -> None:
    if not 0 < confidence < 1 or n_resamples < 1:
        raise ValueError(f"confidence={confidence} must lie in (0, 1) and n_resamples={n_resamples} be >= 1")


def _clusters(groups: np.ndarray, n: int, what: str) -> np.ndarray:
    """(N,) int64 in [0, G): the cluster of each value, from any (N,) array of group ids (ints or strings)."""
    g = np.asarray(groups)
    if g.shape != (n,):
        raise ValueError(f"{what}: groups has shape {g.shape}; need one group id per value, shape ({n},)")
    if g.dtype.kind in "fc" and not np.isfinite(g).all():
        raise ValueError(f"{what}: groups holds {int((~np.isfinite(g)).sum())} ids that are not finite")
    _, inverse = np.unique(g, return_inverse=True)
    inverse = inverse.reshape(-1)
    if inverse.max() < 1:
        raise ValueError(f"{what}: groups holds a single group; a cluster bootstrap needs at least 2")
    return inverse


def _cluster_means(v: np.ndarray, cluster: np.ndarray, n_resamples: int,
                   rng: np.random.Generator) -> np.ndarray:
    """(B,) means over all values of G clusters drawn with replacement from the G clusters, B = ``n_resamples``.

    Each resample's mean weights a cluster by its size: sum of the drawn clusters' sums over their total count, the
    plain mean over the images of the drawn clusters (Davison & Hinkley 1997, section 3.8).
    """
    sums = np.bincount(cluster, weights=v)  # (G,)
    sizes = np.bincount(cluster).astype(np.float64)  # (G,) images per cluster
    g, out = len(sums), np.empty(n_resamples)
    step = max(1, 4_000_000 // g)  # about 32 MB of drawn indices at a time
    for start in range(0, n_resamples, step):
        idx = rng.integers(0, g, size=(min(step, n_resamples - start), g))  # (b, G) clusters drawn
        out[start:start + len(idx)] = sums[idx].sum(1) / sizes[idx].sum(1)
    return out


def _percentiles(stats: np.ndarray, confidence: float) -> tuple[float, float]:
    """The percentile interval of resampled statistics (linear interpolation, as ``scipy.stats.bootstrap``)."""
    low, high = np.percentile(stats, [50 * (1 - confidence), 50 * (1 + confidence)])
    return float(low), float(high)


def mean_interval(values: np.ndarray, confidence: float = CONFIDENCE, n_resamples: int = BOOTSTRAP_RESAMPLES,
                  seed: int = BOOTSTRAP_SEED, groups: np.ndarray | None = None) -> Interval:
    """The mean of per-image values and its percentile-bootstrap interval over images (or over groups of them).

    Without ``groups``, images are resampled with replacement ``n_resamples`` times (``scipy.stats.bootstrap``,
    ``method="percentile"``, seeded). With ``groups`` (the cluster bootstrap, Davison & Hinkley 1997, section 3.8;
    Field & Welsh 2007), whole groups are resampled instead: each resample draws G of the G groups with replacement
    and takes the mean over all images of the drawn groups, so slices of one scan, which are alike, count as one
    draw and the interval widens by as much as they are correlated. Either way the interval is the
    (1 - confidence) / 2 and (1 + confidence) / 2 quantiles of the resampled means. Values that are all equal give
    the degenerate interval [mean, mean].

    Args:
        values: (N,) per-image values, N >= 2, all finite (e.g. PSNR in dB).
        confidence: nominal coverage in (0, 1).
        n_resamples: resamples, >= 1.
        seed: seed of the resampling generator (``numpy.random.default_rng``).
        groups: (N,) group id of each image (e.g. its scan group; any ints or strings), at least 2 distinct ids;
            None resamples images one by one.
    Returns:
        The :class:`Interval` (``groups``: the number of groups, or None).
    Raises:
        ValueError: fewer than 2 values, a non-finite value, a bad confidence / n_resamples, or ``groups`` of
            another length than ``values``, with a non-finite id or with a single group.
    """
    v = _values(values, "mean_interval")
    _check_settings(confidence, n_resamples)
    cluster = None if groups is None else _clusters(groups, len(v), "mean_interval")
    n_groups = None if cluster is None else int(cluster.max()) + 1
    mean = float(v.mean())
    if np.ptp(v) == 0:  # every resample has the same mean; scipy would warn about degenerate data
        return Interval(mean, mean, mean, len(v), confidence, n_resamples, n_groups)
    rng = np.random.default_rng(seed)
    if cluster is not None:
        low, high = _percentiles(_cluster_means(v, cluster, n_resamples, rng), confidence)
        return Interval(mean, low, high, len(v), confidence, n_resamples, n_groups)
    from scipy import stats

    res = stats.bootstrap((v,), np.mean, n_resamples=n_resamples, confidence_level=confidence,
                          method="percentile", vectorized=True, rng=rng)
    ci = res.confidence_interval
    return Interval(mean, float(ci.low), float(ci.high), len(v), confidence, n_resamples)


def paired_difference(a: np.ndarray, b: np.ndarray, confidence: float = CONFIDENCE,
                      n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
                      groups: np.ndarray | None = None) -> Interval:
    """Mean of the per-image difference ``a - b`` (method A minus method B on the same images) with its interval.

    The pairs are resampled together (the paired bootstrap), so the variation that both methods share, from easy
    and hard images, cancels: the interval is that of :func:`mean_interval` of ``a - b``, with ``groups`` that of
    the cluster bootstrap (whole groups of pairs resampled; the statistic the mean per-image difference over the
    drawn groups' images).

    Args:
        a, b: (N,) per-image values of two methods on the same N images in the same order, N >= 2.
        confidence, n_resamples, seed: as :func:`mean_interval`.
        groups: (N,) group id of each image (the same images, so one array for both), or None: as
            :func:`mean_interval`.
    Returns:
        The :class:`Interval` of mean(a - b); positive means A scores higher.
    Raises:
        ValueError: a and b differ in shape, or as :func:`mean_interval`.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired_difference: a {a.shape} and b {b.shape} must hold the same images")
    return mean_interval(a - b, confidence, n_resamples, seed, groups)


def unpaired_difference(a: np.ndarray, b: np.ndarray, confidence: float = CONFIDENCE,
                        n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
                        groups: tuple[np.ndarray, np.ndarray] | None = None) -> Interval:
    """mean(a) - mean(b) for two different sets of images, with its percentile-bootstrap interval.

    Each set is resampled on its own (``scipy.stats.bootstrap`` with two samples, ``paired=False``): use it to
    compare groups of images, e.g. a per-image gain on the tumour classes against the same gain on the no-tumour
    class. With ``groups``, each set's groups are resampled on their own instead (the cluster bootstrap of
    :func:`mean_interval`, within each sample; the sets should share no group, as the classes of a split share no
    scan).

    Args:
        a: (N,) per-image values of one group, N >= 2; b: (M,) of the other, M >= 2.
        confidence, n_resamples, seed: as :func:`mean_interval`.
        groups: ``(groups_a, groups_b)``, (N,) and (M,) group ids of the images of ``a`` and of ``b``, each with at
            least 2 distinct ids; None resamples images one by one.
    Returns:
        The :class:`Interval` of mean(a) - mean(b) (``n``: N + M images; ``groups``: the two sets' groups summed).
    Raises:
        ValueError: as :func:`mean_interval`, for either group; ``groups`` not a pair.
    """
    a, b = _values(a, "unpaired_difference (a)"), _values(b, "unpaired_difference (b)")
    _check_settings(confidence, n_resamples)
    if groups is not None and len(groups) != 2:
        raise ValueError(f"unpaired_difference: groups must be a pair (groups of a, groups of b), got {len(groups)}")
    clusters = None if groups is None else (_clusters(groups[0], len(a), "unpaired_difference (a)"),
                                            _clusters(groups[1], len(b), "unpaired_difference (b)"))
    n_groups = None if clusters is None else sum(int(c.max()) + 1 for c in clusters)
    diff = float(a.mean() - b.mean())
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        return Interval(diff, diff, diff, len(a) + len(b), confidence, n_resamples, n_groups)
    rng = np.random.default_rng(seed)
    if clusters is not None:
        resampled = _cluster_means(a, clusters[0], n_resamples, rng) - _cluster_means(b, clusters[1], n_resamples,
                                                                                         rng)  # (B,)
        low, high = _percentiles(resampled, confidence)
        return Interval(diff, low, high, len(a) + len(b), confidence, n_resamples, n_groups)

    def stat(x, y, axis=-1):
        return np.mean(x, axis=axis) - np.mean(y, axis=axis)

    from scipy import stats

    res = stats.bootstrap((a, b), stat, n_resamples=n_resamples, confidence_level=confidence, method="percentile",
                          vectorized=True, paired=False, rng=rng)
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
