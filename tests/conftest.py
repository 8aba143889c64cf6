"""Shared fixtures: tiny data, one Ray session per test run, one smoke search run through the real entry point."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = REPO.parent / "shared" / "data" / "brain-tumor-mri"
SMOKE_KINDS = ("ae", "vae", "dae", "unet", "dunet")
"""Every model kind runs one smoke search."""


@pytest.fixture(scope="session")
def ray_session(tmp_path_factory):
    """One local Ray session (2 CPUs) shared by every in-process Ray test; shut down at the end."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    from tuneae.search import start_local_ray

    start_local_ray(num_cpus=2)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> dict:
    """Run ``python -m tuneae.search --preset smoke --model <every kind>`` once, as a subprocess, in a temp dir.

    Returns:
        ``{"root": Path, "results": Path (results/smoke), "storage": Path, "summary": dict, "stdout": str}``.
    """
    root = tmp_path_factory.mktemp("smoke")
    env = {**os.environ, "HOME": str(root / "home"), "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    env.pop("WANDB_API_KEY", None)
    cmd = [sys.executable, "-m", "tuneae.search", "--preset", "smoke", "--model", *SMOKE_KINDS,
           "--storage-path", str(root / "runs"), "--results-dir", str(root / "results"), "--name", "smoke"]
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, f"smoke search failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"  # noqa: E501
    results = root / "results" / "smoke"
    return {"root": root, "results": results, "storage": root / "runs", "stdout": proc.stdout,
            "summary": json.loads((results / "summary.json").read_text())}
