"""tuneae: the best autoencoder for brain-tumour MRI reconstruction and denoising, by distributed search.

Model kinds: ``ae`` (autoencoder), ``vae`` (variational), ``dae`` (denoising AE), all through a ``latent_dim``
bottleneck, and the U-Nets ``unet`` and ``dunet`` (skip connections at every scale, Ronneberger et al. 2015;
``dunet`` is a denoising U-Net: noisy input, clean target).

Modules, in the order data flows: :mod:`tuneae.config` (typed settings, presets), :mod:`tuneae.data` (sources,
cache, de-duplication, splits), :mod:`tuneae.models` (the five kinds), :mod:`tuneae.train` (pure PyTorch loop and
metrics), :mod:`tuneae.checkpoint` (self-describing checkpoints), :mod:`tuneae.trainable` (Ray Train glue),
:mod:`tuneae.search` (package: command line, Ray session, Tune + Optuna + ASHA; ``python -m tuneae.search``),
:mod:`tuneae.run` (package: the run layer; typed summary.json / trials.csv / finalfit.json, the best-trial and
best-seed rules, the one reader of run folders, model and data reloading), and on top of it, side by side,
:mod:`tuneae.finalfit` (the best configurations trained again over seeds; ``python -m tuneae.finalfit``) and
:mod:`tuneae.report` (package: post-hoc report; ``python -m tuneae.report``). Beside them:
:mod:`tuneae.files` (the atomic writer), :mod:`tuneae.layout` (the run layout: experiment and results folders) and
:mod:`tuneae.tracking` (all of W&B).
"""

__version__ = "0.1.0"

import os as _os
import tempfile as _tempfile

# Matplotlib (the report's figures) keeps its font cache in ~/.cache/matplotlib and creates ~/.config/matplotlib
# unless told otherwise; tuneae writes nothing under $HOME that the user did not ask for, so its default goes to
# the temp dir. A user's own MPLCONFIGDIR wins.
_os.environ.setdefault("MPLCONFIGDIR", _os.path.join(_tempfile.gettempdir(), "tuneae-matplotlib"))
