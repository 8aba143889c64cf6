"""The Ray session of a search: a local Ray started here, or a running cluster joined.

Either way the session is pinned (``RAY_API_SERVER_ADDRESS`` or ``RAY_ADDRESS`` in every worker), so that Ray Train
finds *this* Ray instance when a machine runs several (a search and a test run).
"""
from __future__ import annotations

import os
import socket
from typing import Any

TRAIN_POLL_ENV = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"
"""Ray Train V2's controller polls its workers every this many seconds (upstream default 2.0,
``ray.train.v2._internal.constants``), and everything a trial sends reaches Tune at a poll: each poll collects one
``ray.train.report`` per worker (``ReportHandler.after_worker_group_poll_status``), and the end of the training
function is seen at a poll too. With 2 s every report, and so every ASHA decision a worker waits for at a rung,
arrives up to 2 s late, reports faster than one per 2 s queue up, and a trial's end waits up to 2 s."""
TRAIN_POLL_S = "0.25"
"""The poll interval tuneae's sessions use unless the environment sets :data:`TRAIN_POLL_ENV`: a poll is one small
actor call per worker, and one that takes longer is awaited at the next poll, not counted as a failure (only one
hanging for ``RAY_TRAIN_WORKER_HEALTH_CHECK_TIMEOUT_S``, 600 s, is)."""


def ray_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment every Ray worker of a tuneae session gets: ``env`` plus :data:`TRAIN_POLL_ENV` (the user's
    value when the environment sets one, else :data:`TRAIN_POLL_S`); keys of ``env`` win.

    Raises:
        ValueError: the environment's :data:`TRAIN_POLL_ENV` is not a positive number of seconds (named with its
            value), checked before Ray starts.
    """
    poll = os.environ.get(TRAIN_POLL_ENV, TRAIN_POLL_S)
    try:
        ok = float(poll) > 0
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"environment variable {TRAIN_POLL_ENV}={poll!r}: expected a positive number of seconds "
                         f"(Ray Train's poll interval; unset it for tuneae's {TRAIN_POLL_S})")
    return {TRAIN_POLL_ENV: poll, **(env or {})}


def open_session(address: str, env: dict[str, str]) -> None:
    """Start Ray here (``address`` empty) or join the cluster at ``address``, with ``env`` set in this process and
    in every Ray worker (with :func:`ray_env`'s Ray Train poll interval). Usage statistics off and no auth token
    under ``~/.ray``, unless the user set otherwise.

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
        env: extra environment variables for every Ray worker (W&B settings); :func:`ray_env` adds the Train poll
            interval.
        **kwargs: passed to ``ray.init`` (e.g. ``num_cpus``).
    """
    import ray

    port = _free_port()
    api = f"http://127.0.0.1:{port}"
    os.environ["RAY_API_SERVER_ADDRESS"] = api
    env_vars = {**ray_env(env), "RAY_API_SERVER_ADDRESS": api}
    ray.init(include_dashboard=True, dashboard_port=port, runtime_env={"env_vars": env_vars}, **kwargs)


def join_ray(address: str, env: dict[str, str] | None = None) -> None:
    """Connect to a running Ray cluster (``auto``, ``host:port`` or ``ray://...``), pinned like :func:`start_local_ray`.

    The pin here is ``RAY_ADDRESS`` = the cluster's GCS address, resolved once by Ray's own rule (so ``auto``
    means the same cluster for the driver and for Ray Train's State API queries in the workers).

    Args:
        address: the cluster address.
        env: extra environment variables for every Ray worker (W&B settings); :func:`ray_env` adds the Train poll
            interval.
    """
    import ray

    env_vars = ray_env(env)
    if not address.startswith("ray://"):  # Ray Client: the State API goes through the client server instead
        from ray._private.services import canonicalize_bootstrap_address_or_die

        address = canonicalize_bootstrap_address_or_die(address)
        env_vars["RAY_ADDRESS"] = address
    ray.init(address=address, runtime_env={"env_vars": env_vars})
