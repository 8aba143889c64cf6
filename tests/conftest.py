"""Shared fixtures: tiny data, one Ray session per test run, one smoke search run through the real entry point."""
from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = REPO.parent / "shared" / "data" / "brain-tumor-mri"
SMOKE_KINDS = ("ae", "vae", "dae", "dunet")
"""The kinds of the shared smoke search: every bottleneck kind and the denoising U-Net. The plain U-Net (``unet``) is
the same ``UNetAE`` without input noise; its model is tested in test_models.py and its search path is the
denoising U-Net's, so it is left out to keep the suite's time (each kind costs about two minutes here)."""


@pytest.fixture(scope="session")
def ray_session(tmp_path_factory):
    """One local Ray session (2 CPUs) shared by every in-process Ray test; shut down at the end."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    from tuneae.search.session import start_local_ray

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
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=1800, check=False)
    assert proc.returncode == 0, f"smoke search failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"  # noqa: E501
    results = root / "results" / "smoke"
    return {"root": root, "results": results, "storage": root / "runs", "stdout": proc.stdout,
            "summary": json.loads((results / "summary.json").read_text())}


def best_checkpoint(run: dict, kind: str) -> Path:
    """The best checkpoint folder of ``kind`` in a :func:`smoke_run` (summary.json records it relative to the
    experiment folder, which it records relative to the results folder)."""
    from tuneae.layout import RunLayout

    layout = RunLayout.from_summary(run["results"], run["summary"])
    return layout.checkpoint(run["summary"]["models"][kind]["best_checkpoint"])


# ---------------------------------------------------------------------------- searches in their own Ray instances
def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of a live process, or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()  # the command name may contain spaces
    return int(fields[1]), int(fields[19])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class SearchDir:
    """One test's search: a temp folder, a private ``RAY_TMPDIR``, the command line and the processes it started.

    Every Ray instance the test starts (``ray.init`` in a search subprocess, a ``ray.cluster_utils.Cluster`` in the
    test process) keeps its sessions, sockets and ``ray_current_cluster`` file (read by ``address="auto"``) under
    ``ray_tmp``, so it never meets another Ray on this machine. :meth:`cleanup` kills, by PID, whatever is still
    running from it, and the process trees of the searches it started.
    """

    def __init__(self, root: Path, ray_tmp: Path, name: str = "x"):
        self.root, self.ray_tmp, self.name = root, ray_tmp, name
        self.storage, self.results = root / "runs", root / "results"
        self.env = {**os.environ, "HOME": str(root / "home"), "RAY_TMPDIR": str(ray_tmp),
                    "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
        self.env.pop("WANDB_API_KEY", None)
        self.env.pop("RAY_ADDRESS", None)
        self._started: dict[int, int] = {}  # pid -> start time, of every process seen in a started tree

    @property
    def experiment(self) -> Path:
        """``<storage>/<name>``: Tune state, Train checkpoints, W&B files."""
        return self.storage / self.name

    def cmd(self, *args: str) -> list[str]:
        """``python -m tuneae.search --preset smoke`` with this folder's storage, results and name, then ``args``."""
        return [sys.executable, "-m", "tuneae.search", "--preset", "smoke", "--storage-path", str(self.storage),
                "--results-dir", str(self.results), "--name", self.name, *args]

    def start(self, *args: str, log: str = "run.log", env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start a search in the background, output to ``root/log``."""
        with (self.root / log).open("w") as out:
            proc = subprocess.Popen(self.cmd(*args), cwd=self.root, env={**self.env, **(env or {})}, stdout=out,
                                    stderr=subprocess.STDOUT)
        self._started[proc.pid] = (_stat(proc.pid) or (0, 0))[1]
        return proc

    def run(self, *args: str, log: str = "run.log", timeout: float = 600,
            env: dict[str, str] | None = None) -> tuple[int, str]:
        """Run a search to its end; returns (exit code, output)."""
        proc = self.start(*args, log=log, env=env)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill_tree(proc.pid)
            raise
        return rc, (self.root / log).read_text()

    def summary(self) -> dict:
        """``results/<name>/summary.json``."""
        return json.loads((self.results / self.name / "summary.json").read_text())

    def rows(self) -> list[dict[str, str]]:
        """``results/<name>/trials.csv`` as dicts."""
        with (self.results / self.name / "trials.csv").open() as f:
            return list(csv.DictReader(f))

    def tree(self, pid: int) -> dict[int, int]:
        """``pid`` and its live descendants, pid -> start time (remembered for :meth:`cleanup`)."""
        table = {p: st for p in (int(e.name) for e in os.scandir("/proc") if e.name.isdigit())
                 if (st := _stat(p)) is not None}
        out, todo = {}, [pid]
        while todo:
            p = todo.pop()
            if p in table and p not in out:
                out[p] = table[p][1]
                todo += [c for c, (ppid, _) in table.items() if ppid == p]
        self._started.update(out)
        return out

    @staticmethod
    def alive(procs: dict[int, int]) -> dict[int, str]:
        """The processes of ``procs`` (pid -> start time) still running, pid -> command line."""
        return {p: _cmdline(p) for p, t in procs.items() if (st := _stat(p)) is not None and st[1] == t}

    def kill_tree(self, pid: int) -> None:
        """SIGKILL ``pid`` and all its descendants (a snapshot taken first, so orphans are found too)."""
        for p in self.alive(self.tree(pid)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)

    def cleanup(self) -> None:
        """Kill what is left: the started trees and every process whose command line names ``ray_tmp``."""
        for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
            if str(self.ray_tmp) in _cmdline(int(pid)):
                self.tree(int(pid))
        for p in self.alive(self._started):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)


@pytest.fixture
def search_dir(tmp_path, monkeypatch):
    """A :class:`SearchDir` in ``tmp_path``; ``RAY_TMPDIR`` also points to it in this process (for ``Cluster``)."""
    ray_tmp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: unix socket paths must stay < 108 bytes
    monkeypatch.setenv("RAY_TMPDIR", str(ray_tmp))
    sd = SearchDir(tmp_path, ray_tmp)
    yield sd
    sd.cleanup()
    shutil.rmtree(ray_tmp, ignore_errors=True)
