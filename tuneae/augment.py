"""Training-set augmentation as denoising papers do it: random crops with flips and 90-degree rotations.

DnCNN (Zhang et al. 2017, "Beyond a Gaussian Denoiser", IEEE TIP 26(7), section IV-A) trains on small random
patches with the 8 flips / rotations of the dihedral group; a fully convolutional network (the U-Nets, DnCNN) then
sees many more distinct inputs per second than on full images. Bottleneck models (ae / vae / dae) have a fixed code
size, so they take only full-size "crops" (``crop_size == image_size``: flips and rotations of the whole image).

Works on uint8 batches on any device; every random draw comes from one seeded ``torch.Generator`` (on the CPU or on
the batch's device), so an epoch's augmentation is reproducible. Validation never goes through here.
"""
from __future__ import annotations

import torch

from tuneae.config import ModelConfig
from tuneae.models import FULLY_CONVOLUTIONAL, size_step


def check_crop_size(crop_size: int, model: ModelConfig) -> None:
    """Refuse a ``train.crop_size`` the model cannot train on, before any compute is spent.

    Args:
        crop_size: 0 (no augmentation) or the crop side in pixels.
        model: the trial's model config (kind, image_size, depth).
    Raises:
        ValueError: naming the fields: a negative size, a crop larger than ``model.image_size``, a crop smaller than
            the image for a kind that is not fully convolutional (a bottleneck kind's code size is fixed), or a crop
            not divisible by ``2**model.depth`` (:func:`tuneae.models.size_step`: any crop for ``dncnn``).
    """
    if crop_size == 0:
        return
    if crop_size < 0 or crop_size > model.image_size:
        raise ValueError(f"train.crop_size={crop_size} must be 0 (no crops) or in [1, model.image_size="
                         f"{model.image_size}]")
    if model.kind not in FULLY_CONVOLUTIONAL and crop_size != model.image_size:
        kinds = ", ".join(sorted(FULLY_CONVOLUTIONAL))
        raise ValueError(f"train.crop_size={crop_size} < model.image_size={model.image_size} is only for fully "
                         f"convolutional kinds ({kinds}): model.kind={model.kind!r} has a fixed code size; use 0 or "
                         f"{model.image_size}")
    step = size_step(model.kind, model.depth)
    if crop_size % step:
        raise ValueError(f"train.crop_size={crop_size} is not divisible by 2**model.depth={step} "
                         f"(model.depth={model.depth})")


def random_crops(images: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """One uniformly placed ``size`` x ``size`` crop of every image.

    Args:
        images: (B, C, H, W), any dtype (uint8 in the training loop), any device.
        size: crop side in pixels, 1 <= size <= min(H, W).
        generator: seeded generator (CPU or the images' device) for the crop positions.
    Returns:
        (B, C, size, size), same dtype and device as ``images``.
    Raises:
        ValueError: size outside [1, min(H, W)] or images not 4-D.
    """
    if images.dim() != 4:
        raise ValueError(f"random_crops needs (B, C, H, W) images, got shape {tuple(images.shape)}")
    b, c, h, w = images.shape
    if not 1 <= size <= min(h, w):
        raise ValueError(f"crop size {size} must be in [1, {min(h, w)}] for images of {h} x {w} px")
    dev = images.device
    top = torch.randint(0, h - size + 1, (b,), generator=generator, device=generator.device).to(dev)  # (B,)
    left = torch.randint(0, w - size + 1, (b,), generator=generator, device=generator.device).to(dev)  # (B,)
    span = torch.arange(size, device=dev)
    rows = (top[:, None] + span)[:, None, :, None]  # (B, 1, size, 1)
    cols = (left[:, None] + span)[:, None, None, :]  # (B, 1, 1, size)
    bi = torch.arange(b, device=dev)[:, None, None, None]  # (B, 1, 1, 1)
    ci = torch.arange(c, device=dev)[None, :, None, None]  # (1, C, 1, 1)
    return images[bi, ci, rows, cols]  # (B, C, size, size)


def random_dihedral(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image turned by one of the 8 elements of the dihedral group (k * 90-degree rotation, then an optional
    left-right flip), drawn uniformly and independently per image; no host-device synchronisation.

    Args:
        images: (B, C, S, S) square images, any dtype and device.
        generator: seeded generator (CPU or the images' device).
    Returns:
        (B, C, S, S), same dtype and device.
    Raises:
        ValueError: the images are not square (a 90-degree rotation would change their shape).
    """
    if images.dim() != 4 or images.shape[-1] != images.shape[-2]:
        raise ValueError(f"random_dihedral needs square (B, C, S, S) images, got shape {tuple(images.shape)}")
    t = torch.randint(0, 8, (images.shape[0],), generator=generator, device=generator.device).to(images.device)
    turned = [torch.rot90(images, k, dims=(2, 3)) for k in range(4)]
    group = torch.stack(turned + [x.flip(3) for x in turned])  # (8, B, C, S, S)
    return group[t, torch.arange(images.shape[0], device=images.device)]  # (B, C, S, S)


def augment_batch(images: torch.Tensor, crop_size: int, generator: torch.Generator) -> torch.Tensor:
    """The training augmentation of ``train.crop_size``: unchanged for 0, else a random crop of that side and a
    random flip / rotation per image.

    Args:
        images: (B, C, S, S) training batch (uint8 in [0, 255] in the training loop), any device.
        crop_size: 0 or the crop side (see :func:`check_crop_size`).
        generator: seeded generator (CPU or the images' device).
    Returns:
        (B, C, S, S) for 0, else (B, C, crop_size, crop_size); same dtype and device.
    Raises:
        ValueError: a crop size outside [0, S] or non-square images (from :func:`random_crops` /
            :func:`random_dihedral`).
    """
    if crop_size == 0:
        return images
    return random_dihedral(random_crops(images, crop_size, generator), generator)
