"""The report's figures: small PNGs drawn on Matplotlib's Agg canvas (no GUI backend, no pyplot state), each
written atomically."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tuneae.files import atomic_write
from tuneae.models import VAE

DPI = 80
"""Resolution of every figure (small PNGs)."""


def _figure(rows: int, cols: int, w: float, h: float) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(cols * w, rows * h), dpi=DPI)
    FigureCanvasAgg(fig)  # the Agg canvas: no GUI backend, no pyplot state
    return fig, fig.subplots(rows, cols, squeeze=False)


def _save(fig: Figure, path: Path, **kw) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, **kw)
    atomic_write(path, buf.getvalue())
    return path.name


def plot_grid(rows: list[list[tuple | None]], path: Path, cell: float = 1.2) -> str:
    """Draw a grid of images as one picture in one axes (fast even for many tiles), a title above each tile.

    Args:
        rows: per row, tiles ``(image (h, w), title, cmap, vmin, vmax)`` or None (blank); vmin / vmax None: the
            tile's own range. Tiles are scaled (nearest) to the largest tile's side ``side``.
        cell: inches per tile.
    Returns:
        The file name written.
    """
    side = max(t[0].shape[0] for r in rows for t in r if t is not None)
    head, gap, ncol = side // 3, max(1, side // 32), max(len(r) for r in rows)  # title band, gap in pixels
    canvas = np.ones((len(rows) * (head + side), ncol * (side + gap), 3))  # (H, W, RGB) white
    fig = Figure(figsize=(cell * canvas.shape[1] / side, cell * canvas.shape[0] / side), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            if tile is None:
                continue
            img, title, cmap, vmin, vmax = tile
            img = np.asarray(img, dtype=np.float64)
            lo = img.min() if vmin is None else vmin
            hi = img.max() if vmax is None else vmax
            rgb = colormaps[cmap](np.clip((img - lo) / max(hi - lo, 1e-12), 0, 1))[..., :3]  # (h, w, 3)
            idx_r = np.arange(side) * img.shape[0] // side
            idx_c = np.arange(side) * img.shape[1] // side
            y, x = r * (head + side) + head, c * (side + gap)
            canvas[y:y + side, x:x + side] = rgb[idx_r][:, idx_c]
            ax.text(x + side / 2, y - 0.5, title, ha="center", va="bottom", fontsize=6, linespacing=0.9)
    ax.imshow(canvas, interpolation="nearest" if cell * DPI >= side else "antialiased")  # crisp small tiles
    ax.axis("off")
    return _save(fig, path)


def _gray(img, title: str) -> tuple:
    return (img, title, "gray", 0.0, 1.0)


def plot_layers(inter: list[tuple[str, torch.Tensor]], rows: list[dict], path: Path) -> str:
    """Per layer: the channel mean and the most active channels of one image's activations (B = 1), each scaled to
    its own range."""
    grid = []
    for (name, a), row in zip(inter, rows):
        a = a[0].numpy()  # (C, H, W)
        title = f"{name}: mean\n{row['channels']}x{row['height']}x{row['width']}, RF {row['receptive_field_px']}px"
        grid.append([(a.mean(0), title, "viridis", None, None)]
                    + [(a[int(c)], f"channel {c}", "viridis", None, None) for c in row["top_channels"].split()])
    return plot_grid(grid, path, cell=1.0)


def plot_reconstructions(clean: np.ndarray, recon: dict[str, np.ndarray], titles: list[str], path: Path) -> str:
    """Rows: the shown test images (F, S, S); columns: original, each model's output, each absolute error."""
    err = {k: np.abs(r - clean) for k, r in recon.items()}  # (F, S, S) each
    vmax = max(0.05, max(float(e.max()) for e in err.values()))
    return plot_grid([[_gray(clean[i], titles[i]), *[_gray(r[i], k) for k, r in recon.items()],
                       *[(e[i], f"|{k} - x| (0-{vmax:.2f})" if j == 0 else f"|{k} - x|", "magma", 0.0, vmax)
                         for j, (k, e) in enumerate(err.items())]] for i in range(len(clean))], path)


def plot_bars(models: dict[str, dict], path: Path) -> str:
    """Test PSNR and SSIM (mean ± std) per model, overall and per class."""
    kinds = list(models)
    groups = ["all", *models[kinds[0]]["test"]["per_class"]]
    fig, axes = _figure(1, 2, w=4.0, h=3.2)
    w = 0.8 / len(kinds)
    for ax, met in zip(axes[0], ("psnr", "ssim")):
        for i, k in enumerate(kinds):
            t = models[k]["test"]
            vals = [t[met], *[t["per_class"][g][met] for g in groups[1:]]]
            ax.bar(np.arange(len(groups)) + i * w, [v["mean"] for v in vals], w, yerr=[v["std"] for v in vals],
                   label=k, capsize=2)
        ax.set_xticks(np.arange(len(groups)) + 0.4 - w / 2, groups, fontsize=7, rotation=20)
        ax.set_title(f"test {met.upper()}{' (dB)' if met == 'psnr' else ''}, clean input", fontsize=9)
    axes[0, 0].legend(fontsize=7)
    return _save(fig, path, bbox_inches="tight")


def plot_denoising_curves(denoising: dict[str, dict], learned: list[str], path: Path) -> str:
    """Mean test PSNR and SSIM against sigma for the noisy input and every denoiser."""
    sig = [float(s) for s in denoising]
    fig, axes = _figure(1, 2, w=4.0, h=3.2)
    for ax, met in zip(axes[0], ("psnr", "ssim")):
        for name in next(iter(denoising.values())):
            ax.plot(sig, [d[name][met]["mean"] for d in denoising.values()], "o-" if name in learned else "s--",
                    label=name, ms=3)
        ax.set_xlabel("noise sigma (on the [0, 1] scale)", fontsize=8)
        ax.set_title(f"denoising: test {met.upper()}", fontsize=9)
    axes[0, 0].legend(fontsize=6)
    return _save(fig, path, bbox_inches="tight")


def plot_denoising_example(clean: np.ndarray, outputs: dict[str, np.ndarray], sigma: float, title: str,
                           path: Path) -> str:
    """Top: clean (S, S), noisy input and each denoiser's output; bottom: output - clean (red: too bright)."""
    lim = 2 * sigma
    return plot_grid([[_gray(clean, title), *[_gray(o, f"{n}, sigma {sigma:g}" if n == "noisy" else n)
                                              for n, o in outputs.items()]],
                      [None, *[(o - clean, f"{n} - clean", "RdBu_r", -lim, lim) for n, o in outputs.items()]]], path)


def plot_vae(vae: VAE, a: torch.Tensor, b: torch.Tensor, titles: tuple[str, str], seed: int, path: Path) -> str:
    """Top: 10 decoded samples z ~ N(0, I); bottom: test image a (1, 1, S, S), the decoded linear interpolation of
    the posterior means of a and b in 8 steps, test image b."""
    with torch.no_grad():
        samples = vae.sample(10, generator=torch.Generator().manual_seed(seed))[:, 0]  # (10, S, S)
        z = vae.encode(torch.cat([a, b]))  # (2, latent_dim)
        t = torch.linspace(0, 1, 8)[:, None]  # (8, 1)
        between = vae.decode((1 - t) * z[0] + t * z[1])[:, 0]  # (8, S, S)
    return plot_grid([[_gray(im, "prior sample" if j == 0 else "") for j, im in enumerate(samples)],
                      [_gray(a[0, 0], titles[0]), *[_gray(im, f"t = {v:.2f}") for im, v in zip(between, t[:, 0])],
                       _gray(b[0, 0], titles[1])]], path)
