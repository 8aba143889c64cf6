"""Training arithmetic and memory layout: bf16 autocast where it is native, channels_last where it is faster.

``TrainConfig.precision`` and ``TrainConfig.memory_format`` hold the user's choice; ``auto`` resolves per device
by the rules below (measured on this project's CPU, ../shared/design/MEASURED.md; ``benchmarks/gpu.sh`` measures
them on a GPU). Pure PyTorch, no Ray.
"""
from __future__ import annotations

from pathlib import Path

import torch

from tuneae.config import TrainConfig

PRECISIONS = ("auto", "fp32", "bf16")
"""Values of ``TrainConfig.precision``."""
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")
"""Values of ``TrainConfig.memory_format``."""


def cpu_has_bf16() -> bool:
    """Whether this CPU has native bfloat16 arithmetic (the ``avx512_bf16`` or ``amx_bf16`` flag in /proc/cpuinfo).

    Without it bf16 is emulated and slower than fp32. Other systems than Linux answer False.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of training on ``device``: ``torch.bfloat16``, or None for fp32.

    ``auto`` means bf16 on a CUDA device that supports it and on a CPU with native bf16 (:func:`cpu_has_bf16`;
    measured 1.6x faster for the AE and 2.3x for the denoising U-Net at batch 32 on this project's CPU,
    ../shared/design/MEASURED.md), fp32 elsewhere (e.g. Apple's MPS).
    """
    if cfg.precision == "fp32":
        return None
    if cfg.precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if device.type == "cpu" and cpu_has_bf16() else None


def memory_format(cfg: TrainConfig, kind: str) -> torch.memory_format:
    """The layout of the model's 4D tensors: ``auto`` is channels_last for U-Nets and DnCNN (all convolutions; U-Nets
    1.4x faster in fp32 and bf16 on CPU) and contiguous for the bottleneck kinds (their Linear layers flatten the
    feature map; channels_last measured slower with bf16)."""
    if cfg.memory_format == "auto":
        return torch.channels_last if kind in ("unet", "dunet", "dncnn") else torch.contiguous_format
    return torch.channels_last if cfg.memory_format == "channels_last" else torch.contiguous_format
