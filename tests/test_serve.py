"""The real daemon in a subprocess: a tiny search, its restart, and its errors."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeevo.store import Store

TINY = """
[search]
population = 3
sample = 2
budget = {budget}
seed = 7

[space]
blocks = 2

[network]
cells = 1
filters = 4
resolution = 8

[data]
download = false
train = 64
valid = 32

[train]
epochs = 1
batch_size = 32

[objectives]
accuracy = "max"

[device]
latency = "measure"
repeats = 3
warmup = 1

[workers]
threads = 1

[state]
path = "{state}"
"""


def write_config(folder: Path, budget: int, **replace: str) -> Path:
    text = TINY.format(budget=budget, state=folder / "state.db")
    for old, new in replace.items():
        text = text.replace(old, new)
    path = folder / "search.toml"
    path.write_text(text)
    return path


def edgeevo(
    *args: str, data_root: Path | None = None, env: dict[str, str] | None = None, **kwargs
) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    if data_root is not None:
        env["EDGEEVO_DATA_ROOT"] = str(data_root)
    return subprocess.Popen(
        [sys.executable, "-m", "edgeevo.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def run(
    *args: str,
    data_root: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 300,
):
    process = edgeevo(*args, data_root=data_root, env=env)
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        process.kill()  # only if it is still there, after a timeout
    return process.returncode, out, err


def history(state: Path) -> list[tuple[int, str, str]]:
    with Store.open(state, readonly=True) as store:
        return [(r.candidate_id, r.status, r.genotype.key()) for r in store.completed()]


@pytest.mark.slow
def test_serve_runs_to_budget_and_a_killed_run_continues_exactly(tmp_path, data_root):
    # Reference: one uninterrupted run.
    straight = tmp_path / "straight"
    straight.mkdir()
    code, _, err = run("serve", "--config", str(write_config(straight, 6)), data_root=data_root)
    assert code == 0, err
    reference = history(straight / "state.db")
    assert [c for c, _, _ in reference] == [1, 2, 3, 4, 5, 6]
    assert err.count("] ok") + err.count("] failed") + err.count("] infeasible") == 6

    # The same search killed without warning once two candidates are complete, then restarted.
    killed = tmp_path / "killed"
    killed.mkdir()
    config = write_config(killed, 6)
    state = killed / "state.db"
    process = edgeevo("serve", "--config", str(config), data_root=data_root)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if state.exists() and len(history(state)) >= 2:
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    before = history(state)
    assert len(before) >= 2

    code, _, err = run("serve", "--config", str(config), data_root=data_root)
    assert code == 0, err
    after = history(state)
    # Nothing lost, nothing evaluated twice, the budget met exactly, the same search as above.
    assert after[: len(before)] == before
    assert sorted(c for c, _, _ in after) == [1, 2, 3, 4, 5, 6]
    assert after == reference
    with sqlite3.connect(state) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        (count,) = db.execute("SELECT COUNT(*) FROM candidates").fetchone()
    assert count == 6

    # The front is printed, and written as CSV and JSON on request.
    csv_path, json_path = tmp_path / "front.csv", tmp_path / "front.json"
    code, out, err = run("pareto", "--state", str(state))
    assert code == 0, err
    assert "Pareto front" in out and "multiply-add counts as one" in out
    for fmt, path in (("csv", csv_path), ("json", json_path)):
        code, _, err = run("pareto", "--state", str(state), "--format", fmt, "--out", str(path))
        assert code == 0, err
    doc = json.loads(json_path.read_text())
    assert doc["objectives"] == {"accuracy": "max"}
    best = max(x["accuracy"] for x in doc["candidates"])
    assert len(doc["candidates"]) >= 1 and 0.0 <= best <= 1.0
    assert csv_path.read_text().splitlines()[0].startswith("id,accuracy,latency_ms")


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("edgeevo: error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_missing_config(tmp_path):
    code, _, err = run("serve", "--config", str(tmp_path / "none.toml"))
    assert_one_line_error(code, err, "none.toml", "does not exist")


def test_malformed_config(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[search]\npopulation = 'many'\n")
    code, _, err = run("serve", "--config", str(path))
    assert_one_line_error(code, err, "population = 'many'", "expected a whole number")
    assert list(tmp_path.iterdir()) == [path]


def test_unknown_op(tmp_path):
    path = write_config(tmp_path, 4, **{"blocks = 2": 'blocks = 2\nops = ["identity", "conv_9"]'})
    code, _, err = run("serve", "--config", str(path))
    assert_one_line_error(code, err, "unknown op 'conv_9'", "known ops: identity, avg_pool_3x3")
    assert list(tmp_path.iterdir()) == [path]


def test_data_root_without_cifar10(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    path = write_config(tmp_path, 4)
    code, _, err = run("serve", "--config", str(path), data_root=empty)
    assert_one_line_error(code, err, str(empty), "holds no CIFAR-10")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "search.toml"]


def test_pareto_on_a_missing_state(tmp_path):
    code, _, err = run("pareto", "--state", str(tmp_path / "none.db"))
    assert_one_line_error(code, err, "none.db", "does not exist")


def test_second_serve_on_the_same_state_is_refused(tmp_path, data_root):
    from edgeevo.daemon import state_lock

    path = write_config(tmp_path, 4)
    state = tmp_path / "state.db"
    Store.create(state, {"identity": {}}).close()
    with state_lock(state):
        code, _, err = run("serve", "--config", str(path), data_root=data_root)
    assert_one_line_error(code, err, "is in use by another edgeevo serve", f"pid {os.getpid()}")


def test_state_of_another_search_is_refused(tmp_path, data_root):
    Store.create(tmp_path / "state.db", {"identity": {"space": "other"}}).close()
    code, _, err = run("serve", "--config", str(write_config(tmp_path, 4)), data_root=data_root)
    assert_one_line_error(code, err, "belongs to a search with other", "own [state] path")


@pytest.mark.slow
def test_a_profile_made_by_profile_device_predicts_the_latency_of_a_search(tmp_path, data_root):
    from edgeevo.config import load_config
    from edgeevo.hardware.profile import SpaceDescription, load_profile

    config = write_config(tmp_path, 2)
    out = tmp_path / "profiles" / "box.json"
    code, stdout, err = run(
        "profile-device",
        *("--config", str(config), "--out", str(out), "--calibration", "6"),
        *("--op-repeats", "4", "--repeats", "4", "--rounds", "2", "--warmup", "1"),
    )
    assert code == 0, err
    assert f"wrote {out}" in stdout
    assert "held-out error: MAPE" in stdout
    profile = load_profile(out, SpaceDescription.from_config(load_config(config)))
    assert profile.name == "box"
    assert profile.runtime.intra_op_threads == 1
    assert profile.host.logical_cores >= 1
    assert len(profile.calibration) == 6

    # The same search, its latency predicted from the profile: no candidate is timed here.
    predicting = write_config(
        tmp_path, 2, **{'latency = "measure"': f'latency = "predict"\nprofile = "{out}"'}
    )
    code, _, err = run("serve", "--config", str(predicting), data_root=data_root)
    assert code == 0, err
    assert "latency predicted from profile box" in err
    with Store.open(tmp_path / "state.db", readonly=True) as store:
        results = store.completed()
    assert len(results) == 2
    for result in results:
        assert (result.latency_source, result.profile) == ("predicted", "box")
        assert result.latency_ms == pytest.approx(profile.predict(result.genotype))
        assert result.latency_p90_ms is None


def wait_for(predicate, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for the daemon")


def statuses(state: Path) -> dict[int, str]:
    if not state.exists():
        return {}
    with sqlite3.connect(state) as db:
        return dict(db.execute("SELECT id, status FROM candidates"))


def start_events(state: Path) -> int:
    if not state.exists():
        return 0
    with sqlite3.connect(state) as db:
        (count,) = db.execute("SELECT COUNT(*) FROM events WHERE kind = 'start'").fetchone()
    return int(count)


@pytest.mark.slow
def test_sigterm_lets_running_candidates_finish_within_the_grace_period(tmp_path, data_root):
    # Two workers and longer training, so that the signals arrive while candidates run.
    config = write_config(
        tmp_path,
        6,
        **{"train = 64": "train = 1024", "epochs = 1": "epochs = 3", "threads = 1": "threads = 1"},
    )
    workers = "[workers]\ncount = 2\ngrace = {grace}\n"
    template = config.read_text().replace("[workers]\n", workers)
    config.write_text(template.format(grace=120))
    state = tmp_path / "state.db"

    # A grace period long enough: the running candidates finish, none is interrupted.
    process = edgeevo("serve", "--config", str(config), data_root=data_root)
    wait_for(lambda: "running" in statuses(state).values())
    code, out, err = run("status", "--state", str(state), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["daemon_pid"] == process.pid and doc["counts"]["running"] >= 1
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=240)
    assert process.returncode == 0, err
    assert "received SIGTERM: handing out no more candidates" in err
    assert set(statuses(state).values()) <= {"ok", "infeasible", "failed"}

    # No grace at all: both running candidates are recorded as interrupted at once.
    config.write_text(template.format(grace=0))
    process = edgeevo("serve", "--config", str(config), data_root=data_root)
    wait_for(lambda: list(statuses(state).values()).count("running") == 2)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=240)
    assert process.returncode == 0, err
    interrupted = [i for i, status in statuses(state).items() if status == "interrupted"]
    assert len(interrupted) == 2
    for candidate_id in interrupted:
        assert f"[{candidate_id}] interrupted; it is evaluated again" in err

    # A second signal cuts a long grace period short (exit code 130). The restart takes up the
    # two interrupted candidates first.
    config.write_text(template.format(grace=600))
    process = edgeevo("serve", "--config", str(config), data_root=data_root)
    wait_for(lambda: start_events(state) == 3)
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=240)
    assert process.returncode == 130, err
    assert all(f"[{i}] resumed from an earlier run" in err for i in interrupted)
    assert "interrupted" in statuses(state).values()

    # The next run evaluates what was interrupted and ends at the budget.
    code, _, err = run("serve", "--config", str(config), data_root=data_root)
    assert code == 0, err
    assert sorted(statuses(state)) == [1, 2, 3, 4, 5, 6]
    assert set(statuses(state).values()) <= {"ok", "infeasible", "failed"}


def test_pareto_refuses_to_write_over_its_state(tmp_path):
    state = tmp_path / "state.db"
    Store.create(state, {"identity": {}}).close()
    before = state.read_bytes()
    for fmt in ("csv", "json"):
        code, _, err = run("pareto", "--state", str(state), "--format", fmt, "--out", str(state))
        assert_one_line_error(code, err, "is the state file itself")
    assert state.read_bytes() == before


def test_pareto_output_errors_come_before_any_output(tmp_path):
    state = tmp_path / "state.db"
    Store.create(state, {"identity": {}}).close()
    code, out, err = run("pareto", "--state", str(state), "--out", str(tmp_path))
    assert_one_line_error(code, err, str(tmp_path), "is a folder; expected a file path")
    assert out == ""
    blocked = tmp_path / "file"
    blocked.write_text("")
    code, out, err = run("pareto", "--state", str(state), "--out", str(blocked / "front.json"))
    assert_one_line_error(code, err, "cannot be written", "is not a writable folder")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is not an edgeevo state database"),
        (b"not sqlite at all" * 300, "is not an edgeevo state database"),
    ],
)
def test_pareto_on_damaged_states(tmp_path, content, message):
    state = tmp_path / "state.db"
    state.write_bytes(content)
    code, _, err = run("pareto", "--state", str(state))
    assert_one_line_error(code, err, str(state), message.split(" (")[0])
    assert state.read_bytes() == content


def test_a_foreign_database_is_refused_unchanged(tmp_path):
    state = tmp_path / "state.db"
    with sqlite3.connect(state) as db:
        db.execute("CREATE TABLE x (a)")
    before = state.read_bytes()
    config = write_config(tmp_path, 4)
    code, _, err = run("serve", "--config", str(config))
    assert_one_line_error(code, err, "is not an edgeevo state database")
    assert state.read_bytes() == before


def test_state_path_in_a_place_that_cannot_be_written(tmp_path, data_root):
    blocked = tmp_path / "file"
    blocked.write_text("")
    config = write_config(tmp_path, 4)
    config.write_text(
        config.read_text().replace(str(tmp_path / "state.db"), str(blocked / "s.db"))
    )
    code, _, err = run("serve", "--config", str(config), data_root=data_root)
    assert code == 2, err
    assert err.strip().splitlines()[-1].startswith("edgeevo: error: state file")
    assert "cannot write beside it" in err


def test_states_with_special_characters_in_their_path(tmp_path):
    for name in ("a#b.db", "q?x.db", "p%41.db"):
        state = tmp_path / name
        Store.create(state, {"identity": {}}).close()
        code, out, err = run("pareto", "--state", str(state))
        assert code == 0, err
        assert "Pareto front: 0 of 0 completed" in out
