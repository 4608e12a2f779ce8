"""Worker processes: each kind of failure injected into a real worker, inside real training."""

from __future__ import annotations

import sqlite3

import pytest
from test_notify import NotifyListener
from test_serve import assert_one_line_error, run, write_config

from edgeevo.errors import ConfigError
from edgeevo.workers import INJECT_FAILURE_ENV, injected_failures


def test_injected_failures_are_read_from_the_environment():
    assert injected_failures({}) == {}
    assert injected_failures({INJECT_FAILURE_ENV: " 2:raise, 5:hang ,"}) == {2: "raise", 5: "hang"}
    for bad in ("2", "x:raise", "3:explode"):
        with pytest.raises(ConfigError, match=r"is not ID:KIND; expected a candidate id and one"):
            injected_failures({INJECT_FAILURE_ENV: bad})


def test_a_malformed_injection_is_refused_before_anything_starts(tmp_path):
    config = write_config(tmp_path, 4)
    code, _, err = run("serve", "--config", str(config), env={INJECT_FAILURE_ENV: "4:melt"})
    assert_one_line_error(code, err, "'4:melt' is not ID:KIND", "raise, nan, oom, exit, hang")
    assert list(tmp_path.iterdir()) == [config]


@pytest.mark.slow
def test_every_kind_of_failure_is_recorded_and_the_search_goes_on(tmp_path, data_root):
    # Two workers; candidates 2..6 fail each in its own way, 1 and 7 are trained as usual.
    config = write_config(
        tmp_path, 7, **{"threads = 1": "threads = 1\ncount = 2\ntime_limit = 20"}
    )
    listener = NotifyListener(str(tmp_path / "notify.sock"))
    env = {
        INJECT_FAILURE_ENV: "2:raise,3:nan,4:oom,5:exit,6:hang",
        "NOTIFY_SOCKET": str(tmp_path / "notify.sock"),
        "WATCHDOG_USEC": "2000000",
    }
    code, _, err = run("serve", "--config", str(config), data_root=data_root, env=env)
    assert code == 0, err

    with sqlite3.connect(tmp_path / "state.db") as db:
        rows = {
            row[0]: row[1:]
            for row in db.execute("SELECT id, status, error, flops, latency_ms FROM candidates")
        }
    assert {i: row[:2] for i, row in rows.items()} == {
        1: ("ok", None),
        2: ("failed", "RuntimeError: injected failure: an exception in training"),
        3: ("failed", "TrainingDiverged: training loss became nan in epoch 1"),
        4: ("failed", "OutOfMemoryError: CUDA out of memory (injected failure)"),
        5: ("failed", "WorkerDied: worker process was killed by SIGKILL while evaluating it"),
        6: ("failed", "TimeLimit: ran past [workers] time_limit = 20 s"),
        7: ("ok", None),
    }
    # Exceptions inside training come after the costs and the latency were measured.
    assert all(rows[i][2] > 0 and rows[i][3] > 0 for i in (2, 3, 4))
    # The dead and the stuck worker were replaced, and the logs say so with the candidate's id.
    assert "[5] its worker" in err and "was killed by SIGKILL; starting a new worker" in err
    assert "[6] ran past the time limit of 20 s; its worker" in err
    assert err.count(" starting again (pid ") == 2

    # systemd heard READY, progress after each candidate, watchdog pings and STOPPING.
    messages = listener.close()
    assert messages[0].startswith("READY=1\nSTATUS=0 of 7 candidates complete")
    assert (
        "STATUS=7 of 7 candidates complete (2 ok, 0 infeasible, 5 failed), 0 running" in messages
    )
    assert messages.count("WATCHDOG=1") >= 5  # the time limit alone takes 20 s; pings every 1 s
    assert messages[-1] == "STOPPING=1\nSTATUS=search complete: 7 of 7 candidates"
