"""Evaluation by table lookup: fronts, hypervolume, the table's errors, and a search by lookup."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from edgeevo.errors import TableError
from edgeevo.fitness import Limits, hypervolume
from edgeevo.result import Proposal
from edgeevo.space import Nb201Genotype
from edgeevo.space.nb201 import OPS
from edgeevo.tabular import TabularEvaluator, load_table

REPO = Path(__file__).resolve().parent.parent
SHARED_TABLE = REPO.parent / "shared/bench-data/nb201_cifar10_latency.csv"


def _benchmark():
    spec = importlib.util.spec_from_file_location(
        "search_nb201", REPO / "benchmarks/search_nb201.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def arch(i: int) -> str:
    """Ten distinct cells: the ops of the first two edges spell ``i`` in base 5."""
    ops = (OPS[i % 5], OPS[i // 5]) + ("none",) * 4
    return Nb201Genotype(ops=ops).arch_str()


# (accuracy %, latency ms) of ten rows; the front is worked out in the comments.
ROWS = [
    (90.0, 10.0),  # 0: dominated by 2 (more accurate, as fast)
    (92.0, 20.0),  # 1: front
    (91.0, 10.0),  # 2: front
    (92.0, 25.0),  # 3: dominated by 1 (as accurate, faster)
    (94.0, 40.0),  # 4: front
    (94.0, 40.0),  # 5: front, the same point as 4 (kept: its own architecture)
    (80.0, 5.0),  # 6: front
    (10.0, 0.5),  # 7: front, the fastest
    (93.0, 45.0),  # 8: dominated by 4
    (94.5, 60.0),  # 9: front, the most accurate
]


def write_table(
    folder: Path, rows=ROWS, header="index,arch_str,cifar10_test_acc,raspi4_ms"
) -> Path:
    lines = [header] + [f"{i},{arch(i)},{a},{lat}" for i, (a, lat) in enumerate(rows)]
    path = folder / "table.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_exact_front_of_a_ten_row_table(tmp_path: Path) -> None:
    table = load_table(write_table(tmp_path), latency="raspi4_ms")
    front = _benchmark().table_front(table)
    expected = [ROWS[i] for i in (1, 2, 4, 5, 6, 7, 9)]
    assert sorted(front) == sorted((a / 100, lat) for a, lat in expected)


def test_hypervolume_by_hand_with_ties_duplicates_and_points_beyond_the_reference() -> None:
    # Reference accuracy 0.25, latency 10 ms. A = (0.75, 2) covers 0.5 x 8 = 4; B = (0.5, 1)
    # covers 0.25 x 9 = 2.25; they share 0.25 x 8 = 2, so together 4.25. A again (duplicate),
    # C = (0.5, 3) (tied with B in accuracy, dominated by it), D below the reference accuracy,
    # E beyond the reference latency and F on the reference latency add nothing.
    points = [(0.75, 2.0), (0.5, 1.0), (0.75, 2.0), (0.5, 3.0), (0.125, 0.5), (0.875, 12.0)]
    points.append((0.875, 10.0))
    assert hypervolume(points, ("max", "min"), (0.25, 10.0)) == 4.25
    assert hypervolume(points[4:], ("max", "min"), (0.25, 10.0)) == 0.0


def test_lookup_fills_accuracy_as_a_fraction_and_names_the_column(tmp_path: Path) -> None:
    table = load_table(write_table(tmp_path), latency="raspi4_ms")
    evaluator = TabularEvaluator(table, Limits(latency_ms=30.0))
    genotype = Nb201Genotype.from_json(arch(1))
    result = evaluator.evaluate(4, Proposal(genotype=genotype), seed=0)
    assert (result.status, result.accuracy, result.latency_ms) == ("ok", 0.92, 20.0)
    assert (result.latency_source, result.profile) == ("table:raspi4_ms", "table.csv")
    over = evaluator.evaluate(5, Proposal(genotype=Nb201Genotype.from_json(arch(4))), seed=0)
    assert (over.status, over.accuracy, over.violations) == (
        "infeasible",
        None,
        ["latency_ms 40.0 > 30.0"],
    )


def test_unknown_architecture_is_a_table_error(tmp_path: Path) -> None:
    evaluator = TabularEvaluator(load_table(write_table(tmp_path), latency="raspi4_ms"), Limits())
    missing = Nb201Genotype(ops=("nor_conv_3x3",) * 6)
    with pytest.raises(TableError, match=r"^candidate \[3\]: architecture '\|nor_conv_3x3~0\|"):
        evaluator.evaluate(3, Proposal(genotype=missing), seed=0)


CONFIG = """
[search]
space = "nb201"
population = 8
sample = 4
budget = {budget}

[objectives]
accuracy = "max"
latency_ms = "min"

[table]
path = "{table}"
latency = "{latency}"

[state]
path = "{state}"
"""


def serve(folder: Path, table: Path, budget: int = 5, latency: str = "raspi4_ms"):
    config = folder / "search.toml"
    state = folder / "state.db"
    config.write_text(CONFIG.format(budget=budget, table=table, latency=latency, state=state))
    return subprocess.run(
        [sys.executable, "-m", "edgeevo.cli", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_line_error(proc) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("edgeevo: error: ")
    assert "Traceback" not in proc.stderr
    return lines[-1]


def test_serve_refuses_a_missing_column(tmp_path: Path) -> None:
    line = one_line_error(serve(tmp_path, write_table(tmp_path), latency="jetson_ms"))
    assert (
        "has no column 'jetson_ms'; its columns: index, arch_str, cifar10_test_acc, raspi4_ms"
        in line
    )
    assert not (tmp_path / "state.db").exists()


def test_serve_refuses_a_non_numeric_cell(tmp_path: Path) -> None:
    rows = list(ROWS)
    rows[3] = ("n/a", 25.0)
    line = one_line_error(serve(tmp_path, write_table(tmp_path, rows)))
    assert "line 5, column 'cifar10_test_acc': 'n/a' is not a number" in line
    assert not (tmp_path / "state.db").exists()


def test_serve_stops_at_an_architecture_the_table_lacks(tmp_path: Path) -> None:
    # Ten rows of 15,625: the first random cell is all but surely not among them.
    line = one_line_error(serve(tmp_path, write_table(tmp_path)))
    assert "is not in table" in line and "expected a table that covers the search space" in line


@pytest.mark.skipif(not SHARED_TABLE.is_file(), reason="the shared NB201 table is absent")
def test_serve_searches_the_shared_table_and_reports_its_front(tmp_path: Path) -> None:
    proc = serve(tmp_path, SHARED_TABLE, budget=40)
    assert proc.returncode == 0, proc.stderr
    assert "search complete: 40 candidates (40 ok)" in proc.stderr
    out = subprocess.run(
        [sys.executable, "-m", "edgeevo.cli", "pareto", "--state", str(tmp_path / "state.db")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "table:raspi4_ms" in out
