"""tuneae: the best autoencoder for brain-tumour MRI reconstruction and denoising, by distributed search.

Modules, in the order data flows: :mod:`tuneae.config` (typed settings, presets), :mod:`tuneae.data` (sources,
cache, de-duplication, splits), :mod:`tuneae.models` (AE, VAE, denoising AE), :mod:`tuneae.train` (pure PyTorch
loop and metrics), :mod:`tuneae.trainable` (Ray Train glue), :mod:`tuneae.search` (Ray Tune, Optuna, ASHA, W&B;
``python -m tuneae.search``), :mod:`tuneae.checkpoint` (self-describing checkpoints), :mod:`tuneae.report`
(post-hoc report; ``python -m tuneae.report``).
"""

__version__ = "0.1.0"
