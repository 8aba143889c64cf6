"""What one trial needs against what the machine or the cluster has.

Ray queues a trial whose workers fit on no node and waits for an autoscaler to add one; a local Ray has no
autoscaler, so such a search hangs forever ("No available node types can fulfill resource request"). Hence: on this
machine the search is refused before Ray starts (:func:`check_machine`, from ``os.cpu_count`` and
``torch.cuda.device_count``) and again right after Ray started (:func:`check_session`, from the nodes Ray found,
which honours container CPU limits); on a cluster (``--address``) a trial may still fit a node the autoscaler adds,
so :func:`check_session` only warns.
"""
from __future__ import annotations

import math
import os
import sys

from tuneae.config import SearchConfig


def worker_slots(node: dict[str, float], search: SearchConfig) -> int:
    """How many of a trial's Train workers one node holds (each needs ``cpus_per_trial`` CPUs and
    ``gpus_per_trial`` GPUs on one node).

    Args:
        node: the node's resources, e.g. ``{"CPU": 2.0, "GPU": 0.0}``.
        search: the resources per worker.
    """
    slots = math.floor(node.get("CPU", 0.0) / search.cpus_per_trial + 1e-9)
    if search.gpus_per_trial > 0:
        slots = min(slots, math.floor(node.get("GPU", 0.0) / search.gpus_per_trial + 1e-9))
    return slots


def shortfall(search: SearchConfig, nodes: list[dict[str, float]], what: str) -> str:
    """Why no trial can run on ``nodes``, naming the flag at fault and what the nodes have; "" when one can.

    Args:
        search: the resources per trial (``workers_per_trial`` workers of ``cpus_per_trial`` CPUs and
            ``gpus_per_trial`` GPUs each).
        nodes: each node's resources (``{"CPU": n, "GPU": g}``).
        what: how to name the nodes, e.g. ``"this machine"`` or ``"the cluster"``.
    """
    if sum(worker_slots(n, search) for n in nodes) >= search.workers_per_trial:
        return ""
    cpus = max((n.get("CPU", 0.0) for n in nodes), default=0.0)
    gpus = max((n.get("GPU", 0.0) for n in nodes), default=0.0)
    has = f"{what} has {cpus:g} CPU(s) and {gpus:g} GPU(s)" + (" on its largest node" if len(nodes) > 1 else "")
    if search.gpus_per_trial > 0 and gpus == 0:
        return (f"--gpus-per-trial {search.gpus_per_trial:g}: {what} has no GPU; train on CPUs with "
                f"--gpus-per-trial 0 (e.g. --preset cpu), or run on a machine with a GPU")
    if search.gpus_per_trial > gpus:
        return f"--gpus-per-trial {search.gpus_per_trial:g}: {has}; use --gpus-per-trial {gpus:g} or less"
    if search.cpus_per_trial > cpus:
        return f"--cpus-per-trial {search.cpus_per_trial:g}: {has}; use --cpus-per-trial {cpus:g} or less"
    return (f"--workers-per-trial {search.workers_per_trial} with --cpus-per-trial {search.cpus_per_trial:g} and "
            f"--gpus-per-trial {search.gpus_per_trial:g}: one trial needs all its workers at once, and {has}; use "
            f"fewer workers or fewer resources per worker")


def machine_resources() -> dict[str, float]:
    """This machine's CPUs (``os.cpu_count``, Ray's own count before container limits) and the GPUs PyTorch sees
    (``torch.cuda.device_count``, which honours ``CUDA_VISIBLE_DEVICES`` as Ray does)."""
    import torch

    return {"CPU": float(os.cpu_count() or 1), "GPU": float(torch.cuda.device_count())}


def check_machine(search: SearchConfig) -> None:
    """Before a local Ray starts: refuse a trial that this machine can never hold.

    Raises:
        ValueError: naming the flag, its value and what the machine has.
    """
    problem = shortfall(search, [machine_resources()], "this machine")
    if problem:
        raise ValueError(problem)


def check_session(search: SearchConfig) -> None:
    """Right after Ray started (or joined a cluster): the same check against the nodes Ray sees now.

    On a local Ray it raises; on a cluster (``search.address``) it prints a warning to stderr, since the
    autoscaler may still add a node that fits (``ray.nodes()``; upstream: ``ray.nodes`` returns each node's
    ``Alive`` flag and ``Resources``).

    Raises:
        ValueError: a local Ray whose node cannot hold one trial, naming the flag and what Ray found.
    """
    import ray

    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    problem = shortfall(search, nodes, "the cluster" if search.address else "this machine (as Ray counts it)")
    if not problem:
        return
    if not search.address:
        raise ValueError(problem)
    print(f"warning: {problem}. No trial can start until a node that fits joins: with an autoscaler whose node "
          f"types include one, trials start when it is up; otherwise this search waits forever (stop it with "
          f"Ctrl-C and change the flag).", file=sys.stderr, flush=True)
