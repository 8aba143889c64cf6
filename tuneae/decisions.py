"""The scheduler's decisions, passed to each trial's Ray Train workers: a trial that ASHA stops stops at once.

Under the Train-under-Tune pattern of Ray 2.60 a trial's ``TorchTrainer`` runs in actors that the Tune trial actor
owns. When ASHA stops a trial, Tune ends that actor and Ray ends the Train controller and workers after it, some
seconds later: long enough for a worker to train, and checkpoint, one or more epochs past its rung. So here:

- a Tune ``Callback`` (:class:`DecisionCallback`) posts every decision to one named actor per Tune experiment
  (:class:`DecisionBoard`). Tune calls ``Callback.on_trial_result`` after the scheduler decided on that result, and
  marks the result ``done`` when the decision is to stop the trial (upstream: ``ray.tune.Callback``,
  ``ray.tune.execution.tune_controller.TuneController._process_trial_result``; a test fails if that order changes);
- a worker that has reported a rung epoch waits for the decision on it (:func:`wait_for_decision`) before it trains
  on, and ends its training loop when the trial was stopped: no further epoch is trained or written.

Only rung epochs wait (ASHA decides nowhere else), one round trip each; a run without a board (a final fit, a
benchmark) never waits.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any

import ray
from ray import tune

WAIT_S = 60.0
"""Longest wait of a worker for the decision on its rung epoch, in seconds; past it the worker trains on (the
decision still ends the trial when Tune ends its actors)."""


class StoppedByScheduler(Exception):
    """Raised inside a worker's training loop when the scheduler stopped its trial at the epoch just reported."""


@ray.remote(num_cpus=0)
class DecisionBoard:
    """The last decision of the scheduler per trial: ``trial id -> (epoch, stop)``. An async actor: a waiting
    worker holds no thread."""

    def __init__(self) -> None:
        self._decisions: dict[str, tuple[int, bool]] = {}

    async def post(self, trial_id: str, epoch: int, stop: bool) -> None:
        """Record the decision on ``trial_id``'s result of ``epoch`` (a later epoch's decision replaces it)."""
        self._decisions[trial_id] = (epoch, stop)

    async def wait(self, trial_id: str, epoch: int, timeout_s: float) -> bool | None:
        """The decision on ``trial_id`` at ``epoch`` or later: True to stop, False to go on, None after
        ``timeout_s`` seconds without one."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = self._decisions.get(trial_id)
            if got is not None and got[0] >= epoch:
                return got[1]
            await asyncio.sleep(0.02)
        return None


def board_name(experiment: str) -> str:
    """The Ray actor name of the board of one Tune experiment (``experiment``: its folder or URI)."""
    return f"tuneae-decisions:{experiment}"


class DecisionCallback(tune.Callback):
    """A Tune callback that posts the scheduler's decision on every result to the experiment's
    :class:`DecisionBoard` (created here, in the Tune driver, if it does not exist).

    It keeps only the board's name when Tune saves the experiment, so a resumed search creates the board again.
    """

    def __init__(self, name: str, step_key: str) -> None:
        """Args: name: :func:`board_name` of the experiment. step_key: the result key counting epochs."""
        self.name, self.step_key = name, step_key
        self._board: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"name": self.name, "step_key": self.step_key, "_board": None}

    def _get_board(self):
        if self._board is None:
            self._board = DecisionBoard.options(name=self.name, get_if_exists=True).remote()
        return self._board

    def setup(self, stop=None, num_samples: int | None = None, total_num_samples: int | None = None,
              **info) -> None:
        """Create the board before the first trial starts (upstream signature: ``ray.tune.Callback.setup``)."""
        self._get_board()

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info) -> None:
        """Post ``(epoch, done)`` of this result: ``done`` is True when the scheduler stopped the trial here (or it
        ended)."""
        epoch = int(result.get(self.step_key, 0) or 0)
        self._get_board().post.remote(trial.trial_id, epoch, bool(result.get("done", False)))


def wait_for_decision(name: str, trial_id: str, epoch: int, timeout_s: float = WAIT_S) -> bool:
    """Whether the scheduler stopped ``trial_id`` at ``epoch``, waiting up to ``timeout_s`` seconds for its decision.

    Args:
        name: the board's actor name (:func:`board_name`); "" or a board that does not exist answers False at once.
        trial_id: the Tune trial id.
        epoch: the epoch just reported (1-based).
        timeout_s: longest wait; without a decision by then, False.
    Returns:
        True when the trial was stopped at that epoch; False also when the board is gone (its search driver ended:
        Tune then ends this trial's actors itself, or a resumed search restarts the trial from its checkpoint).
    """
    if not name:
        return False
    try:
        board = ray.get_actor(name)
        return bool(ray.get(board.wait.remote(trial_id, epoch, timeout_s)))
    except ValueError:  # no board: a run outside a search
        return False
    except ray.exceptions.RayError:  # the board died with its driver
        return False
