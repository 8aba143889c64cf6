"""Images in, uint8 arrays out: sources and layouts, decoding (cached), duplicates by content, a leakage-free
split by group, a manifest, and the noise of the denoising kinds.

Sources, chosen by ``DataConfig.source``:

* a local folder in one of three layouts (``LAYOUTS``): ``train/`` + ``test/`` class folders, class folders
  without a split, or one flat folder of unlabeled images; read by our own directory walk;
* a Hugging Face hub id (default ``benschill/brain-tumor-collection``), read through the hub's parquet export;
* ``"phantom"``: synthetic head phantoms (ellipses), no files, no network.

Every image becomes grey slices in [0, 1], padded to a square and resized to ``image_size``
(:mod:`tuneae.data.decode`). Copies, exact (equal pixels) or near (perceptual hash), form groups
(:mod:`tuneae.data.duplicates`); groups holding two classes are left out; one image per group is kept; groups
are split by class into train / val / test so that none straddles two splits (:mod:`tuneae.data.splits`). The
manifest (:mod:`tuneae.data.manifest`) records where every file went and reproduces the split.

``python -m tuneae.data PATH`` prints the summary and writes the manifest without training anything.
"""
from tuneae.data.decode import PREPROCESS_VERSION
from tuneae.data.duplicates import MAX_DISTANCE
from tuneae.data.errors import DataError
from tuneae.data.manifest import MANIFEST_COLUMNS, read_manifest, write_manifest
from tuneae.data.phantoms import PHANTOM_CLASSES, phantom_images
from tuneae.data.pipeline import check_source, load_splits
from tuneae.data.sources import IMAGE_EXTENSIONS, LAYOUTS, canonical_class
from tuneae.data.splits import Splits
from tuneae.data.summary import format_summary
from tuneae.data.tensors import to_float

__all__ = [
    "IMAGE_EXTENSIONS",
    "LAYOUTS",
    "MANIFEST_COLUMNS",
    "MAX_DISTANCE",
    "PHANTOM_CLASSES",
    "PREPROCESS_VERSION",
    "DataError",
    "Splits",
    "canonical_class",
    "check_source",
    "format_summary",
    "load_splits",
    "phantom_images",
    "read_manifest",
    "to_float",
    "write_manifest",
]
