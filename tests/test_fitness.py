"""Objectives, limits, dominance, fronts and hypervolume, checked against hand-worked answers."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from edgeevo.errors import ConfigError
from edgeevo.fitness import (
    Direction,
    Limits,
    Objectives,
    dominates,
    front_of,
    hypervolume,
    nondominated_sort,
    pareto_front,
)
from edgeevo.result import Result
from edgeevo.space import NasnetSpace

ACC_LAT: tuple[Direction, Direction] = ("max", "min")
MIN: tuple[Direction] = ("min",)

# (accuracy, latency_ms). Comments give each point's fate, worked out by hand.
POINTS = [
    (0.90, 5.0),  # 0 front
    (0.85, 3.0),  # 1 front
    (0.90, 5.0),  # 2 front: a duplicate of 0, and equal points do not dominate each other
    (0.90, 6.0),  # 3 rank 1: equal accuracy to 0, slower
    (0.95, 8.0),  # 4 front
    (0.80, 3.0),  # 5 rank 1: equal latency to 1, less accurate
    (0.70, 1.0),  # 6 front
    (0.95, 9.0),  # 7 rank 1: equal accuracy to 4, slower
    (0.60, 2.0),  # 8 rank 1: behind 6 on both
    (0.88, 4.0),  # 9 front
    (0.85, 3.0),  # 10 front: a duplicate of 1
    (0.50, 10.0),  # 11 rank 2: behind 3, which is itself behind 0
]


def test_dominates_needs_one_strict_improvement() -> None:
    assert dominates((0.9, 5.0), (0.9, 6.0), ACC_LAT)
    assert dominates((0.9, 5.0), (0.8, 5.0), ACC_LAT)
    assert not dominates((0.9, 5.0), (0.9, 5.0), ACC_LAT)
    assert not dominates((0.9, 6.0), (0.8, 5.0), ACC_LAT)
    assert dominates((1.0, 2.0), (2.0, 3.0), MIN * 2)


def test_dominates_rejects_a_point_of_the_wrong_length() -> None:
    with pytest.raises(ValueError, match=r"point \(0.9,\) has 1 values for 2 objectives"):
        dominates((0.9,), (0.8, 5.0), ACC_LAT)


def test_pareto_front_by_hand() -> None:
    assert pareto_front(POINTS, ACC_LAT) == [0, 1, 2, 4, 6, 9, 10]


def test_nondominated_sort_by_hand() -> None:
    assert nondominated_sort(POINTS, ACC_LAT) == [0, 0, 0, 1, 0, 1, 0, 1, 1, 0, 0, 2]


def test_fronts_of_nothing_are_empty() -> None:
    assert pareto_front([], ACC_LAT) == []
    assert nondominated_sort([], ACC_LAT) == []


def test_nondominated_sort_in_three_objectives_by_hand() -> None:
    # (accuracy, latency_ms, flops)
    points = [
        (0.9, 5.0, 300.0),  # 0 front
        (0.9, 5.0, 400.0),  # 1 rank 1: more FLOPs than 0, equal otherwise
        (0.8, 2.0, 400.0),  # 2 front
        (0.7, 6.0, 500.0),  # 3 rank 2: behind 1
        (0.95, 9.0, 900.0),  # 4 front
    ]
    assert nondominated_sort(points, ("max", "min", "min")) == [0, 1, 0, 2, 0]


def _front_by_definition(points: list[tuple[int, ...]]) -> list[int]:
    return [
        i
        for i, p in enumerate(points)
        if not any(all(a <= b for a, b in zip(q, p, strict=True)) and q != p for q in points)
    ]


def test_pareto_front_matches_the_definition_on_points_with_many_ties() -> None:
    rng = random.Random(7)
    for _ in range(200):
        points = [tuple(rng.randrange(4) for _ in range(3)) for _ in range(rng.randrange(1, 15))]
        assert pareto_front(points, MIN * 3) == _front_by_definition(points)


def test_hypervolume_2d_by_hand() -> None:
    # (accuracy %, latency_ms) against the reference (0 %, 10 ms). Point a alone covers
    # 50 x 6 = 300, b alone 80 x 4 = 320, and both together 50 x 4 = 200: 300 + 320 - 200 = 420.
    a, b = (50, 4), (80, 6)
    behind = (30, 5)  # dominated by a: adds nothing
    beyond = (90, 12)  # slower than the reference: adds nothing
    on_reference = (0, 1)  # not strictly more accurate than the reference: adds nothing
    points = [a, b, a, behind, beyond, on_reference]
    assert hypervolume(points, ACC_LAT, (0, 10)) == 420
    assert hypervolume([a], ACC_LAT, (0, 10)) == 300


def test_hypervolume_3d_by_hand() -> None:
    # Minimisation, reference (4, 4, 4). Boxes from each point to the reference:
    # a (1,1,3): 3*3*1 = 9, b (2,2,1): 2*2*3 = 12, c (1,3,2): 3*1*2 = 6; pairwise overlaps
    # a&b 2*2*1 = 4, a&c 3*1*1 = 3, b&c 2*1*2 = 4; all three 2*1*1 = 2.
    # 9 + 12 + 6 - 4 - 3 - 4 + 2 = 18.
    a, b, c = (1, 1, 3), (2, 2, 1), (1, 3, 2)
    dominated = (3, 3, 3)
    beyond = (0, 0, 5)
    points = [a, b, c, b, dominated, beyond]
    assert hypervolume(points, MIN * 3, (4, 4, 4)) == 18
    assert hypervolume([a, b], MIN * 3, (4, 4, 4)) == 17

    # The same set with the first objective to maximise: x becomes 4 - x, the reference 0.
    flipped = [(4 - x, y, z) for x, y, z in points]
    assert hypervolume(flipped, ("max", "min", "min"), (0, 4, 4)) == 18


def test_hypervolume_of_nothing_is_zero() -> None:
    assert hypervolume([], ACC_LAT, (0.0, 10.0)) == 0.0
    assert hypervolume([(0.5, 11.0)], ACC_LAT, (0.0, 10.0)) == 0.0


def _cells_covered(points: list[tuple[int, ...]], side: int, dims: int) -> int:
    """Exact hypervolume of integer points by counting the unit cells they dominate."""
    return sum(
        any(all(p <= c for p, c in zip(point, cell, strict=True)) for point in points)
        for cell in itertools.product(range(side), repeat=dims)
    )


@pytest.mark.parametrize("dims", [2, 3, 4])
def test_hypervolume_matches_counting_unit_cells(dims: int) -> None:
    rng = random.Random(dims)
    side = 6
    for _ in range(20):
        points = [tuple(rng.randrange(side + 1) for _ in range(dims)) for _ in range(8)]
        expected = _cells_covered(points, side, dims)
        assert hypervolume(points, MIN * dims, (side,) * dims) == expected


def test_objectives_from_config_keep_their_order() -> None:
    objectives = Objectives.from_config({"accuracy": "max", "latency_ms": "min", "flops": "min"})
    assert objectives.names == ("accuracy", "latency_ms", "flops")
    assert objectives.directions == ("max", "min", "min")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({}, r'\[objectives\] is empty; name at least 1 objective, e\.g\. accuracy = "max"'),
        (
            {"acc": "max"},
            r"\[objectives\] 'acc' is not an objective; "
            r"accepted: accuracy, latency_ms, flops, params",
        ),
        (
            {"accuracy": "maximise"},
            r"\[objectives\] accuracy = 'maximise' is not a direction; accepted: \"max\", \"min\"",
        ),
        ({"latency_ms": 1}, r"\[objectives\] latency_ms = 1 is not a direction"),
    ],
)
def test_objectives_errors(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{message}"):
        Objectives.from_config(table)


def test_objectives_listed_twice() -> None:
    with pytest.raises(ConfigError, match=r"^\[objectives\] 'flops' is listed twice$"):
        Objectives(items=(("flops", "min"), ("flops", "max")))


def test_limits_violations_are_readable() -> None:
    limits = Limits.from_config({"latency_ms": 5.0, "flops": 500_000_000})
    assert limits.violations(7.12, 612_000_000, 3_000_000) == [
        "latency_ms 7.12 > 5.0",
        "flops 612,000,000 > 500,000,000",
    ]
    assert limits.violations(5.0, 500_000_000, 3_000_000) == []
    assert Limits(params=100).violations(1.0, 1, 150) == ["params 150 > 100"]


def test_limits_excess_sums_relative_excesses() -> None:
    limits = Limits(latency_ms=5.0, flops=500_000_000, params=1_000_000)
    # 10% over on latency, 20% over on FLOPs, under on parameters.
    assert limits.excess(5.5, 600_000_000, 10) == pytest.approx(0.3)
    assert limits.excess(4.0, 400_000_000, 10) == 0.0
    assert Limits().excess(None, None, None) == 0.0
    assert Limits().violations(None, None, None) == []


def test_limits_need_the_figure_they_limit() -> None:
    with pytest.raises(
        ValueError,
        match=r"^latency_ms was not measured; checking the limit latency_ms <= 5\.0 needs it$",
    ):
        Limits(latency_ms=5.0).violations(None, 1000, 10)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            {"accuracy": 0.9},
            r"\[limits\] accuracy is not a hard limit: it is known only after training; "
            r"accepted: latency_ms, flops, params",
        ),
        ({"latency": 5.0}, r"\[limits\] 'latency' is not a limit; accepted: latency_ms, flops"),
        ({"latency_ms": 0}, r"\[limits\] latency_ms = 0 is not a limit; accepted: a positive"),
        ({"flops": -1}, r"\[limits\] flops = -1 is not a limit"),
        ({"params": "1M"}, r"\[limits\] params = '1M' is not a limit"),
        ({"params": True}, r"\[limits\] params = True is not a limit"),
        ({"latency_ms": math.inf}, r"\[limits\] latency_ms = inf is not a limit"),
        ({"latency_ms": math.nan}, r"\[limits\] latency_ms = nan is not a limit"),
    ],
)
def test_limits_errors(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{message}"):
        Limits.from_config(table)


def _result(candidate_id: int, status: str, accuracy: float | None, latency: float) -> Result:
    return Result(
        candidate_id=candidate_id,
        genotype=NasnetSpace().sample(random.Random(candidate_id)),
        status=status,  # type: ignore[arg-type]
        seed=0,
        accuracy=accuracy,
        latency_ms=latency,
        violations=["latency_ms 9.0 > 5.0"] if status == "infeasible" else [],
    )


def test_front_of_keeps_trained_feasible_candidates_only() -> None:
    objectives = Objectives.from_config({"accuracy": "max", "latency_ms": "min"})
    results = [
        _result(1, "ok", 0.90, 4.0),
        _result(2, "ok", 0.80, 4.5),  # behind 1
        _result(3, "infeasible", None, 9.0),  # faster than nothing, but never trained
        _result(4, "failed", None, 1.0),
        _result(5, "ok", 0.70, 2.0),
    ]
    assert [r.candidate_id for r in front_of(results, objectives)] == [1, 5]


def test_a_trained_result_without_an_objective_is_a_bug() -> None:
    objectives = Objectives.from_config({"accuracy": "max"})
    with pytest.raises(ValueError, match=r"^\[1\] has status 'ok' but no accuracy$"):
        front_of([_result(1, "ok", None, 4.0)], objectives)
