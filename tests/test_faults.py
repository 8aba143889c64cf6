"""Faults of a search on one machine, through the real entry point: a diverging trial, a killed driver, Ctrl-C.

Each test runs ``python -m tuneae.search --preset smoke`` as a subprocess in its own Ray instance (a private
``RAY_TMPDIR``, see ``SearchDir`` in conftest) and kills only the processes it started.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import pickle
import signal
import struct
import time
from pathlib import Path

import pytest

from tuneae.checkpoint import asha_rungs, checkpoint_kind
from tuneae.config import TrainConfig
from tuneae.search.session import TRAIN_POLL_ENV


def _poll(condition, timeout: float, what: str, proc=None, interval: float = 0.3):
    """Wait until ``condition()`` is truthy and return its value; fail after ``timeout`` s or if ``proc`` exits."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the search exited ({proc.returncode}) before {what}")
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def _saved_trials(kind_dir: Path) -> dict[str, str]:
    """Trial id -> status in the newest experiment state Tune saved in ``kind_dir`` ({} while none is readable)."""
    files = sorted(kind_dir.glob("experiment_state-*.json"))
    if not files:
        return {}
    try:
        state = json.loads(files[-1].read_text())
    except (OSError, ValueError):  # being written
        return {}
    trials = (json.loads(trial_json) for trial_json, _ in state["trial_data"])
    return {t["trial_id"]: t["status"] for t in trials}


def _digests(folders: list[Path]) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``folders``."""
    return {str(f): hashlib.sha256(f.read_bytes()).hexdigest()
            for d in folders for f in sorted(d.rglob("*")) if f.is_file()}


def _searcher_trials(kind_dir: Path) -> dict[str, dict]:
    """Tune trial id -> params of every trial in the Optuna study of the newest ``searcher-state-*.pkl``."""
    newest = max(kind_dir.glob("searcher-state-*.pkl"), key=os.path.getmtime)
    with newest.open("rb") as f:
        state = pickle.load(f)  # written by this test's own search: trusted
    study = {t.number: t.params for t in state["study"].get_trials()}  # Optuna's own record of the search
    assert len(study) == len(state["trials"]), "Optuna study and Tune trials disagree"
    return {tune_id: study[ot_trial.number] for tune_id, ot_trial in state["trials"].items()}


def _epochs(result_json: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in result_json.read_text().splitlines() if line.strip()]


def _wandb_record_types(path: Path) -> list[str]:
    """Record types in a ``run-*.wandb`` file (W&B's LevelDB-style log: 32 KiB blocks of CRC/length/type chunks)."""
    from wandb.proto import wandb_internal_pb2

    data, pos, buf, kinds = path.read_bytes(), 7, b"", []  # 7-byte file header ":W&B" + magic + version
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:  # block trailer
            pos += left
            continue
        _, length, chunk_type = struct.unpack("<IHB", data[pos:pos + 7])
        if chunk_type == 0:  # zero padding up to the end of a block
            pos += left
            continue
        buf += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if chunk_type in (1, 4):  # FULL or LAST: a whole record
            record = wandb_internal_pb2.Record()
            record.ParseFromString(buf)
            kinds.append(record.WhichOneof("record_type"))
            buf = b""
    return kinds


def _assert_wandb_runs_closed(wandb_dir: Path) -> int:
    runs = sorted(wandb_dir.rglob("offline-run-*/run-*.wandb"))
    assert runs, f"no W&B offline runs under {wandb_dir}"
    unclosed = [r.parent.name for r in runs if "exit" not in _wandb_record_types(r)]
    assert not unclosed, f"W&B runs without an exit record (not finished): {unclosed}"
    return len(runs)


def test_diverging_trial_fails_alone_with_its_reason(search_dir, tmp_path):
    """lr=1e12 makes the loss NaN in the first epoch (checked with plain PyTorch): that trial fails, not retried,
    with a readable reason; the lr=1e-3 trial finishes; the search goes on and exits 0 (a best trial exists).

    Only lr varies, so the space holds two configurations: the seed project's recipe (lr 5e-4, nearest choice 1e-3) runs
    first, and the second trial is lr=1e12 whatever TPE proposes (a repeat is replaced by the nearest untried one)."""
    one_axis = tmp_path / "one_axis.toml"
    one_axis.write_text('[space]\n"model.latent_layout" = ["dense"]\n"model.recon_loss" = ["mse"]\n')
    rc, out = search_dir.run("--model", "ae", "--num-samples", "2", "--lr", "1e12", "1e-3", "--epochs", "1",
                             "--batch-size", "16", "--latent-dim", "16", "--config", str(one_axis), "--no-wandb")
    assert rc == 0, out[-3000:]
    rows = search_dir.rows()
    assert len(rows) == 2
    failed = [r for r in rows if r["status"] == "ERROR"]
    ok = [r for r in rows if r["status"] == "TERMINATED"]
    assert failed and ok, [(r["train.lr"], r["status"]) for r in rows]
    for r in failed:
        assert float(r["train.lr"]) == 1e12
        assert r["error"].startswith("FloatingPointError: training loss is nan (diverged)"), r["error"]
        # failed at once inside the worker loop, not after Ray Train's retries (those raise a WorkerGroupError)
        error_txt = (search_dir.experiment / "ae" / f"trial_{r['trial_id']}" / "error.txt").read_text()
        assert "WorkerGroupError" not in error_txt and "TrainingFailedError" not in error_txt
        assert not list((search_dir.experiment / "train" / f"trial-{r['trial_id']}").glob("checkpoint_*"))
    for r in ok:
        assert float(r["train.lr"]) == 1e-3 and int(r["last_epoch"]) >= 1 and r["checkpoint_path"]
    m = search_dir.summary()["models"]["ae"]
    assert m["failed"] == len(failed) and m["best_trial"] in {r["trial_id"] for r in ok}
    assert {f["trial_id"]: f["error"] for f in m["failures"]} == {r["trial_id"]: r["error"] for r in failed}


def test_killed_driver_resumes_without_rerunning_finished_trials(search_dir):
    """SIGKILL the driver once ae is done and a vae trial has finished; ``--resume`` keeps ae as it is, continues
    vae's unfinished trial (same id, from its checkpoint) with the searcher's history, and ends with exactly
    ``num_samples`` trials per kind. One trial at a time, so the kill always finds vae half done."""
    args = ("--model", "ae", "vae", "--num-samples", "2", "--max-concurrent", "1", "--no-wandb")
    proc = search_dir.start(*args)
    exp = search_dir.experiment
    _poll(lambda: "TERMINATED" in _saved_trials(exp / "vae").values(), 600, "a finished vae trial", proc)

    tree = search_dir.tree(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    # Ray's processes share the driver's fate; whatever outlives it for 30 s is killed (only this tree)
    deadline = time.time() + 30
    while search_dir.alive(tree) and time.time() < deadline:
        time.sleep(0.5)
    for pid in search_dir.alive(tree):
        os.kill(pid, signal.SIGKILL)

    before = {kind: _saved_trials(exp / kind) for kind in ("ae", "vae")}
    assert len(before["ae"]) == 2 and set(before["ae"].values()) == {"TERMINATED"}, before
    finished = {(k, t) for k, trials in before.items() for t, s in trials.items() if s == "TERMINATED"}
    assert len(finished) == 3, before
    finished_dirs = [exp / k / f"trial_{t}" for k, t in finished] + [exp / "train" / f"trial-{t}" for _, t in finished]
    digests = _digests(finished_dirs)
    searcher_before = _searcher_trials(exp / "vae")

    rc, out = search_dir.run(*args, "--resume", log="resume.log")
    assert rc == 0, out[-3000:]
    assert "[tuneae] ae already finished" in out and "[tuneae] resuming vae" in out
    s = search_dir.summary()
    assert s["interrupted"] is None and set(s["models"]) == {"ae", "vae"}
    rows = search_dir.rows()
    for kind in ("ae", "vae"):
        ids = {r["trial_id"] for r in rows if r["model"] == kind}
        assert len(ids) == 2 and set(before[kind]) <= ids, (kind, ids, before[kind])  # same ids, no extra trials
        assert all(r["status"] == "TERMINATED" for r in rows if r["model"] == kind)
    assert _digests(finished_dirs) == digests, "a finished trial was touched by the resumed run"
    # the searcher continued its own study: the earlier suggestions are in it, and nothing was suggested twice
    searcher_after = _searcher_trials(exp / "vae")
    assert len(searcher_after) == 2
    assert {t: searcher_after[t] for t in searcher_before} == searcher_before
    # resumed trials continued from their Train checkpoints: no epoch is reported twice
    for result_json in glob.glob(str(exp / "*" / "trial_*" / "result.json")):
        epochs = _epochs(Path(result_json))
        assert epochs == sorted(set(epochs)), (result_json, epochs)


def test_ctrl_c_closes_wandb_and_the_search_resumes(search_dir):
    """SIGINT with W&B (offline) on, during the first of two trials: exit 130 within 60 s, summary.json says where
    it stopped, every W&B run is finished (exit record) and no process of the search survives; ``--resume`` then
    completes the search."""
    args = ("--model", "ae", "--num-samples", "2", "--max-concurrent", "1", "--epochs", "20",
            "--wandb-mode", "offline")
    # Ray Train's default poll (2 s; tuneae's is 0.25 s) lets a report through at most every 2 s: 20 smoke epochs
    # then take 40 s or more, so the first trial is surely mid-way when the signal comes, however loaded the machine
    proc = search_dir.start(*args, env={TRAIN_POLL_ENV: "2.0"})
    exp = search_dir.experiment
    first = _poll(lambda: [p for p in (exp / "ae").glob("trial_*/result.json") if p.stat().st_size], 600,
                  "a first reported epoch", proc)[0]  # the second trial has not started: the search is mid-way

    tree = search_dir.tree(proc.pid)
    assert any("wandb" in cmd or "Wandb" in cmd for cmd in search_dir.alive(tree).values())
    start = time.time()
    os.kill(proc.pid, signal.SIGINT)
    rc = proc.wait(timeout=180)
    took = time.time() - start
    assert rc == 130, (search_dir.root / "run.log").read_text()[-3000:]
    assert took < 60, f"Ctrl-C took {took:.0f} s"
    deadline = time.time() + 30
    while search_dir.alive(tree) and time.time() < deadline:
        time.sleep(0.5)
    assert not search_dir.alive(tree), f"left running after Ctrl-C: {search_dir.alive(tree)}"

    s = search_dir.summary()
    assert s["interrupted"] == "ae"
    assert any(r["status"] == "INTERRUPTED" for r in search_dir.rows())
    assert max(_epochs(first)) < 20, "the first trial was not interrupted mid-way"
    _assert_wandb_runs_closed(exp / "wandb")  # including the run of the trial stopped mid-way

    rc, out = search_dir.run(*args, "--resume", log="resume.log")
    assert rc == 0, out[-3000:]
    s = search_dir.summary()
    assert s["interrupted"] is None and s["models"]["ae"]["trials"] == 2
    assert all(r["status"] == "TERMINATED" for r in search_dir.rows())
    assert _assert_wandb_runs_closed(exp / "wandb") >= 3  # the interrupted trial logs a second run when resumed
    _assert_resumed_from_a_checkpoint(_epochs(first), last=20, rungs=asha_rungs(1, 2.0, 20))


def _assert_resumed_from_a_checkpoint(epochs: list[int], last: int, rungs: tuple[int, ...]) -> None:
    """``epochs`` (one trial's ``result.json``, in order) end with c+1, ..., last after the resume, where c >= 1 is an
    epoch the trial checkpointed (a rung or a resume checkpoint, :func:`tuneae.checkpoint.checkpoint_kind`): it
    continued from its latest checkpoint, not from scratch. Before the resume the file holds 1, ..., k (k >= c:
    the epochs after c are trained again), or nothing when Tune started the file afresh."""
    cut = max((i for i in range(1, len(epochs)) if epochs[i] != epochs[i - 1] + 1), default=0)
    before, after = epochs[:cut], epochs[cut:]
    assert after and after == list(range(after[0], last + 1)), epochs
    assert not before or before == list(range(1, len(before) + 1)), epochs
    if after[0] == 1:  # one uninterrupted run of epochs: the resume went on right after the last report
        assert not before, epochs
        return
    resumed_at = after[0] - 1
    assert checkpoint_kind(resumed_at, last, TrainConfig().checkpoint_every, rungs), epochs


def test_names_moves_and_wandb_record_of_finished_runs(search_dir):
    """Names, moved folders and the W&B record, with a search of one 1-epoch trial:

    - ``--storage-path=~/runs`` (left unexpanded by the shell) lands in $HOME, not in a folder named ``~``;
    - summary.json counts the W&B runs actually written (one offline run);
    - the same command again leaves the finished run alone and runs as ``x-2``;
    - after the experiment folder moved, ``--resume`` from its new place keeps the finished trial, rewrites
      summary.json with the new place, and records that W&B had nothing to log.
    """
    home, moved = search_dir.root / "home", search_dir.root / "moved"
    args = ("--model", "ae", "--num-samples", "1", "--epochs", "1", "--batch-size", "16", "--latent-dim", "16",
            "--storage-path=~/runs", "--results-dir=~/results")
    rc, out = search_dir.run(*args, "--wandb-mode", "offline")
    assert rc == 0, out[-3000:]
    assert (home / "runs" / "x" / "ae").is_dir() and not (search_dir.root / "~").exists()
    summary_file = home / "results" / "x" / "summary.json"
    first = summary_file.read_text()
    s = json.loads(first)
    assert s["wandb"]["runs_written"] == 1 and s["wandb"]["status"] == "logged", s["wandb"]
    assert len(list((home / "runs" / "x" / "wandb").rglob("offline-run-*/run-*.wandb"))) == 1

    rc, out = search_dir.run(*args, "--no-wandb", log="again.log")
    assert rc == 0, out[-3000:]
    assert "'x' belongs to a finished run" in out and "named 'x-2'" in out
    assert summary_file.read_text() == first  # the finished run's results are untouched
    assert json.loads((home / "results" / "x-2" / "summary.json").read_text())["search"]["name"] == "x-2"

    moved.mkdir()
    (home / "runs" / "x").rename(moved / "x")
    rc, out = search_dir.run(*args, "--wandb-mode", "offline", "--resume", "--storage-path", str(moved),
                             log="resume.log")
    assert rc == 0, out[-3000:]
    assert "[tuneae] ae already finished" in out
    s = json.loads(summary_file.read_text())
    assert (summary_file.parent / s["experiment_dir"]).resolve() == (moved / "x").resolve()
    assert s["wandb"]["status"] == "nothing to log" and s["wandb"]["runs_written"] == 0, s["wandb"]
    assert (summary_file.parent / s["wandb"]["dir"]).resolve() == (moved / "x" / "wandb").resolve()
    from tuneae.run import find_run

    run = find_run(summary_file.parent)  # the report finds the moved checkpoints without --experiment
    assert run.trials["ae"].checkpoint.resolve().is_relative_to((moved / "x").resolve())
    assert run.trials["ae"].checkpoint.is_dir()
