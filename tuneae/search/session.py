"""The Ray session of a search: a local Ray started here, or a running cluster joined.

Either way the session is pinned (``RAY_API_SERVER_ADDRESS`` or ``RAY_ADDRESS`` in every worker), so that Ray Train
finds *this* Ray instance when a machine runs several (a search and a test run).
"""
from __future__ import annotations

import os
import socket
from typing import Any


def open_session(address: str, env: dict[str, str]) -> None:
    """Start Ray here (``address`` empty) or join the cluster at ``address``, with ``env`` set in this process and
    in every Ray worker. Usage statistics off and no auth token under ``~/.ray``, unless the user set otherwise.

    Args:
        address: ``""`` (start a local Ray with its dashboard), ``auto``, ``host:port`` or ``ray://...``.
        env: environment variables for the driver and the workers (the W&B settings).
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.update(env)
    if address:
        join_ray(address, env)
    else:
        start_local_ray(env)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_local_ray(env: dict[str, str] | None = None, **kwargs: Any) -> None:
    """Start Ray on this machine with its dashboard, pinned so that Ray Train finds *this* Ray instance.

    Ray Train V2 frees the placement group of a stopped trial from a cleaner actor that asks the State API
    (served by the dashboard, hence ``ray[default]``) whether the trial's controller is alive. Without an address
    that actor auto-detects "the" Ray instance and, with two instances on one machine (a search and a test run),
    fails ("Found multiple active Ray instances") or asks the wrong one; the group then leaks and the next trial
    waits forever. Setting ``RAY_API_SERVER_ADDRESS`` to this instance's dashboard, before the workers start,
    removes the ambiguity.

    Args:
        env: extra environment variables for every Ray worker (W&B settings).
        **kwargs: passed to ``ray.init`` (e.g. ``num_cpus``).
    """
    import ray

    port = _free_port()
    api = f"http://127.0.0.1:{port}"
    os.environ["RAY_API_SERVER_ADDRESS"] = api
    env_vars = {**(env or {}), "RAY_API_SERVER_ADDRESS": api}
    ray.init(include_dashboard=True, dashboard_port=port, runtime_env={"env_vars": env_vars}, **kwargs)


def join_ray(address: str, env: dict[str, str] | None = None) -> None:
    """Connect to a running Ray cluster (``auto``, ``host:port`` or ``ray://...``), pinned like :func:`start_local_ray`.

    The pin here is ``RAY_ADDRESS`` = the cluster's GCS address, resolved once by Ray's own rule (so ``auto``
    means the same cluster for the driver and for Ray Train's State API queries in the workers).

    Args:
        address: the cluster address.
        env: extra environment variables for every Ray worker (W&B settings).
    """
    import ray

    env_vars = dict(env or {})
    if not address.startswith("ray://"):  # Ray Client: the State API goes through the client server instead
        from ray._private.services import canonicalize_bootstrap_address_or_die

        address = canonicalize_bootstrap_address_or_die(address)
        env_vars["RAY_ADDRESS"] = address
    ray.init(address=address, runtime_env={"env_vars": env_vars})
