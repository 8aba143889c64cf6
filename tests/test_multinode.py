"""The search on a Ray cluster of several nodes, simulated on this machine with ``ray.cluster_utils.Cluster``.

Every node of a ``Cluster`` is a real raylet (own CPUs, object store and node id) sharing this machine's
file system, so the experiment storage is shared storage, as on a cluster with NFS or S3. The search runs as
``python -m tuneae.search`` in a subprocess that joins the cluster through ``RAY_ADDRESS`` or ``--address auto``.
"""
from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from tuneae.search.session import TRAIN_POLL_ENV


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def make_cluster(search_dir):
    """Factory ``make(head_cpus, *worker_cpus) -> Cluster``; the nodes live in ``search_dir``'s private Ray temp
    dir and are removed afterwards (node by node without a graceful stop, then the internal KV reset that
    ``Cluster.shutdown`` also does)."""
    from ray.cluster_utils import Cluster

    clusters = []

    def make(head_cpus: int, *worker_cpus: int) -> Cluster:
        # The head holds node:__internal_head__, where the Tune driver functions run; its dashboard serves the
        # State API that Ray Train's placement-group cleaner asks.
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": head_cpus, "include_dashboard": True, "dashboard_port": _free_port()})
        clusters.append(cluster)
        for cpus in worker_cpus:
            cluster.add_node(num_cpus=cpus)
        return cluster

    yield make
    from ray.experimental import internal_kv

    for cluster in clusters:
        for node in list(cluster.worker_nodes):
            cluster.remove_node(node, allow_graceful=False)
        if cluster.head_node is not None:
            cluster.remove_node(cluster.head_node, allow_graceful=False)
    # Starting a head node points this process's internal KV store at its GCS (ray._private.node); left so, the
    # next Ray call that records a usage tag (an Optuna searcher's set-up, in a later test) waits 60 s for the dead
    # GCS and Ray then ends the whole test process with exit code 1. Cluster.shutdown resets it the same way.
    internal_kv._internal_kv_reset()


def _results(result_json: Path) -> list[dict]:
    return [json.loads(line) for line in result_json.read_text().splitlines() if line.strip()]


def test_trials_run_on_both_nodes(make_cluster, search_dir):
    """Head and worker node with one CPU each, joined through RAY_ADDRESS: the two concurrent trials land on
    different nodes, and trials.csv records each trial's node."""
    cluster = make_cluster(1, 1)
    head, worker = cluster.head_node.node_id, next(iter(cluster.worker_nodes)).node_id
    rc, out = search_dir.run("--model", "ae", "--num-samples", "2", "--no-wandb",
                             env={"RAY_ADDRESS": cluster.address})
    assert rc == 0, out[-3000:]
    assert f"Connecting to existing Ray cluster at address: {cluster.address}" in out
    assert search_dir.summary()["search"]["max_concurrent_used"] == 2
    rows = search_dir.rows()
    assert len(rows) == 2 and all(r["status"] == "TERMINATED" for r in rows), [r["error"] for r in rows]
    assert {r["node_id"] for r in rows} == {head, worker}
    for r in rows:  # every epoch of a trial ran on one node (nothing failed over)
        nodes = {res["node_id"] for res in _results(search_dir.experiment / "ae" / f"trial_{r['trial_id']}" /
                                                      "result.json")}
        assert nodes == {r["node_id"]}


def test_ddp_trial_with_two_workers_via_address_auto(make_cluster, search_dir):
    """``--address auto`` finds the running cluster (through the ``ray_current_cluster`` file of its temp dir);
    one trial trains with DDP on two workers of one CPU each and finishes."""
    cluster = make_cluster(2)
    rc, out = search_dir.run("--address", "auto", "--model", "ae", "--num-samples", "1", "--workers-per-trial", "2",
                             "--cpus-per-trial", "1", "--no-wandb")
    assert rc == 0, out[-3000:]
    assert f"Connecting to existing Ray cluster at address: {cluster.address}" in out
    assert "Started training worker group of size 2" in out
    [row] = search_dir.rows()
    assert row["status"] == "TERMINATED" and int(row["last_epoch"]) == 3 and row["checkpoint_path"]


def test_lost_worker_node_trial_continues_from_checkpoint(make_cluster, search_dir):
    """The trial's only worker runs on the worker node (the head has no CPU). That node is killed after the first
    reported epoch and a fresh node joins: Ray Train restarts the worker group there from the last checkpoint,
    so the trial finishes, and only the epochs after that checkpoint are trained twice."""
    cluster = make_cluster(0, 1)
    lost = next(iter(cluster.worker_nodes))
    big = search_dir.root / "slower.toml"  # epochs of ~1 s, so the node goes away mid-trial
    big.write_text("[model]\nbase_channels = 32\n")
    # Ray Train's default poll (2 s, not tuneae's 0.25 s): a report reaches Tune at most every 2 s, and the worker
    # waits on the one-slot report queue, so the trial is still running when the node goes, however loaded the machine
    proc = search_dir.start("--model", "ae", "--num-samples", "1", "--config", str(big), "--epochs", "12",
                            "--lr", "1e-3", "--batch-size", "16", "--latent-dim", "32", "--no-wandb",
                            env={"RAY_ADDRESS": cluster.address, TRAIN_POLL_ENV: "2.0"})
    deadline = time.time() + 600
    while not (found := [p for p in (search_dir.experiment / "ae").glob("trial_*/result.json") if p.stat().st_size]):
        assert proc.poll() is None and time.time() < deadline, "no epoch reported"
        time.sleep(0.2)
    cluster.remove_node(lost, allow_graceful=False)
    epochs_before = [r["epoch"] for r in _results(found[0])]
    fresh = cluster.add_node(num_cpus=1)
    assert proc.wait(timeout=600) == 0, (search_dir.root / "run.log").read_text()[-3000:]

    results = _results(found[0])
    assert max(epochs_before) < 12, "the trial ended before its node was removed"
    epochs, nodes = [r["epoch"] for r in results], [r["node_id"] for r in results]
    k = nodes.index(fresh.node_id)  # first epoch on the new node
    assert k >= 1 and set(nodes[:k]) == {lost.node_id} and set(nodes[k:]) == {fresh.node_id}, nodes
    assert epochs[:k] == list(range(1, k + 1)), epochs
    # Checkpoints are sparse (rungs, every checkpoint_every epochs, the end; `checkpoint/bytes` > 0 where one was
    # written): the new node continues from the last one written on the lost node, so only the epochs after it are
    # trained again, and never from epoch 1.
    saved = [r["epoch"] for r in results[:k] if r["checkpoint/bytes"] > 0]
    assert saved and epochs[k:] == list(range(saved[-1] + 1, 13)), (epochs, saved)
    [row] = search_dir.rows()
    assert row["status"] == "TERMINATED" and int(row["last_epoch"]) == 12
