"""Typed configuration: one root :class:`Config` of four sections (search, data, model, train), and the presets.

Every setting is one field of a frozen dataclass with a docstring under it; that docstring is also the help of its
command-line flag (:func:`field_docs`, :func:`flag`), so a setting is declared once. The dataclass defaults are the
seed project's recipe (its sweep's best AE on its own stack): a trial with no setting changed trains that recipe,
and the search's first trial is that recipe (:func:`seed_recipe`). Ray and W&B receive the flat ``section.field``
dict (:meth:`Config.flat`); a trainable rebuilds the root config from it once, at the top (:func:`from_flat`).
"""
from __future__ import annotations

import ast
import functools
import inspect
import itertools
import textwrap
import typing
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

DEFAULT_HUB_ID = "benschill/brain-tumor-collection"
"""The Hugging Face hub data set the seed project used (read through its parquet export)."""

MODEL_KINDS = ("ae", "vae", "dae", "unet", "dunet", "dncnn")
"""Model kinds known to :mod:`tuneae.models`."""


def flag(default: Any = None, name: str = "", *, space: bool = False, choices: tuple = (), metavar: str = "",
         also: tuple[str, ...] = (), default_factory: Any = None) -> Any:
    """A dataclass field that ``python -m tuneae.search`` sets from the command line.

    The flag is ``--<field-name>`` with ``_`` as ``-`` (``--no-<name>`` for a bool field that defaults to True),
    its help the field's docstring (:func:`field_docs`), its type the field's (:mod:`tuneae.search.cli` builds the
    parser from these fields alone).

    Args:
        default: the field's default (the seed project's recipe where it has one).
        name: another flag name, e.g. ``"--data"`` for ``data.source``.
        space: the flag takes one or more values that replace this key's search-space choices for every kind.
        choices: the values the flag accepts (empty: any value of the field's type).
        metavar: how ``--help`` names the value.
        also: other ``section.field`` keys the flag sets to the same value (``--seed`` seeds data and training).
        default_factory: as ``dataclasses.field``'s, instead of ``default``.
    Returns:
        A ``dataclasses.field`` whose ``metadata["flag"]`` holds these settings.
    """
    meta = {"flag": {"name": name, "space": space, "choices": tuple(choices), "metavar": metavar,
                     "also": tuple(also)}}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how they are prepared."""

    source: str = flag(DEFAULT_HUB_ID, "--data", metavar="SOURCE")
    """A Hugging Face hub id (read through its parquet export), a local folder, or ``phantom`` (synthetic head
    phantoms). A folder holds split folders (``train/<class>/<image>``, ``test/<class>/<image>``, ``val/``
    optional), class folders without a split (``<class>/<image>``), or one flat folder of unlabeled images; files:
    PNG, JPEG, TIFF and other rasters, DICOM, NIfTI (``.nii`` / ``.nii.gz``, every non-empty axial slice)."""
    image_size: int = flag(128)
    """Side of the square model input in pixels, divisible by 2**depth of every model searched (32 at depth 5);
    ``model.image_size`` follows it."""
    split: str = flag("group", choices=("group", "original"))
    """``group``: pool the de-duplicated images and split their duplicate groups, stratified by class, into train /
    val / test (no group in two splits); ``original``: the folders' own split, cross-split duplicates removed."""
    val_fraction: float = 0.1
    """Fraction of each class's images in validation (``original``: held out from the folders' train images)."""
    test_fraction: float = 0.1
    """Fraction of each class's images in test (``group`` split only)."""
    manifest: str = ""
    """A manifest CSV written by an earlier run (``results/<name>/manifest.csv``): reproduce its split exactly."""
    near_distance: int = 9
    """Largest Hamming distance (bits of 256) between the difference hashes of two images that count as copies
    (resized, cropped by a few pixels, recompressed); -1 matches equal pixels only (see tuneae.data.duplicates)."""
    seed: int = 0
    """Seed of the split and of the synthetic phantoms."""
    cache_dir: str = "runs/cache"
    """Folder of the decoded-image cache (uint8 arrays keyed by content, size and preprocessing)."""
    skip_unreadable: bool = flag(False)
    """Count and skip unreadable images instead of raising ``DataError``."""
    phantom_count: int = 96
    """Number of synthetic head phantoms (train + test) when ``source == "phantom"``."""
    # How files are decoded into grey slices (tuneae.images; rules in its module docstring).
    slice_plane: str = "axial"
    """Plane of the 2D slices cut from NIfTI volumes after reorientation to RAS+: ``axial``, ``coronal`` or
    ``sagittal``. DICOM frames and TIFF pages keep their stored (acquisition) plane."""
    window_low: float = 0.5
    """Percentile (in percent) of a 16-bit, float, DICOM or NIfTI image's (or volume's) values mapped to 0;
    8-bit images are divided by 255, never windowed."""
    window_high: float = 99.5
    """Percentile (in percent) mapped to 1; values beyond either percentile are clipped."""
    min_foreground: float = 0.01
    """A slice of a volume is kept when at least this fraction of its pixels exceeds 0.05 after windowing
    (0 keeps every slice); a file that is one 2D image always keeps it."""
    # Scans, near copies and left-out images (tuneae.data.scans and tuneae.data.duplicates).
    group_by: str = flag("patient", choices=("patient", "study", "series"))
    """Level at which DICOM slices are kept together in one split: ``patient`` (PatientID), ``study``
    (StudyInstanceUID) or ``series`` (SeriesInstanceUID)."""
    groups: str = flag("", metavar="FILE.csv")
    """A CSV with columns ``path,group`` (paths relative to the data folder): files with one group stay in one split,
    for users who know patient IDs; listed files are grouped by it instead of the automatic scan rule."""
    scan_min_corr: float = flag(0.8)
    """Pixel correlation (32 x 32 thumbnails) at or above which two 2-D images numbered 1 or 2 apart in one folder
    count as slices of one scan; above 1 turns the numbered-slice rule off."""
    near_min_corr: float = flag(0.95)
    """Pixel correlation (32 x 32 thumbnails, whole or cropped to the content) that confirms a near-copy candidate."""
    min_signal: float = flag(0.01)
    """An image with fewer than this fraction of its pixels above 0.05 (on [0, 1]) is near-blank and left out."""
    allow_mostly_dropped: bool = flag(False)
    """Accept a data set in which more than half of the images are left out (otherwise a ``DataError``)."""


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of one autoencoder; stored in every checkpoint so the model rebuilds from the file alone.

    The defaults are the seed project's stack: latent 512, base 32 channels, depth 5, 3x3 kernels, BatchNorm, raw
    input, a dense code, MSE."""

    kind: str = "ae"
    """One of ``MODEL_KINDS``: ae (MSE), vae (BCE + KL), dae (denoising AE), unet / dunet (skip connections), dncnn
    (DnCNN, Zhang et al. 2017: a plain stack of convolutions that predicts the noise)."""
    image_size: int = 128
    """Input side in pixels (B, 1, image_size, image_size)."""
    latent_dim: int = flag(512, space=True)
    """Size of the bottleneck vector (ae / vae / dae)."""
    base_channels: int = 32
    """Channels of the first encoder stage; stage i has base_channels * 2**i (32 -> 512 at depth 5). dncnn: the
    width of every hidden layer (the paper: 64)."""
    depth: int = 5
    """Number of stride-2 stages in encoder and decoder (5: 128 px -> 4 px at the bottleneck). dncnn: the number
    of convolution layers D >= 2, none of them down-sampling (the paper: 17, or 20 for the blind DnCNN-B)."""
    kernel_size: int = 3
    """Kernel side of the encoder convolutions (3 or 5); dncnn: of every layer (the paper: 3)."""
    norm: str = "batch"
    """Normalization after each hidden conv: ``batch``, ``group`` or ``none``."""
    input_norm: str = "none"
    """Input normalization: ``none`` or ``standardize`` (per-image zero mean, unit variance); output stays in [0, 1]."""
    latent_layout: str = "dense"
    """Code of ae / vae / dae: ``dense`` (flatten + Linear) or ``spatial`` (a C x h x w map of exactly
    latent_dim numbers, h = w = image_size / 2**depth, C = latent_dim / h**2; see tuneae.models.blocks)."""
    residual: bool = False
    """ae / vae / dae: a residual block (two convs + skip) after every encoder and decoder stage."""
    recon_loss: str = "mse"
    """Training loss of ae / dae / unet / dunet / dncnn: ``mse``, ``l1`` or ``l1_ssim`` (0.84 (1 - SSIM) + 0.16 L1, Zhao
    et al. 2017); the VAE keeps its negative ELBO. Trials are selected on val/mse whatever the loss."""


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings of one trial (the defaults: lr 5e-4, batch 16, the seed project's recipe)."""

    lr: float = flag(5e-4, space=True)
    """Adam learning rate (AdamW's too; the peak of a schedule)."""
    epochs: int = flag(10, space=True)
    """Maximum number of epochs (ASHA may stop a trial earlier); the largest choice searched is ASHA's max_t. An LR
    schedule spans all of them, so a trial stopped at a rung is judged mid-schedule (tuneae.train)."""
    optimizer: str = flag("adam", space=True)
    """``adam`` (weight_decay: an L2 penalty in the gradient) or ``adamw`` (decoupled weight decay); tuneae.recipe."""
    weight_decay: float = flag(0.0, space=True)
    """Weight decay of conv and linear weights (not biases or norm parameters), >= 0; 0: none."""
    lr_schedule: str = flag("constant", space=True)
    """LR per optimisation step over the ``epochs`` budget: ``constant``, ``cosine`` (linear warm-up, then cosine
    towards 0) or ``onecycle`` (torch's OneCycleLR peaking at ``lr``)."""
    warmup_fraction: float = flag(0.05, space=True)
    """``cosine``: fraction of the budget's steps of linear warm-up, in [0, 1)."""
    ema_decay: float = flag(0.0, space=True)
    """0: off; in (0, 1): validate and checkpoint an exponential moving average of the weights (BN buffers too)."""
    grad_clip: float = flag(0.0, space=True)
    """0: off; > 0: clip the global L2 norm of the gradients to this value."""
    batch_size: int = flag(16, space=True)
    """Images per optimisation step (per worker under DDP)."""
    seed: int = 0
    """Seed of weight initialisation, shuffling and noise."""
    noise_protocol: str = "awgn"
    """Noise of denoising kinds' training and validation input (``tuneae.noise.PROTOCOLS``): ``awgn``, additive white
    Gaussian noise not clipped (the primary protocol), ``clipped8``, clipped to [0, 1] and quantized to 8 bits, or
    ``rician``, the magnitude of complex Gaussian noise (magnitude MR images)."""
    noise_sigma_min: float = 0.05
    """Lowest noise sigma (on the [0, 1] scale) drawn per training image for denoising kinds."""
    noise_sigma_max: float = 0.3
    """Highest noise sigma (on the [0, 1] scale) drawn per training image for denoising kinds."""
    val_noise_sigma: float = 0.1
    """Noise sigma of the validation set for denoising kinds (fixed, seeded)."""
    crop_size: int = 0
    """Training augmentation (tuneae.augment): 0 = full images as they are; c > 0 = a random c x c crop
    of each training image and one of its 8 flips / 90-degree rotations. c < image_size only for the fully
    convolutional kinds (U-Nets: c divisible by 2**depth; dncnn: any c); c = image_size gives full images with flips
    and rotations for any kind.
    Validation always uses full, untouched images."""
    precision: str = "auto"
    """Training arithmetic: ``fp32``, ``bf16`` (bfloat16 autocast, loss and optimizer in fp32) or ``auto`` (bf16 on
    a CUDA GPU that supports it and on a CPU with native bf16 instructions, AVX-512 BF16 or AMX; fp32 elsewhere).
    Validation always runs in fp32, so metrics compare across precisions."""
    memory_format: str = "auto"
    """Layout of the model's 4D tensors: ``channels_last``, ``contiguous`` or ``auto`` (channels_last for the
    all-convolutional U-Nets, contiguous for the bottleneck kinds, as measured fastest on CPU)."""
    checkpoint_every: int = 5
    """Epochs between resume checkpoints (weights + optimizer state); 0: none. A trial also writes weights-only
    checkpoints at the scheduler's rungs and at its last epoch (``tuneae.checkpoint.checkpoint_kind``)."""


SEED_SPACE: dict[str, tuple] = {
    "train.lr": (1e-3, 5e-4, 1e-4),
    "train.epochs": (10, 20, 40),
    "train.batch_size": (16, 32, 64),
    "model.latent_dim": (512, 1024, 2048),
}
"""The seed project's W&B sweep grid, searched as categorical choices (the default search space); the dataclass
defaults, the seed project's recipe, are among its choices."""


@dataclass(frozen=True)
class SearchConfig:
    """How the search runs: budget, resources, scheduler, storage, logging."""

    name: str = flag("search")
    """Experiment name: ``<storage_path>/<name>`` holds Tune state and checkpoints, ``results/<name>`` the summary."""
    models: tuple[str, ...] = flag(("ae", "vae"), "--model", choices=MODEL_KINDS)
    """Model kinds, one search each (their objectives differ)."""
    num_samples: int = flag(10)
    """Trials per model kind."""
    max_concurrent: int = flag(0)
    """Concurrent trials; 0 derives it from the cluster's CPUs/GPUs and the per-trial resources."""
    cpus_per_trial: float = flag(2.0)
    """CPUs per Train worker (= torch threads)."""
    gpus_per_trial: float = flag(0.0)
    """GPUs per Train worker; fractions (0.25) pack several trials on one GPU."""
    workers_per_trial: int = flag(1)
    """Train workers per trial (DDP when > 1)."""
    storage_path: str = flag("runs")
    """Experiment storage: a local folder (outside git) or a URI such as ``s3://bucket/tuneae``."""
    results_dir: str = flag("results")
    """Folder of the small, committed outputs: ``<results_dir>/<name>/summary.json`` and ``trials.csv``."""
    seed: int = flag(0, also=("data.seed", "train.seed"))
    """Seed of the TPE searcher; the flag also seeds the data split and training."""
    grace_period: int = flag(1)
    """ASHA: epochs every trial runs before it can be stopped (the first rung)."""
    reduction_factor: float = flag(3.0)
    """ASHA: 1/reduction_factor of trials continue past each rung."""
    wandb: bool = flag(True)
    """Log every trial to W&B (offline unless WANDB_API_KEY is set or ``wandb_mode="online"``; sync later with
    ``wandb sync``)."""
    wandb_project: str = flag("tuneae")
    """W&B project name."""
    wandb_mode: str = flag("", choices=("offline", "online"))
    """``offline`` or ``online``; unset, online when an API key is found, else offline."""
    address: str = flag("")
    """Ray cluster to join (``auto``, ``host:port`` or ``ray://...``; default ``RAY_ADDRESS``); empty starts Ray on
    this machine."""
    space: dict = field(default_factory=lambda: dict(SEED_SPACE))
    """Search space of every kind: ``section.field`` -> tuple of categorical choices."""
    space_by_kind: dict = field(default_factory=dict)
    """Per-kind additions and overrides, ``{kind: {section.field: choices}}`` (e.g. U-Net depth). Keys a kind does
    not use (``model.latent_dim`` for U-Nets, noise settings for non-denoising kinds) are dropped for that kind."""


@dataclass(frozen=True)
class Config:
    """Every setting of a search or a trial: the four sections, passed around as one object.

    ``model.image_size`` always follows ``data.image_size`` (set here, on construction and on every ``replace``).
    """

    search: SearchConfig = field(default_factory=SearchConfig)
    """How the search runs (budget, resources, scheduler, storage, logging, search space)."""
    data: DataConfig = field(default_factory=DataConfig)
    """Where the images come from and how they are prepared."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """The architecture (each kind's search space is applied on top of it)."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """The optimisation settings (each kind's search space is applied on top of them)."""

    def __post_init__(self) -> None:
        if self.model.image_size != self.data.image_size:
            object.__setattr__(self, "model", replace(self.model, image_size=self.data.image_size))

    def flat(self) -> dict[str, Any]:
        """The ``data``, ``model`` and ``train`` sections as one ``section.field`` dict (:func:`to_flat`)."""
        return to_flat(self.data, self.model, self.train)

    def of_kind(self, kind: str) -> Config:
        """This config with ``model.kind`` set to ``kind``."""
        return replace(self, model=replace(self.model, kind=kind))


SECTIONS: dict[str, type] = typing.get_type_hints(Config)
"""Section name -> its dataclass, in :class:`Config`'s order: the tables of a config file besides ``[space]``."""
FLAT_SECTIONS = ("data", "model", "train")
"""The sections a trial's flat config holds (the search section stays with the driver)."""
_SECTION_OF_TYPE = {cls: name for name, cls in SECTIONS.items()}


def to_flat(*cfgs: Any) -> dict[str, Any]:
    """Flatten section configs into one dict with ``section.field`` keys (the form Ray Tune and W&B see).

    Args:
        *cfgs: ``DataConfig`` / ``ModelConfig`` / ``TrainConfig`` instances.
    Returns:
        e.g. ``{"data.image_size": 128, "model.kind": "ae", "train.lr": 5e-4, ...}``.
    """
    out: dict[str, Any] = {}
    for cfg in cfgs:
        section = _SECTION_OF_TYPE[type(cfg)]
        out.update({f"{section}.{k}": v for k, v in asdict(cfg).items()})
    return out


def from_flat(flat: dict[str, Any], search: SearchConfig | None = None) -> Config:
    """Rebuild the root config from a flat ``section.field`` dict; missing keys keep their defaults.

    Keys without a ``data`` / ``model`` / ``train`` prefix are ignored (Tune adds its own).

    Args:
        flat: e.g. a trial's config (:meth:`Config.flat` with some keys sampled).
        search: the search section (default ``SearchConfig()``; a trial does not carry it).
    Raises:
        ValueError: a key has a known section but an unknown field, naming the key.
    """
    parts: dict[str, dict[str, Any]] = {s: {} for s in FLAT_SECTIONS}
    for key, value in flat.items():
        section, _, name = key.partition(".")
        if section not in parts:
            continue
        known = {f.name for f in fields(SECTIONS[section])}
        if name not in known:
            raise ValueError(f"unknown config key {key!r}; known {section} fields: {sorted(known)}")
        parts[section][name] = value
    return Config(search or SearchConfig(), *(SECTIONS[s](**parts[s]) for s in FLAT_SECTIONS))


def seed_recipe() -> dict[str, Any]:
    """The seed project's recipe as flat ``model.*`` / ``train.*`` values: the dataclass defaults.

    Returns:
        ``{"model.latent_dim": 512, "train.lr": 5e-4, "train.batch_size": 16, ...}`` (every field of both sections).
    """
    return to_flat(ModelConfig(), TrainConfig())


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of a dataclass, read from its source with :mod:`ast`.

    Args:
        cls: a dataclass defined in a module whose source is available.
    Returns:
        ``{field name: docstring}`` (cleaned by ``inspect.cleandoc``) for every field that has one.
    """
    body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body
    docs = {}
    for node, after in itertools.pairwise(body):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
            docs[node.target.id] = inspect.cleandoc(after.value.value)
    return docs


def space_flags() -> dict[str, str]:
    """``section.field`` -> its command-line flag, for the fields whose flag sets search-space choices."""
    return {f"{section}.{f.name}": f.metadata["flag"]["name"] or "--" + f.name.replace("_", "-")
            for section, cls in SECTIONS.items() for f in fields(cls)
            if f.metadata.get("flag", {}).get("space")}
