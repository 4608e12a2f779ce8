from __future__ import annotations

import random
import sqlite3

import pytest

from edgeevo.errors import StateError
from edgeevo.result import Proposal, Result
from edgeevo.space import NasnetSpace
from edgeevo.store import SCHEMA_VERSION, Store


@pytest.fixture
def store(tmp_path):
    with Store.create(tmp_path / "state.db", {"identity": {"space": "x"}}) as s:
        yield s


def _proposal(seed: int) -> Proposal:
    return Proposal(genotype=NasnetSpace(blocks=2).sample(random.Random(seed)))


def test_create_leaves_no_partial_file_and_refuses_to_overwrite(tmp_path, store):
    assert sorted(p.name for p in tmp_path.iterdir())[0] == "state.db"
    assert not list(tmp_path.glob(".state.db.partial*"))
    assert store.meta("schema_version") == SCHEMA_VERSION
    assert store.meta("identity") == {"space": "x"}
    with pytest.raises(StateError, match="exists already"):
        Store.create(tmp_path / "state.db", {})


def test_candidates_complete_in_order_and_round_trip(store):
    for candidate_id in (1, 2, 3):
        assert store.next_id() == candidate_id
        store.add_candidate(candidate_id, _proposal(candidate_id), seed=10 + candidate_id)
    assert [p.candidate_id for p in store.pending()] == [1, 2, 3]

    done = Result(
        candidate_id=2,
        genotype=_proposal(2).genotype,
        status="ok",
        seed=12,
        accuracy=0.5,
        latency_ms=1.25,
        latency_source="measured",
        profile="local",
        flops=1234,
        params=56,
        uncounted_ops={"aten::foo": 2},
        train_seconds=3.0,
    )
    assert store.complete(done) == 1
    infeasible = Result(
        candidate_id=3,
        genotype=_proposal(3).genotype,
        status="infeasible",
        seed=13,
        violations=["latency_ms 7.0 > 5.0"],
    )
    assert store.complete(infeasible) == 2
    assert [r.candidate_id for r in store.completed()] == [2, 3]
    assert store.completed()[0] == done
    assert store.completed()[1] == infeasible
    assert [p.candidate_id for p in store.pending()] == [1]
    assert store.count_by_status() == {"ok": 1, "infeasible": 1, "running": 1}

    with pytest.raises(StateError, match=r"candidate \[2\] is complete already"):
        store.complete(done)
    assert store.integrity_check() == "ok"


def test_interrupted_candidates_are_pending(store):
    store.add_candidate(1, _proposal(1), seed=1)
    store.mark_interrupted([1])
    assert store.count_by_status() == {"interrupted": 1}
    assert [p.candidate_id for p in store.pending()] == [1]


def test_open_errors(tmp_path):
    with pytest.raises(StateError, match=r"state file '.*missing.db' does not exist"):
        Store.open(tmp_path / "missing.db")
    junk = tmp_path / "junk.db"
    junk.write_text("this is not a database " * 100)
    with pytest.raises(StateError, match=r"is not an edgeevo state database"):
        Store.open(junk)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(StateError, match=r"is not an edgeevo state database"):
        Store.open(other)


def test_other_schema_version_is_refused(tmp_path, store):
    store.set_meta("schema_version", SCHEMA_VERSION + 1)
    with pytest.raises(StateError, match=rf"schema version {SCHEMA_VERSION + 1}; this edgeevo"):
        Store.open(store.path)


def test_readonly_open_reads_while_a_writer_holds_the_file(store):
    store.add_candidate(1, _proposal(1), seed=1)
    with Store.open(store.path, readonly=True) as reader:
        assert reader.count() == 1
        with pytest.raises(StateError, match="write failed"):
            reader.add_candidate(2, _proposal(2), seed=2)


def test_a_resumed_candidate_runs_again_and_the_events_say_when(store):
    store.add_candidate(1, _proposal(1), seed=1)
    store.add_candidate(2, _proposal(2), seed=2)
    store.mark_interrupted([1, 2])
    store.mark_resumed(1)
    assert store.count_by_status() == {"running": 1, "interrupted": 1}
    store.complete(Result(candidate_id=1, genotype=_proposal(1).genotype, status="ok", seed=1))
    assert store.completion_times() and store.last_event("resumed") is not None
    assert store.last_event("finish") is None
    with sqlite3.connect(store.path) as db:
        kinds = [k for (k,) in db.execute("SELECT kind FROM events ORDER BY id")]
    assert kinds == ["created", "created", "interrupted", "interrupted", "resumed", "ok"]
