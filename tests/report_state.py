"""A small state file as ``serve`` leaves it, built by hand for the report and export tests,
and the helpers those tests share."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

from edgeevo.config import parse_config
from edgeevo.result import Proposal, Result
from edgeevo.space import NasnetSpace
from edgeevo.store import Store

REPO = Path(__file__).resolve().parent.parent

# id: (status, accuracy, latency_ms, flops, params). Objectives: accuracy max, latency and FLOPs
# min; FLOPs limit 5,000,000. Worked out by hand: 2 is dominated by 1 (worse in all three), 3 is
# over the FLOPs limit, 5 failed, so the front is 1, 4, 6, 7 and 8.
CANDIDATES = {
    1: ("ok", 0.30, 0.40, 4_000_000, 100_000),
    2: ("ok", 0.25, 0.50, 4_500_000, 110_000),
    3: ("infeasible", None, 0.35, 5_500_000, 130_000),
    4: ("ok", 0.35, 0.60, 4_200_000, 120_000),
    5: ("failed", None, 0.32, 3_000_000, 90_000),
    6: ("ok", 0.28, 0.30, 3_000_000, 90_000),
    7: ("ok", 0.33, 0.45, 3_500_000, 95_000),
    8: ("ok", 0.29, 0.55, 2_500_000, 80_000),
}
# The order they completed in; candidate 9 is still running.
COMPLETION_ORDER = [1, 2, 3, 4, 6, 5, 8, 7]
FRONT = {1, 4, 6, 7, 8}

CONFIG = {
    "search": {"population": 4, "sample": 2, "budget": 10, "seed": 3},
    "space": {"blocks": 2},
    "network": {"cells": 1, "filters": 4, "resolution": 8},
    "data": {"download": False, "train": 64, "valid": 32},
    "train": {"epochs": 1, "batch_size": 32},
    "final": {"epochs": 1, "batch_size": 32, "train": 96, "valid": 48},
    "objectives": {"accuracy": "max", "latency_ms": "min", "flops": "min"},
    "limits": {"flops": 5_000_000},
    "device": {"repeats": 3, "warmup": 1},
}


def build_state(path: Path, profile: str = "") -> Path:
    """A state file as ``serve`` leaves it, with the candidates above."""
    doc = json.loads(json.dumps(CONFIG))
    doc["device"]["profile"] = profile
    config = parse_config(doc)
    space = NasnetSpace(blocks=2)
    with Store.create(path, {"identity": {}, "config": config.to_json()}) as store:
        for candidate_id in [*CANDIDATES, 9]:
            genotype = space.sample(random.Random(candidate_id))
            parent = None if candidate_id <= 4 else candidate_id - 4
            proposal = Proposal(genotype, parent, None if parent is None else "op normal[0]")
            store.add_candidate(candidate_id, proposal, seed=1000 + candidate_id)
        for candidate_id in COMPLETION_ORDER:
            status, accuracy, latency, flops, params = CANDIDATES[candidate_id]
            genotype = space.sample(random.Random(candidate_id))
            store.complete(
                Result(
                    candidate_id=candidate_id,
                    genotype=genotype,
                    status=status,
                    seed=1000 + candidate_id,
                    accuracy=accuracy,
                    latency_ms=latency,
                    latency_p90_ms=latency * 1.1,
                    latency_source="measured",
                    profile="local",
                    flops=flops,
                    params=params,
                    violations=["flops 5,500,000 > 5,000,000"] if status == "infeasible" else [],
                    train_seconds=2.0 if accuracy is not None else None,
                    error="TrainingDiverged: loss nan" if status == "failed" else None,
                )
            )
    return path


def run(*args: str, timeout: float = 120) -> tuple[int, str, str]:
    process = subprocess.run(
        [sys.executable, "-m", "edgeevo.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return process.returncode, process.stdout, process.stderr


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("edgeevo: error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]
