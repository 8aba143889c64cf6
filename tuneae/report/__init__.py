"""The report of a finished search: ``python -m tuneae.report RUN``.

Each model kind's best trial is rebuilt from its checkpoint alone and measured on the held-out TEST split, which the
search never saw: reconstruction MSE / PSNR / SSIM per image (overall and per class); denoising at noise sd sigma in
{0.05, 0.1, 0.2, 0.3} under three protocols (:mod:`tuneae.noise`: additive white Gaussian noise, not clipped, the
primary; the same clipped to [0, 1] and quantized to 8 bits; Rician, the magnitude of complex Gaussian noise)
against classical denoisers (:mod:`tuneae.classical`: non-local means, total variation, wavelet shrinkage, BM3D)
whose parameters are tuned on VALIDATION images over grids with an interior choice; the feature maps of every
encoder and decoder layer with a receptive field measured from the model itself; VAE samples and a latent
interpolation; PCA at each bottleneck model's code size (``latent_dim`` components, fitted on the TRAINING split
only, :mod:`tuneae.pca`), the linear code a learned one must beat. Every test mean carries a 95%
percentile-bootstrap interval that resamples whole scan groups of test images (a cluster bootstrap, since slices of
one scan are alike; :func:`tuneae.metrics.mean_interval`); every learned-minus-classical claim is a paired
difference with its interval, and "beats" is said only where that interval excludes 0. The best learned model and
the classical comparator at each sigma, and the best bottleneck model, are chosen on validation images, never on
test. After a final fit of two or more seeds, each target's headline is the mean over seeds with a t-interval over
seeds, judged on it, the best-validation seed beside it. SSIM is Wang et al. 2004's (Gaussian window, sd 1.5). Each
model is also re-evaluated on the validation split exactly as the search did, to check that the checkpoint
reproduces the reported ``val/loss``. A last "Search" section draws what the searcher did, from its saved Optuna
study: every trial's learning curve with ASHA's rungs, the objective against each hyperparameter, fANOVA
importances.

``RUN`` is a results folder ``results/<name>`` (with ``summary.json``) or an experiment folder ``<storage>/<name>``
(per-kind Tune experiments ``ae/``, ``vae/``, ... of trial folders with ``result.json``). Outputs go to ``--out``
(default ``RUN/report`` for a results folder, ``results/<name>/report`` for an experiment folder), each file written
atomically: ``report.md`` (headline tables, figures by relative link), ``metrics.json`` (every number),
``reconstruction.csv`` (with the ``pca-<k>`` rows), ``pca_comparisons.csv``, ``denoising.csv``, ``comparisons.csv``,
``classical_tuning.csv``, ``denoising_classes.csv``, ``layers.csv`` and small PNGs (80 dpi; the folder stays under 5
MB). The same figures and tables go to W&B (:mod:`tuneae.tracking`; the search's project and mode, offline unless
``WANDB_API_KEY`` is set), whose files are written to ``<experiment folder>/wandb`` beside the search's own W&B
runs: outside ``results/`` (which is committed) and outside the report folder. W&B trouble only warns.

Run discovery, model and data reloading and the reload check are the run layer's (:func:`tuneae.run.find_run`,
:mod:`tuneae.run.reload`); the report's own modules, in the order it uses them: :mod:`.metrics` (outputs; summaries
with intervals), :mod:`.statistics` (selection on validation, paired differences, target status), :mod:`.denoising`
(both noise protocols, every denoiser), :mod:`.layers` (receptive fields, layer roles), :mod:`.plots`, :mod:`.pca`
(PCA at each code size), :mod:`.targets` (the project's targets) with :mod:`.versus` (the margin targets against
PCA, BM3D, DnCNN and the default recipe), :mod:`.tables` (CSV rows), :mod:`.markdown`
(report.md), :mod:`.search_plots` (the Search section), :mod:`.make` (``make_report`` and ``main``).
"""
from tuneae.report.make import main, make_report
from tuneae.run import RunError, find_run
from tuneae.run.find import Run, Trial

ReportError = RunError
"""The report's error: the run layer's :class:`tuneae.run.RunError` (one class), for a run that cannot be reported."""

__all__ = ["ReportError", "Run", "Trial", "find_run", "main", "make_report"]
