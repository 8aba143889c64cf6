"""What each layer of a model sees and captures: receptive fields measured from the model, layer roles."""
from __future__ import annotations

import torch

from tuneae.models import BOTTLENECK, FLAT, Autoencoder

TOP_CHANNELS = 4
"""Most active channels shown per layer."""


def receptive_fields(model: Autoencoder, x: torch.Tensor) -> dict[str, tuple[int, int]]:
    """Measure the receptive field of every layer of ``forward_intermediates`` from the model itself.

    For each layer the gradient of its centre activation (summed over channels) with respect to the input: the
    receptive field is the side of the bounding box of input pixels with a non-zero gradient; the effective one
    (Luo et al. 2016, "Understanding the effective receptive field in deep convolutional neural networks", NeurIPS)
    that of pixels with at least 1% of the largest |gradient|. Per-image normalization
    (GroupNorm, ``input_norm="standardize"``) couples every pixel weakly, so there the first is the whole image.

    Args:
        model: in eval mode.
        x: (1, 1, S, S) in [0, 1].
    Returns:
        ``{layer name: (receptive field px, effective receptive field px)}``, at most S.
    """
    xg = x.clone().requires_grad_(True)
    _, inter = model.forward_intermediates(xg)
    out = {}
    for name, a in inter:  # a: (1, C, H, W)
        (g,) = torch.autograd.grad(a[0, :, a.shape[2] // 2, a.shape[3] // 2].sum(), xg, retain_graph=True)
        g = g[0, 0].abs()  # (S, S)

        def side(mask):
            rows, cols = mask.any(1).nonzero(), mask.any(0).nonzero()
            return int(max(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1)) if len(rows) else 0

        out[name] = (side(g > 0), side(g >= 0.01 * g.max()))
    return out


def layer_role(model: Autoencoder, name: str, names: list[str]) -> str:
    """A sentence on what a layer captures, chosen by its depth and role in the network."""
    enc = [n for n in names if n.startswith("encoder")]
    dec = [n for n in names if n.startswith("decoder")]
    if model.cfg.kind in FLAT:  # DnCNN: stride-1 layers only, each widening the receptive field by k - 1 px
        if name == "output":
            return "the output: input minus the predicted noise (residual learning), clamped to [0, 1]"
        hidden = [n for n in names if n.startswith("layer.")]
        i = hidden.index(name)
        return ("DnCNN first layer (Conv + ReLU): local intensity and edges" if i == 0 else
                f"DnCNN layer {i + 1} of {model.cfg.depth} (Conv + norm + ReLU) at full resolution: features that "
                f"separate noise from structure within its receptive field")
    unet = model.cfg.kind not in BOTTLENECK  # skip connections: U-Net
    spatial = getattr(model.cfg, "latent_layout", "dense") == "spatial"  # a convolutional code, no Linear layer
    if name == "output":
        return ("the output: sigmoid(logit(input) + predicted correction)" if unet else
                "the reconstruction in [0, 1] (sigmoid of the last transposed convolution)")
    if name in enc:
        i = enc.index(name)
        if i == 0:
            return "early layer: local intensity and edges (skull rim, brain boundary, contrast steps)"
        if i == len(enc) - 1:
            if unet:
                return "U-Net bottleneck: coarse global context; fine detail bypasses it through the skip connections"
            return ("deepest encoder map, reduced by a convolution to the spatial latent code (C x h x w numbers): "
                    "coarse layout kept in place (head position, size, brain against background)" if spatial else
                    "deepest encoder map, flattened into the latent code: global layout (head position, size, "
                    "brain against background)")
        return "middle layer: textures and parts (ventricles, folds, blobs such as lesions) from combined edges"
    i = dec.index(name)
    if unet:
        detail = "coarse" if i == 0 else "finer"
        return f"decoder: up-samples and merges the encoder's skip connection at this scale ({detail} detail)"
    if i == 0:
        return ("decoder: expands the spatial latent code into a coarse layout; each decoder unit sees a "
                "neighbourhood of code positions, as a convolution does" if spatial else
                "decoder: expands the latent code into a coarse layout; after the fully-connected bottleneck every "
                "decoder unit sees the whole image")
    return "decoder up-sampling: refines shapes and restores edges at a higher resolution"


def layer_table(kind: str, model: Autoencoder, x: torch.Tensor) -> tuple[list[dict], list]:
    """Describe every layer of ``forward_intermediates`` for one image x (1, 1, S, S) in [0, 1].

    Returns:
        (one row per layer: shape, receptive fields (see :func:`receptive_fields`), the ``TOP_CHANNELS`` most active
        channels by mean |activation| and what the layer captures; the ``[(name, (1, C, H, W))]`` activations).
    """
    rfs = receptive_fields(model, x)
    with torch.no_grad():
        _, inter = model.forward_intermediates(x)
    names = [n for n, _ in inter]
    rows = [{"model": kind, "layer": n, "channels": a.shape[1], "height": a.shape[2], "width": a.shape[3],
             "receptive_field_px": rfs[n][0], "effective_rf_px": rfs[n][1],
             "top_channels": " ".join(str(int(c)) for c in a[0].abs().mean((1, 2)).argsort(descending=True)
                                      [:TOP_CHANNELS]),
             "captures": layer_role(model, n, names)} for n, a in inter]
    return rows, inter
