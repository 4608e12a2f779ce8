"""Multi-objective fitness: objectives and their direction, hard limits, dominance, fronts and
hypervolume.

Every figure here is plain Python floats. Dominance and hypervolume work on points given in the
objectives' own directions (accuracy up, latency down); internally each point is turned into a
minimisation problem by negating the objectives to maximise.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from edgeevo.errors import ConfigError
from edgeevo.result import Result

Direction = Literal["max", "min"]
Point = Sequence[float]

DIRECTIONS: tuple[Direction, ...] = ("max", "min")

# The figures of a Result that can be objectives, by their attribute names.
OBJECTIVE_NAMES: tuple[str, ...] = ("accuracy", "latency_ms", "flops", "params")

# The figures known before training, so a candidate over a limit is never trained. Accuracy is
# only known after training and is therefore an objective, never a hard limit.
LIMIT_NAMES: tuple[str, ...] = ("latency_ms", "flops", "params")


@dataclass(frozen=True)
class Objectives:
    """The objectives that make up the front, in order, each with its direction."""

    items: tuple[tuple[str, Direction], ...]

    def __post_init__(self) -> None:
        if not self.items:
            raise ConfigError(
                '[objectives] is empty; name at least 1 objective, e.g. accuracy = "max"'
            )
        seen: set[str] = set()
        for name, direction in self.items:
            if name not in OBJECTIVE_NAMES:
                raise ConfigError(
                    f"[objectives] {name!r} is not an objective; "
                    f"accepted: {', '.join(OBJECTIVE_NAMES)}"
                )
            if direction not in DIRECTIONS:
                raise ConfigError(
                    f"[objectives] {name} = {direction!r} is not a direction; "
                    'accepted: "max", "min"'
                )
            if name in seen:
                raise ConfigError(f"[objectives] {name!r} is listed twice")
            seen.add(name)

    @classmethod
    def from_config(cls, table: Mapping[str, Any]) -> Objectives:
        """Build from the ``[objectives]`` table, e.g. ``{"accuracy": "max", "flops": "min"}``."""
        return cls(items=tuple((name, cast(Direction, d)) for name, d in table.items()))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.items)

    @property
    def directions(self) -> tuple[Direction, ...]:
        return tuple(direction for _, direction in self.items)

    def values(self, result: Result) -> tuple[float, ...]:
        """The result's point in objective space; ValueError when one figure is missing."""
        point = []
        for name in self.names:
            value = result.objective(name)
            if value is None:
                raise ValueError(
                    f"[{result.candidate_id}] has status {result.status!r} but no {name}"
                )
            point.append(value)
        return tuple(point)


@dataclass(frozen=True)
class Limits:
    """Hard limits on the figures known before training; None means unlimited.

    ``latency_ms`` is in milliseconds (the same statistic as :attr:`Result.latency_ms`), ``flops``
    counts one multiply-add as one (fvcore's convention), ``params`` counts parameters.
    """

    latency_ms: float | None = None
    flops: float | None = None
    params: float | None = None

    def __post_init__(self) -> None:
        for name in LIMIT_NAMES:
            limit = getattr(self, name)
            if limit is None:
                continue
            number = isinstance(limit, (int, float)) and not isinstance(limit, bool)
            if not number or not math.isfinite(limit) or limit <= 0:
                raise ConfigError(
                    f"[limits] {name} = {limit!r} is not a limit; accepted: a positive number"
                )

    @classmethod
    def from_config(cls, table: Mapping[str, Any]) -> Limits:
        """Build from the ``[limits]`` table, e.g. ``{"latency_ms": 5.0}``."""
        for name in table:
            if name == "accuracy":
                raise ConfigError(
                    "[limits] accuracy is not a hard limit: it is known only after training; "
                    f"accepted: {', '.join(LIMIT_NAMES)}"
                )
            if name not in LIMIT_NAMES:
                raise ConfigError(
                    f"[limits] {name!r} is not a limit; accepted: {', '.join(LIMIT_NAMES)}"
                )
        return cls(**table)

    def violations(
        self, latency_ms: float | None, flops: float | None, params: float | None
    ) -> list[str]:
        """One readable line per broken limit, e.g. ``"latency_ms 7.12 > 5.0"``; empty when met."""
        return [
            f"{name} {_show(value)} > {_show(limit)}"
            for name, value, limit in self._checked(latency_ms, flops, params)
            if value > limit
        ]

    def excess(self, latency_ms: float | None, flops: float | None, params: float | None) -> float:
        """How far over its limits a candidate is: the sum of relative excesses, 0 when feasible.

        A latency 10% over its limit and FLOPs 20% over theirs give 0.3. The sum ranks infeasible
        candidates: the closer one is to feasible, the better a parent it makes.
        """
        return sum(
            max(0.0, value / limit - 1.0)
            for _, value, limit in self._checked(latency_ms, flops, params)
        )

    def _checked(
        self, latency_ms: float | None, flops: float | None, params: float | None
    ) -> list[tuple[str, float, float]]:
        """(name, value, limit) for every limit set; ValueError when its figure is missing."""
        checked: list[tuple[str, float, float]] = []
        for name, value in zip(LIMIT_NAMES, (latency_ms, flops, params), strict=True):
            limit = getattr(self, name)
            if limit is None:
                continue
            if value is None:
                raise ValueError(
                    f"{name} was not measured; checking the limit {name} <= {_show(limit)} "
                    "needs it"
                )
            checked.append((name, value, limit))
        return checked


def _show(value: float) -> str:
    """A figure for people: 612,000,000 for counts, 5.0 or 7.12 for milliseconds."""
    if float(value).is_integer() and abs(value) >= 1000:
        return f"{int(value):,}"
    if isinstance(value, float) and value.is_integer():
        return repr(value)
    return f"{value:.6g}"


def _minimised(point: Point, directions: Sequence[Direction]) -> tuple[float, ...]:
    if len(point) != len(directions):
        raise ValueError(
            f"point {tuple(point)} has {len(point)} values for {len(directions)} objectives"
        )
    return tuple(
        -float(v) if d == "max" else float(v) for v, d in zip(point, directions, strict=True)
    )


def _dominates_min(a: Sequence[float], b: Sequence[float]) -> bool:
    """Minimisation: a is nowhere worse than b and better somewhere."""
    pairs = list(zip(a, b, strict=True))
    return all(x <= y for x, y in pairs) and any(x < y for x, y in pairs)


def dominates(a: Point, b: Point, directions: Sequence[Direction]) -> bool:
    """Whether ``a`` dominates ``b``: at least as good in every objective, better in one.

    Equal points do not dominate each other.
    """
    return _dominates_min(_minimised(a, directions), _minimised(b, directions))


def _first_front(points: Sequence[tuple[float, ...]], indices: Iterable[int]) -> list[int]:
    """The nondominated members of ``indices`` (minimisation), in ascending index order.

    A point can only be dominated by one before it in lexicographic order, and whatever dominates
    a dominated point is itself dominated by a front member, so each point is checked against the
    front found so far only.
    """
    front: list[int] = []
    for i in sorted(indices, key=lambda i: points[i]):
        if not any(_dominates_min(points[j], points[i]) for j in front):
            front.append(i)
    return sorted(front)


def pareto_front(points: Sequence[Point], directions: Sequence[Direction]) -> list[int]:
    """Indices of the points no other point dominates, ascending; duplicates are all kept."""
    minimised = [_minimised(p, directions) for p in points]
    return _first_front(minimised, range(len(minimised)))


def nondominated_sort(points: Sequence[Point], directions: Sequence[Direction]) -> list[int]:
    """The front rank of each point: 0 for the Pareto front, 1 for the front without it, ..."""
    minimised = [_minimised(p, directions) for p in points]
    ranks = [-1] * len(minimised)
    remaining = set(range(len(minimised)))
    rank = 0
    while remaining:
        for i in _first_front(minimised, remaining):
            ranks[i] = rank
            remaining.discard(i)
        rank += 1
    return ranks


def hypervolume(
    points: Sequence[Point], directions: Sequence[Direction], reference: Point
) -> float:
    """The volume the points dominate up to ``reference``, exactly, in any number of objectives.

    ``reference`` is given in the objectives' directions, like the points: e.g. accuracy 0.0 and
    latency 20 ms. A point not strictly better than the reference in every objective adds
    nothing; duplicate points count once. Units are the product of the objectives' units.
    """
    ref = _minimised(reference, directions)
    minimised = (_minimised(p, directions) for p in points)
    inside = {p for p in minimised if all(x < r for x, r in zip(p, ref, strict=True))}
    return _volume(sorted(inside), ref)


def _volume(points: list[tuple[float, ...]], ref: tuple[float, ...]) -> float:
    """Hypervolume (minimisation) of points strictly inside ``ref``, by slicing the last axis.

    Points are sorted on the last objective; between one point's value and the next, the slice is
    the (d-1)-dimensional volume of the points seen so far. O(n^(d-1) log n): exact and fast
    enough for fronts of a few hundred points in 2 or 3 objectives.
    """
    if not points:
        return 0.0
    if len(ref) == 1:
        return ref[0] - min(p[0] for p in points)
    if len(ref) == 2:
        # Sweep along the first axis: each point that lowers the best second value so far adds
        # the rectangle between it and the reference.
        area = 0.0
        best = ref[1]
        for x, y in sorted(points):
            if y < best:
                area += (ref[0] - x) * (best - y)
                best = y
        return area
    ordered = sorted(points, key=lambda p: p[-1])
    volume = 0.0
    for i, point in enumerate(ordered):
        upper = ordered[i + 1][-1] if i + 1 < len(ordered) else ref[-1]
        if upper > point[-1]:
            volume += _volume([p[:-1] for p in ordered[: i + 1]], ref[:-1]) * (upper - point[-1])
    return volume


def front_of(results: Iterable[Result], objectives: Objectives) -> list[Result]:
    """The Pareto front of the trained, feasible candidates (status ``ok``), in the given order."""
    trained = [r for r in results if r.status == "ok" and r.feasible]
    points = [objectives.values(r) for r in trained]
    return [trained[i] for i in pareto_front(points, objectives.directions)]
