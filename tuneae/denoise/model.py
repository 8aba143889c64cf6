"""The model side of ``python -m tuneae.denoise``: pick and load a checkpoint, and apply it to slices of any size.

Two call sites reach the rest of tuneae, both marked ``# tuneae call site``: :func:`_load_run_model` (a run's best
checkpoint per kind, through the run layer's :func:`tuneae.run.find_run`) and :func:`load_denoiser`
(:func:`tuneae.checkpoint.load_checkpoint`).
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tuneae.models import DENOISING, FULLY_CONVOLUTIONAL, Autoencoder, ResidualDenoiser, size_step

RESOLUTIONS = ("auto", "native", "resize")
"""``native``: pad to a multiple of 2**depth and crop back (fully convolutional kinds only: ``unet``, ``dunet``,
``dncnn``, the last needing no padding, :func:`tuneae.models.size_step`); ``resize``: pad to a
square and resize to the model's image size, as training prepared images, then back; ``auto``: native for fully
convolutional kinds, resize for the others."""


class ModelError(ValueError):
    """No usable model: a checkpoint that is missing or not tuneae's, a run without the kind or its checkpoints."""


@dataclass(frozen=True)
class Denoiser:
    """A loaded model and where it came from."""

    model: Autoencoder
    """In eval mode, on ``device``."""
    payload: dict
    """The checkpoint payload (``model_config``, ``data_config``, ``train_config``, ``epoch``, ``metrics`` ...)."""
    checkpoint: Path
    """The ``model.pt`` file."""
    source: str
    """Where it was picked: ``"checkpoint"`` or e.g. ``"run results/x: final fit seed 2 of trial abc"``."""
    device: torch.device

    @property
    def kind(self) -> str:
        return self.model.cfg.kind

    @property
    def role(self) -> str:
        """``"denoiser"`` (trained on noisy input) or ``"reconstruction"`` (trained on clean input: it only
        reconstructs through its code, which smooths)."""
        return "denoiser" if self.kind in DENOISING else "reconstruction"

    @property
    def label(self) -> str:
        """e.g. ``"dunet (denoiser), epoch 20, checkpoint runs/x/model.pt"``."""
        return f"{self.kind} ({self.role}), epoch {self.payload.get('epoch')}, checkpoint {_rel(self.checkpoint)}"

    @property
    def sigma_range(self) -> tuple[float, float] | None:
        """The noise sigmas (on the [0, 1] scale) drawn in training, or None for a kind trained without noise."""
        if self.role != "denoiser":
            return None
        t = self.payload.get("train_config") or {}
        return float(t.get("noise_sigma_min", math.nan)), float(t.get("noise_sigma_max", math.nan))

    @property
    def window(self) -> tuple[float, float]:
        """The intensity window percentiles its data was decoded with (``data.window_low``, ``data.window_high``)."""
        d = self.payload.get("data_config") or {}
        return float(d.get("window_low", 0.5)), float(d.get("window_high", 99.5))

    @property
    def plane(self) -> str:
        return str((self.payload.get("data_config") or {}).get("slice_plane", "axial"))

    def resolution(self, asked: str) -> str:
        """``asked`` resolved for this model (``auto`` -> native or resize).

        Raises:
            ModelError: ``native`` for a bottleneck kind (its dense code fixes the input size).
        """
        if asked == "auto":
            return "native" if self.kind in FULLY_CONVOLUTIONAL else "resize"
        if asked == "native" and self.kind not in FULLY_CONVOLUTIONAL:
            kinds = ", ".join(sorted(FULLY_CONVOLUTIONAL))
            raise ModelError(f"--resolution native needs a fully convolutional model ({kinds}); the {self.kind} model "
                             f"takes {self.model.cfg.image_size} px images only: use --resolution resize")
        return asked

    @torch.inference_mode()
    def apply(self, slices: np.ndarray, resolution: str, batch_size: int = 8,
              progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Denoise slices of one size.

        Args:
            slices: (N, H, W) float32 on the [0, 1] scale (may leave it a little: the window is not clipped).
            resolution: ``native`` or ``resize`` (see :data:`RESOLUTIONS`; resolve ``auto`` with :meth:`resolution`).
            batch_size: slices per forward pass.
            progress: called with the number of slices done after every batch.
        Returns:
            (N, H, W) float32 on the [0, 1] scale: U-Nets and DnCNN give their unclamped residual estimate ``x - noise``
            (intensities beyond the window survive), bottleneck kinds their sigmoid output in [0, 1].
        """
        n, h, w = slices.shape
        size = self.model.cfg.image_size
        step = size_step(self.kind, self.model.cfg.depth)  # 1 for dncnn: no padding
        out = np.empty((n, h, w), np.float32)
        for i in range(0, n, batch_size):
            batch = slices[i:i + batch_size]
            if resolution == "native":
                x, crop = pad_to_multiple(batch, step)
            else:
                x, crop = np.stack([to_model_size(s, size) for s in batch]), None
            y = self._forward(torch.from_numpy(np.ascontiguousarray(x[:, None])).to(self.device))[:, 0]
            y = y.float().cpu().numpy()
            out[i:i + len(batch)] = y[:, :h, :w] if crop else np.stack([from_model_size(s, h, w) for s in y])
            if progress is not None:
                progress(len(batch))
        return out

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.model, ResidualDenoiser):  # unclamped, so intensities beyond the window survive
            return self.model.estimate(x)
        return self.model(x)


def pad_to_multiple(batch: np.ndarray, step: int) -> tuple[np.ndarray, bool]:
    """(B, H, W) -> (B, H', W') with H', W' the next multiples of ``step``, padded at the bottom / right by mirror
    reflection (no artificial edge for the convolutions); crop ``[:, :H, :W]`` undoes it."""
    _, h, w = batch.shape
    ph, pw = -h % step, -w % step
    return np.pad(batch, ((0, 0), (0, ph), (0, pw)), mode="symmetric"), True


def _square_geometry(h: int, w: int) -> tuple[int, int, int]:
    """Side of the square an (h, w) slice is padded to, and its top / left offsets (centred, as ImageOps.pad)."""
    side = max(h, w)
    return side, (side - h) // 2, (side - w) // 2


def to_model_size(s: np.ndarray, size: int) -> np.ndarray:
    """(H, W) -> (size, size): padded to a centred square with 0 (black) and resized with Lanczos in float, the way
    :func:`tuneae.data.decode.fingerprint` prepared the training images."""
    h, w = s.shape
    side, top, left = _square_geometry(h, w)
    sq = np.zeros((side, side), np.float32)
    sq[top:top + h, left:left + w] = s
    if side == size:
        return sq
    return np.asarray(Image.fromarray(sq, "F").resize((size, size), Image.Resampling.LANCZOS))


def from_model_size(y: np.ndarray, h: int, w: int) -> np.ndarray:
    """The inverse geometry of :func:`to_model_size`: (size, size) -> the padded square (Lanczos) -> (h, w) crop."""
    side, top, left = _square_geometry(h, w)
    if y.shape[0] != side:
        y = np.asarray(Image.fromarray(np.ascontiguousarray(y, np.float32), "F").resize(
            (side, side), Image.Resampling.LANCZOS))
    return y[top:top + h, left:left + w]


def model_input_region(s: np.ndarray, size: int) -> np.ndarray:
    """What a ``resize`` model sees of slice ``s`` (the resized image without the square's padding), for noise
    estimation at the model's scale."""
    h, w = s.shape
    side, top, left = _square_geometry(h, w)
    f = size / side
    y = to_model_size(s, size)
    t, lft = round(top * f), round(left * f)
    return y[t:t + max(1, round(h * f)), lft:lft + max(1, round(w * f))]


# -------------------------------------------------------------------------------------------- loading
def _rel(path: str | os.PathLike) -> str:
    """``path`` relative to the working directory when below it, else absolute."""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(Path.cwd().resolve()))
    except ValueError:
        return os.path.relpath(p) if os.path.splitdrive(str(p))[0] == os.path.splitdrive(os.getcwd())[0] else str(p)


def _load_run_model(run_dir: str | os.PathLike, kind: str | None,
                    experiment: str | os.PathLike | None = None) -> tuple[Path, str]:
    """The checkpoint of a run's best model of ``kind``: the final fit's best seed where the kind was final-fitted,
    else the search's best trial.  # tuneae call site: the run layer

    Args:
        run_dir: ``results/<name>`` or an experiment folder.
        kind: a model kind, or None for the run's best denoising kind (``dae``/``dunet``/``dncnn``) by reported val/mse
            (both are measured on the same sigma-0.1 noisy validation input), by the run layer's one rule
            (:func:`tuneae.run.best_by`).
        experiment: the experiment folder when it moved since the search.
    Returns:
        (checkpoint folder, a description of where it came from).
    Raises:
        ModelError: the run cannot be read, lacks the kind, has no denoising kind (and ``kind`` is None), or its
            checkpoint is not here (the message says where it was expected).
    """
    from tuneae.run import RunError, best_by, find_run

    try:
        run = find_run(run_dir, experiment, final_fit=True)
    except RunError as exc:
        raise ModelError(f"{exc} (checkpoints live in the experiment folder the run's summary.json names; "
                         f"copy it here or pass --experiment PATH)") from exc
    if kind is None:
        denoisers = {k: t for k, t in run.trials.items() if k in DENOISING}
        if not denoisers:
            raise ModelError(f"run {run_dir} has no denoising model (kinds {sorted(run.trials)}); pick one with "
                             f"--kind, e.g. --kind {sorted(run.trials)[0]} (a reconstruction, not a denoiser)")
        kind = best_by(sorted(denoisers), lambda k: denoisers[k].reported.get("val/mse"), "min")
        if kind is None:
            raise ModelError(f"run {run_dir}: no denoising model with a finite val/mse ({sorted(denoisers)})")
    if kind not in run.trials:
        raise ModelError(f"run {run_dir} has no finished {kind} model; it has {sorted(run.trials)}")
    trial = run.trials[kind]
    picked = trial.trial_id if trial.trial_id.startswith("final fit") else f"the search's best trial {trial.trial_id}"
    return Path(trial.checkpoint), f"run {_rel(run_dir)}, {kind}: {picked}"


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: the first CUDA GPU when present, else Apple's MPS, else the CPU; otherwise ``torch.device(name)``."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def load_denoiser(*, checkpoint: str | os.PathLike | None = None, run: str | os.PathLike | None = None,
                  kind: str | None = None, experiment: str | os.PathLike | None = None,
                  device: str = "auto") -> Denoiser:
    """Load the model to apply: a checkpoint file or folder, or a run's best model of a kind.

    Args:
        checkpoint: ``model.pt`` or its folder (any tuneae checkpoint).
        run: ``results/<name>`` (or an experiment folder); ``kind`` picks the kind (default: its best denoiser).
        kind: with ``checkpoint``, the kind it must hold (checked); with ``run``, the kind to take.
        experiment: with ``run``, the experiment folder when it moved.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:1`` ...
    Returns:
        The model in eval mode on the device.
    Raises:
        ModelError: neither or both of checkpoint / run, a checkpoint that is missing, unreadable or not tuneae's,
            a run without the model (see :func:`_load_run_model`), or a kind other than asked.
    """
    from tuneae.checkpoint import CheckpointError, load_checkpoint  # tuneae call site: the checkpoint loader

    if (checkpoint is None) == (run is None):
        raise ModelError("give exactly one of --checkpoint PATH and --run results/<name>")
    source = "checkpoint"
    if run is not None:
        checkpoint, source = _load_run_model(run, kind, experiment)
    dev = pick_device(device)
    try:
        model, payload = load_checkpoint(checkpoint, map_location="cpu")
    except CheckpointError as exc:
        raise ModelError(f"{exc} (expected a tuneae checkpoint: a model.pt written by the search or the final fit, "
                         f"or its folder)") from exc
    if kind is not None and model.cfg.kind != kind:
        raise ModelError(f"checkpoint {checkpoint} holds the model kind {model.cfg.kind!r}, not {kind!r}")
    path = Path(checkpoint)
    return Denoiser(model.to(dev).eval(), payload, path / "model.pt" if path.is_dir() else path, source, dev)
