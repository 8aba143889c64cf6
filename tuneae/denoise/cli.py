"""``python -m tuneae.denoise INPUT... --out DIR (--run results/<name> [--kind K] | --checkpoint PATH)``.

Order of work, so that nothing is loaded or written in vain: (1) every input is found and decoded once (an unreadable
or unsupported file is an error naming it, before any model is loaded; ``--skip-unreadable`` lists and skips it),
(2) every output's place is checked (no input and no earlier output is overwritten without ``--overwrite``),
(3) the model is loaded, (4) each file is decoded again with the model's window and plane, its noise estimated,
denoised, written in its own format (atomically) and, with ``--preview``, shown beside its input, and
(5) ``denoise.json`` records it all.
"""
from __future__ import annotations

import argparse
import io
import json
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tuneae import images
from tuneae.denoise import formats
from tuneae.denoise.model import RESOLUTIONS, Denoiser, ModelError, _rel, load_denoiser, model_input_region
from tuneae.files import atomic_write

REPORT_FILE = "denoise.json"
"""The record written into the output folder."""
PREVIEW_DIR = "previews"
"""Sub-folder of the output folder holding the ``--preview`` PNGs."""


class DenoiseError(RuntimeError):
    """A problem the user must fix (bad input, outputs in the way, no model); the message says what and where."""


@dataclass
class Job:
    """One input file and where its output goes."""

    path: Path
    out: Path
    explicit: bool
    """Named on the command line (not found in a folder): a DICOM file without pixel data is then an error."""
    format: str = ""
    slices: int = 0


# -------------------------------------------------------------------------------------------- inputs and outputs
def collect(inputs: list[str], out_dir: Path) -> tuple[list[Job], list[str]]:
    """The files to denoise and their outputs: a file -> ``out/<name>``; a folder (searched recursively, hidden
    files left out) -> ``out/<folder name>/<path inside it>`` for every image file in it (known ending or DICOM
    magic).

    Returns:
        (jobs, files in folders that are not images, ignored).
    Raises:
        DenoiseError: an input that does not exist, or a folder without image files.
    """
    jobs: list[Job] = []
    ignored: list[str] = []
    for arg in inputs:
        p = Path(arg).expanduser()
        if p.is_file():
            jobs.append(Job(p, out_dir / p.name, explicit=True))
        elif p.is_dir():
            found = 0
            base = p.resolve().name or "input"
            for f in sorted(p.rglob("*")):
                rel = f.relative_to(p)
                if not f.is_file() or any(part.startswith(".") for part in rel.parts):
                    continue
                if images.is_image_file(f):
                    jobs.append(Job(f, out_dir / base / rel, explicit=False))
                    found += 1
                else:
                    ignored.append(_rel(f))
            if not found:
                raise DenoiseError(f"{arg}: folder without image files (PNG / JPEG / TIFF / BMP, DICOM, NIfTI)")
        else:
            raise DenoiseError(f"{arg}: no such file or folder")
    return jobs, ignored


def check_inputs(jobs: list[Job], skip_unreadable: bool) -> tuple[list[Job], list[dict], list[str]]:
    """Decode every input once (the default window and plane) before any model is loaded.

    Returns:
        (readable jobs, skipped ``{"path", "error"}``, DICOM files without pixel data found in folders (ignored)).
    Raises:
        DenoiseError: unreadable or unsupported files without ``skip_unreadable``, naming each of them.
    """
    good, bad, no_pixels = [], [], []
    for job in jobs:
        try:
            d = formats.read(job.path)
        except formats.NotAnImageError as exc:
            if job.explicit:
                bad.append({"path": _rel(job.path), "error": str(exc)})
            else:
                no_pixels.append(_rel(job.path))
            continue
        except formats.UnreadableError as exc:
            bad.append({"path": _rel(job.path), "error": str(exc)})
            continue
        job.format, job.slices = d.format, len(d.slices)
        good.append(job)
    if bad and not skip_unreadable:
        listed = "\n  ".join(b["error"] for b in bad[:20])
        more = f"\n  ... and {len(bad) - 20} more" if len(bad) > 20 else ""
        raise DenoiseError(f"{len(bad)} input file(s) cannot be denoised (pass --skip-unreadable to go on "
                           f"without them):\n  {listed}{more}")
    if not good:
        raise DenoiseError("no readable input file")
    return good, bad, no_pixels


def check_outputs(jobs: list[Job], out_dir: Path, preview: bool, overwrite: bool) -> None:
    """Refuse outputs that collide with each other, or would replace an input or an earlier output.

    Raises:
        DenoiseError: naming the paths (``--overwrite`` allows replacing, never two inputs onto one output).
    """
    seen: dict[Path, Path] = {}
    for job in jobs:
        key = job.out.resolve()
        if key in seen:
            raise DenoiseError(f"{job.path} and {seen[key]} would both be written to {job.out}; denoise them in "
                               f"separate runs or put them in separate folders")
        seen[key] = job.path
    if overwrite:
        return
    inputs = {j.path.resolve() for j in jobs}
    planned = [j.out for j in jobs] + [out_dir / REPORT_FILE]
    if preview:
        planned += [preview_path(out_dir, j) for j in jobs]
    clash = [p for p in planned if p.resolve() in inputs]
    if clash:
        raise DenoiseError(f"the output would overwrite its input: {_rel(clash[0])}"
                           f"{f' (and {len(clash) - 1} more)' if len(clash) > 1 else ''}; choose another --out "
                           f"(or --overwrite)")
    exist = [p for p in planned if p.exists()]
    if exist:
        raise DenoiseError(f"{len(exist)} output(s) exist already, e.g. {_rel(exist[0])}; choose another --out or "
                           f"pass --overwrite")


def preview_path(out_dir: Path, job: Job) -> Path:
    """Where ``--preview`` writes a job's PNG: ``<out>/<PREVIEW_DIR>/<the output's path below out>.png``."""
    rel = job.out.relative_to(out_dir)
    return out_dir / PREVIEW_DIR / rel.parent / f"{rel.name}.png"


# -------------------------------------------------------------------------------------------- noise level
def estimate_sigmas(slices: np.ndarray, den: Denoiser, resolution: str) -> tuple[float, float]:
    """The noise sigma of a file on the [0, 1] scale: the median over its non-constant slices of
    ``skimage.restoration.estimate_sigma`` (wavelet MAD, Donoho & Johnstone 1994), of the slice as given and of
    what the model sees (``resize``: the resized image, whose noise Lanczos averaging lowers)."""
    from skimage.restoration import estimate_sigma

    size = den.model.cfg.image_size
    given, seen = [], []
    for s in slices:
        if s.max() <= s.min():
            continue
        given.append(float(estimate_sigma(s, channel_axis=None)))
        seen.append(given[-1] if resolution == "native" else
                    float(estimate_sigma(model_input_region(s, size), channel_axis=None)))
    if not given:
        return 0.0, 0.0
    return float(np.median(given)), float(np.median(seen))


def sigma_note(sigma: float, den: Denoiser) -> str:
    """``""`` when ``sigma`` (what the model sees) lies in the training range, else a warning's text."""
    rng = den.sigma_range
    if rng is None:
        return f"the {den.kind} model was trained without noise: it reconstructs, it is no denoiser"
    lo, hi = rng
    if sigma < lo:
        return (f"estimated sigma {sigma:.3f} is below the model's training range [{lo:g}, {hi:g}]: it may remove "
                f"detail along with the noise")
    if sigma > hi:
        return f"estimated sigma {sigma:.3f} is above the model's training range [{lo:g}, {hi:g}]: noise may remain"
    return ""


# -------------------------------------------------------------------------------------------- preview
def preview_png(before: np.ndarray, after: np.ndarray, title: str) -> bytes:
    """A PNG of input, output and their difference (what was removed) side by side.

    Args:
        before, after: (H, W) on the [0, 1] scale (shown clipped to it); the difference on [-0.25, 0.25].
        title: the figure's title.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10.5, 3.9), dpi=100, layout="constrained")
    axes = fig.subplots(1, 3)
    for ax, img, name, kw in ((axes[0], before, "input", {"cmap": "gray", "vmin": 0, "vmax": 1}),
                              (axes[1], after, "denoised", {"cmap": "gray", "vmin": 0, "vmax": 1}),
                              (axes[2], before - after, "input - denoised", {"cmap": "RdBu_r", "vmin": -0.25,
                                                                             "vmax": 0.25})):
        im = ax.imshow(img, interpolation="nearest", **kw)
        ax.set_title(name)
        ax.axis("off")
    fig.colorbar(im, ax=axes[2], shrink=0.8)
    fig.suptitle(title, fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


# -------------------------------------------------------------------------------------------- the run
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line of ``python -m tuneae.denoise`` (``argv`` None: ``sys.argv[1:]``).

    Raises:
        SystemExit: bad flags (status 2) or ``--help``, from argparse.
    """
    ap = argparse.ArgumentParser(prog="python -m tuneae.denoise",
                                 description="Denoise MRI images, volumes and series with a trained tuneae model; "
                                             "outputs in each input's own format, grid, dtype and metadata.")
    ap.add_argument("inputs", nargs="+", metavar="INPUT",
                    help="files or folders: PNG / JPEG / TIFF / BMP (8-, 16-bit, float), DICOM (files, series "
                         "folders, folders with a DICOMDIR), NIfTI (.nii, .nii.gz; 3-D and 4-D)")
    ap.add_argument("--out", required=True, help="output folder (created); receives one file per input and "
                                                 f"{REPORT_FILE}")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="results/<name>: its best model of --kind (final fit's best seed, else the "
                                   "search's best trial)")
    src.add_argument("--checkpoint", help="any tuneae checkpoint (model.pt or its folder)")
    ap.add_argument("--kind", help="model kind: with --run which one (default: the run's best denoiser, dae, "
                                   "dunet or dncnn); ae / vae / unet reconstruct through the model, they do not "
                                   "denoise")
    ap.add_argument("--experiment", help="with --run: the experiment folder, when it moved since the search")
    ap.add_argument("--resolution", choices=RESOLUTIONS, default="auto",
                    help="native: pad to a multiple of 2**depth and crop back (U-Nets; dncnn needs no padding; "
                         "fully convolutional kinds only); resize: to the model's image size and back, as training "
                         "prepared images; auto (default): native for U-Nets and dncnn, resize for bottleneck models")
    ap.add_argument("--plane", choices=sorted(images.PLANES),
                    help="how NIfTI volumes are cut into slices (default: the plane the model was trained on)")
    ap.add_argument("--batch-size", type=int, default=8, help="slices per forward pass (default 8)")
    ap.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda, cuda:1, mps")
    ap.add_argument("--preview", action="store_true",
                    help=f"also write {PREVIEW_DIR}/<output>.png: input, output and difference of the middle slice")
    ap.add_argument("--jpeg-quality", type=int, default=95, help="quality of JPEG outputs (default 95)")
    ap.add_argument("--overwrite", action="store_true", help="replace existing outputs (and inputs, if --out "
                                                             "points at them)")
    ap.add_argument("--skip-unreadable", action="store_true",
                    help="go on without unreadable or unsupported inputs (listed on stderr and in the record)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    if args.batch_size < 1:
        ap.error("--batch-size must be >= 1")
    if not 1 <= args.jpeg_quality <= 100:
        ap.error("--jpeg-quality must lie in [1, 100]")
    return args


def run(args: argparse.Namespace, argv: list[str]) -> dict:
    """Do the work of :func:`main`; returns the record written to ``denoise.json``.

    Raises:
        DenoiseError: bad inputs or outputs in the way (before the model is loaded).
        ModelError: no usable model.
    """
    from tqdm import tqdm

    started = time.time()
    out_dir = Path(args.out).expanduser()
    jobs, ignored = collect(args.inputs, out_dir)
    jobs, skipped, no_pixels = check_inputs(jobs, args.skip_unreadable)
    for s in skipped:
        print(f"skipped (unreadable): {s['error']}", file=sys.stderr)
    check_outputs(jobs, out_dir, args.preview, args.overwrite)

    den = load_denoiser(checkpoint=args.checkpoint, run=args.run, kind=args.kind, experiment=args.experiment,
                        device=args.device)
    resolution = den.resolution(args.resolution)
    plane = args.plane or den.plane
    info = formats.OutputInfo(model_label=f"{den.label}, resolution {resolution}", kind=den.kind,
                              jpeg_quality=args.jpeg_quality)
    rng = den.sigma_range
    trained = f"trained on sigma {rng[0]:g}-{rng[1]:g}" if rng else "trained without noise"
    print(f"model: {den.label} [{den.source}]; {trained}; resolution {resolution}; device {den.device}",
          file=sys.stderr)
    if den.role != "denoiser":
        print(f"warning: the {den.kind} model reconstructs its input through the model; it was not trained to "
              f"denoise", file=sys.stderr)

    records = []
    bar = tqdm(total=sum(j.slices for j in jobs), unit="slice", disable=args.no_progress, file=sys.stderr)
    try:
        for job in jobs:
            d = formats.read(job.path, window=den.window, plane=plane)
            sigma, sigma_model = estimate_sigmas(d.slices, den, resolution)
            note = sigma_note(sigma_model, den)
            shown = f"sigma {sigma:.3f}" + (f" (at the model's scale {sigma_model:.3f})" if resolution == "resize"
                                             else "")
            bar.write(f"{_rel(job.path)}: {shown}, {trained}" + (f"; warning: {note}" if note else ""),
                      file=sys.stderr)
            for w in d.warnings:
                bar.write(f"warning: {w}", file=sys.stderr)
            denoised = den.apply(d.slices, resolution, args.batch_size, progress=bar.update)
            atomic_write(job.out, d.encode(denoised, info))
            rec = {"input": _rel(job.path), "output": _rel(job.out), "format": d.format, "shape": list(d.shape),
                   "dtype": d.dtype, "slices": len(d.slices), "sigma": round(sigma, 5),
                   "sigma_model_input": round(sigma_model, 5), "sigma_warning": note,
                   "windows": [w.to_json() for w in d.windows], "warnings": d.warnings}
            if args.preview:
                per_volume = len(d.slices) // max(len(d.windows), 1)  # a 4-D NIfTI: one window per 3-D volume
                k = min(per_volume // 2, len(d.slices) - 1)  # the middle slice of the first volume
                png = preview_png(d.slices[k], denoised[k], f"{_rel(job.path)} (slice {k + 1} of {len(d.slices)}), "
                                                           f"{den.kind} {den.role}, {resolution}")
                atomic_write(preview_path(out_dir, job), png)
                rec["preview"] = _rel(preview_path(out_dir, job))
            records.append(rec)
    finally:
        bar.close()

    cfg = den.model.cfg
    record = {
        "command": shlex.join(["python", "-m", "tuneae.denoise", *argv]),
        "tuneae_version": den.payload.get("tuneae_version"),
        "model": {"kind": den.kind, "role": den.role, "checkpoint": _rel(den.checkpoint), "source": den.source,
                  "epoch": den.payload.get("epoch"), "metrics": den.payload.get("metrics"),
                  "image_size": cfg.image_size, "depth": cfg.depth, "train_noise_sigma": list(rng) if rng else None,
                  "noise_protocol": (den.payload.get("train_config") or {}).get("noise_protocol"),
                  "window_percentiles": list(den.window), "plane": plane},
        "resolution": resolution, "device": str(den.device), "sigma_scale": "[0, 1] model scale",
        "inputs": records, "skipped": skipped, "no_pixel_data": no_pixels, "ignored": ignored,
        "series_uids": info.series_uids, "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "wall_time_s": round(time.time() - started, 2),
    }
    atomic_write(out_dir / REPORT_FILE, json.dumps(record, indent=1) + "\n")
    return record


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status (0 done, 1 an error explained on stderr, 2 bad arguments)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    try:
        record = run(args, argv)
    except (DenoiseError, ModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {len(record['inputs'])} file(s) and {_rel(Path(args.out) / REPORT_FILE)}", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

__all__ = ["DenoiseError", "Job", "main", "run"]
