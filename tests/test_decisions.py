"""The scheduler's decisions reach a trial's workers: the board, the Tune callback that posts to it, the worker's wait.

The end-to-end case (ASHA-stopped trials write nothing past their rung) is in test_search.py on the smoke search.
"""
from __future__ import annotations

import pickle
from types import SimpleNamespace

import pytest

from tuneae.decisions import DecisionCallback, board_name, wait_for_decision


@pytest.fixture
def callback(ray_session, request):
    cb = DecisionCallback(board_name(f"/tmp/exp-{request.node.name}"), "epoch")
    cb.setup()
    yield cb
    ray_session.kill(cb._get_board())


def test_a_stop_at_a_rung_reaches_the_worker(callback):
    trial = SimpleNamespace(trial_id="t1")
    callback.on_trial_result(iteration=1, trials=[trial], trial=trial, result={"epoch": 1, "done": False})
    assert wait_for_decision(callback.name, "t1", 1, timeout_s=10) is False  # ASHA let it go on
    callback.on_trial_result(iteration=2, trials=[trial], trial=trial, result={"epoch": 3, "done": True})
    assert wait_for_decision(callback.name, "t1", 3, timeout_s=10) is True  # stopped at rung 3


def test_no_decision_yet_means_train_on_after_the_wait(callback):
    trial = SimpleNamespace(trial_id="t2")
    callback.on_trial_result(iteration=1, trials=[trial], trial=trial, result={"epoch": 1, "done": True})
    # a decision on an earlier epoch does not answer a later one: the wait ends without a decision
    assert wait_for_decision(callback.name, "t2", 3, timeout_s=0.3) is False
    assert wait_for_decision(callback.name, "other", 1, timeout_s=0.3) is False


def test_without_a_board_nothing_waits(ray_session):
    assert wait_for_decision("", "t", 1) is False
    assert wait_for_decision(board_name("/nowhere"), "t", 1) is False


def test_the_saved_callback_keeps_only_the_name(callback):
    restored = pickle.loads(pickle.dumps(callback))  # as Tune saves and restores the experiment's callbacks
    assert restored.name == callback.name and restored._board is None
    trial = SimpleNamespace(trial_id="t3")
    restored.on_trial_result(iteration=1, trials=[trial], trial=trial, result={"epoch": 2, "done": True})
    assert wait_for_decision(callback.name, "t3", 2, timeout_s=10) is True  # the same named board


def test_every_worker_gets_tuneae_s_train_poll_interval(ray_session):
    from tuneae.search.session import TRAIN_POLL_ENV, ray_env

    @ray_session.remote(num_cpus=0)
    def seen() -> str | None:
        import os
        return os.environ.get(TRAIN_POLL_ENV)

    # the Train controller reads it in its own process; every process of the session has the same environment
    assert ray_session.get(seen.remote()) == ray_env()[TRAIN_POLL_ENV] and float(ray_env()[TRAIN_POLL_ENV]) < 2.0
