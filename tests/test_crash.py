"""Crash safety: the real daemon killed with SIGKILL at random moments, again and again."""

from __future__ import annotations

import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time

import psutil
import pytest
from test_serve import run, wait_for, write_config

from edgeevo.config import load_config
from edgeevo.fitness import Limits, Objectives
from edgeevo.result import FINAL_STATUSES
from edgeevo.search import create_strategy
from edgeevo.space import create_space
from edgeevo.store import Store

KILLS = 10
BUDGET = 14
COLUMNS = "id, completion, status, key, parent_id, mutation, seed, accuracy, flops, params, error"


def completed_rows(state) -> list[tuple]:
    if not state.exists():
        return []
    with sqlite3.connect(state) as db:
        return db.execute(
            f"SELECT {COLUMNS} FROM candidates WHERE completion IS NOT NULL ORDER BY completion"
        ).fetchall()


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_nothing_and_repeats_nothing(tmp_path, data_root):
    config_path = write_config(tmp_path, BUDGET, **{"[workers]\n": "[workers]\ncount = 2\n"})
    state = tmp_path / "state.db"
    env = {**os.environ, "EDGEEVO_DATA_ROOT": str(data_root), "PYTHONUNBUFFERED": "1"}
    rng = random.Random(20241204)
    snapshots: list[list[tuple]] = []
    logs: list[str] = []

    for kill in range(KILLS):
        log = tmp_path / f"run-{kill}.log"
        before = len(completed_rows(state))
        with open(log, "w") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "edgeevo.cli", "serve", "-v", "--config", str(config_path)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        try:
            if kill % 3 == 0:
                # Any moment at all: while importing, starting workers, creating the state, ...
                time.sleep(rng.uniform(0.2, 8.0))
            else:
                # Once this run has made progress, at a random moment of what follows.
                wait_for(lambda b=before: len(completed_rows(state)) > b, timeout=120)
                time.sleep(rng.uniform(0.0, 1.5))
            assert process.poll() is None, "the search ended before it could be killed"
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        snapshots.append(completed_rows(state))
        logs.append(log.read_text())

    code, _, err = run("serve", "-v", "--config", str(config_path), data_root=data_root)
    assert code == 0, err
    logs.append(err)
    final = completed_rows(state)

    # The budget met exactly: ids 1..BUDGET, every one complete.
    assert [row[0] for row in sorted(final)] == list(range(1, BUDGET + 1))
    # No completed candidate lost or changed: what any run had completed is where it was.
    for snapshot in snapshots:
        assert final[: len(snapshot)] == snapshot
    # Each candidate created once and completed once, over all runs together.
    with sqlite3.connect(state) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        events = db.execute("SELECT candidate_id, kind FROM events ORDER BY id").fetchall()
    created = [c for c, kind in events if kind == "created"]
    completions = [c for c, kind in events if kind in FINAL_STATUSES]
    assert sorted(created) == sorted(completions) == list(range(1, BUDGET + 1))
    # The kills hit running candidates, which later runs took up again.
    assert any("resumed from an earlier run" in text for text in logs)

    # The population is what the history implies: replaying the events in order, a fresh
    # strategy told every completion makes exactly the proposal stored for each new candidate.
    config = load_config(config_path)
    strategy = create_strategy(
        config.search.strategy,
        create_space(config),
        Objectives.from_config(config.objectives),
        Limits.from_config(config.limits),
        population=config.search.population,
        sample=config.search.sample,
        seed=config.search.seed,
    )
    with Store.open(state, readonly=True) as store:
        for candidate_id, kind in events:
            stored = store.candidate(candidate_id) if candidate_id else None
            if kind == "created":
                proposal = strategy.ask(candidate_id)
                assert (proposal.genotype.key(), proposal.parent_id, proposal.mutation) == (
                    stored.genotype.key(),
                    stored.parent_id,
                    stored.mutation,
                ), f"[{candidate_id}]"
            elif kind in FINAL_STATUSES:
                strategy.tell(stored)
        assert strategy.population_members() == [
            r.candidate_id for r in store.completed()[-config.search.population :]
        ]

    # No worker outlived the daemon that started it.
    pattern = re.compile(r"worker \d+ starting \(pid (\d+)\)")
    pids = {int(pid) for text in logs for pid in pattern.findall(text)}
    assert len(pids) >= 14  # two in each run that made progress, at least: 6 killed, 1 final
    wait_for(lambda: not any(alive(pid) for pid in pids), timeout=20)


def alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie left for a parent that is gone counts as ended."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
