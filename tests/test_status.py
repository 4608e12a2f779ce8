"""``edgeevo status`` on a state built by hand, with every figure worked out below."""

from __future__ import annotations

import json
import random
import sqlite3

import pytest
from test_serve import assert_one_line_error, run

from edgeevo.config import Config, parse_config
from edgeevo.result import Proposal, Result
from edgeevo.space import Genotype, NasnetSpace
from edgeevo.status import read_status, render_status
from edgeevo.store import Store

T0 = 1_700_000_000.0


def make_state(path, limits):
    config = parse_config(
        {
            "search": {"population": 2, "sample": 1, "budget": 10},
            "objectives": {"accuracy": "max", "latency_ms": "min"},
            "limits": limits,
        }
    )
    space = NasnetSpace(blocks=2)
    rng = random.Random(0)
    figures = {
        1: ("ok", 0.50, 1.0),
        2: ("ok", 0.60, 1.5),
        3: ("infeasible", None, 2.5),
        4: ("failed", None, None),
        5: ("ok", 0.55, 0.8),
    }
    with Store.create(path, {"identity": {}, "config": config.to_json()}) as store:
        store.set_meta("workers", 2)
        store.log_event("start", "pid 1, workers 2 on CPU")
        for candidate_id in range(1, 7):
            genotype: Genotype = space.sample(rng)
            store.add_candidate(candidate_id, Proposal(genotype), seed=candidate_id)
            if candidate_id in figures:
                status, accuracy, latency = figures[candidate_id]
                store.complete(
                    Result(
                        candidate_id=candidate_id,
                        genotype=genotype,
                        status=status,
                        seed=candidate_id,
                        accuracy=accuracy,
                        latency_ms=latency,
                        violations=["latency_ms 2.5 > 2.0"] if status == "infeasible" else [],
                        total_seconds=100.0,
                    )
                )
    # The run started at T0 and completed a candidate every 100 s.
    with sqlite3.connect(path) as db:
        db.execute("UPDATE events SET at = ? WHERE kind = 'start'", (T0,))
        for candidate_id in range(1, 6):
            db.execute(
                "UPDATE candidates SET finished_at = ? WHERE id = ?",
                (T0 + 100 * candidate_id, candidate_id),
            )
    return path


def test_status_counts_rates_best_values_and_hypervolume(tmp_path):
    state = make_state(tmp_path / "state.db", {"latency_ms": 2.0})
    status = read_status(state)
    assert status.daemon_pid is None
    assert (status.budget, status.done, status.budget_left) == (10, 5, 5)
    assert status.counts == {"ok": 3, "infeasible": 1, "failed": 1, "running": 1, "interrupted": 0}
    # 5 candidates in the 500 s since the start: 36 an hour, so the 5 left take 500 s.
    assert status.rate_per_hour == pytest.approx(36.0)
    assert status.seconds_left == pytest.approx(500.0)
    assert [(b.objective, b.value, b.candidate_id) for b in status.best] == [
        ("accuracy", 0.60, 2),
        ("latency_ms", 0.8, 5),
    ]
    # [5] (0.55, 0.8 ms) dominates [1] (0.50, 1.0 ms); the front is [2] and [5]. Against the
    # reference (accuracy 0, latency 2.0 ms, the limit): 0.55 * (2.0 - 0.8) for [5] plus
    # (0.60 - 0.55) * (2.0 - 1.5) for what [2] adds: 0.66 + 0.025.
    assert status.front_size == 2
    assert status.reference == {"accuracy": 0.0, "latency_ms": 2.0}
    assert status.hypervolume == pytest.approx(0.685)
    assert render_status(status).splitlines() == [
        f"search {state}: no daemon running",
        "candidates: 5 of 10 done (3 ok, 1 infeasible, 1 failed), 1 unfinished (run at the next "
        "start); 5 left",
        "rate: 36.0 candidates per hour; about 8 min left",
        "best: accuracy 60.00% [2], latency_ms 0.800 ms [5]",
        "front: 2 candidates; hypervolume 0.685 (reference: accuracy 0, latency_ms 2 (its limit))",
    ]


def test_without_a_limit_the_reference_is_the_worst_of_the_random_start(tmp_path):
    status = read_status(make_state(tmp_path / "state.db", {}))
    # Candidates 1 and 2 (P = 2) are the random start; the worse latency of the two is 1.5 ms.
    # Only [5] lies inside that reference: 0.55 * (1.5 - 0.8).
    assert status.reference == {"accuracy": 0.0, "latency_ms": 1.5}
    assert status.hypervolume == pytest.approx(0.385)


def test_status_command_prints_text_and_json(tmp_path):
    state = make_state(tmp_path / "state.db", {"latency_ms": 2.0})
    code, out, err = run("status", "--state", str(state))
    assert code == 0, err
    assert out.splitlines()[1].startswith("candidates: 5 of 10 done")
    code, out, err = run("status", "--state", str(state), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["counts"]["running"] == 1 and doc["hypervolume"] == pytest.approx(0.685)
    assert doc["best"][0] == {
        "objective": "accuracy",
        "direction": "max",
        "value": 0.6,
        "candidate_id": 2,
    }


def test_status_of_a_missing_or_foreign_state(tmp_path):
    code, _, err = run("status", "--state", str(tmp_path / "none.db"))
    assert_one_line_error(code, err, "none.db", "does not exist")
    foreign = tmp_path / "x.db"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE x (a)")
    code, _, err = run("status", "--state", str(foreign), "--json")
    assert_one_line_error(code, err, "is not an edgeevo state database")


def test_an_empty_search_has_no_rate_and_no_front(tmp_path):
    state = tmp_path / "state.db"
    Store.create(state, {"identity": {}, "config": Config().to_json()}).close()
    status = read_status(state)
    assert (status.done, status.budget_left, status.rate_per_hour) == (0, 1000, None)
    assert render_status(status).splitlines()[2:] == [
        "rate: not known yet",
        "front: 0 candidates; hypervolume - (reference: no trained candidate yet)",
    ]
