"""A search as people read it: its front (or every candidate) as rows, filtered and sorted, for
the terminal table, CSV and JSON; and its progress, for the plots.

The state file is read read-only, in one snapshot, so the report can run beside a daemon that is
writing it: it takes no lock the daemon waits on and sees only committed candidates.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeevo.errors import EdgeevoError, StateError
from edgeevo.fitness import Limits, Objectives, front_of, hypervolume, pareto_front
from edgeevo.result import Result
from edgeevo.store import Store

FLOPS_NOTE = "FLOPs as fvcore counts them: one multiply-add counts as one, at batch 1"
LATENCY_NOTE = "latency: median of repeated ONNX Runtime runs at batch 1, in ms"
DEFAULT_OBJECTIVES = {"accuracy": "max", "latency_ms": "min", "flops": "min"}

FORMATS = ("table", "csv", "json")

# What rows can be sorted by: Result attribute names, plus the candidate id and its age. Each
# sorts best first in its own direction: accuracy highest first, the others lowest first.
SORT_KEYS = ("latency_ms", "accuracy", "flops", "params", "id", "age")

CSV_COLUMNS = (
    "id",
    "accuracy",
    "latency_ms",
    "latency_p90_ms",
    "latency_source",
    "profile",
    "flops",
    "params",
    "status",
    "feasible",
    "violations",
    "on_front",
    "age",
    "alive",
    "train_seconds",
    "parent_id",
    "mutation",
    "genotype",
)


@dataclass(frozen=True)
class Row:
    """One completed candidate with what the history says about it.

    ``completion`` numbers candidates in the order they completed (1 for the first); ``age`` is
    how many completed after it, and a candidate is ``alive`` in the aging population while its
    age is below the population size P.
    """

    result: Result
    completion: int
    age: int
    alive: bool
    on_front: bool

    @property
    def id(self) -> int:
        return self.result.candidate_id


@dataclass(frozen=True)
class SearchReport:
    """Everything the report shows of one state file, read in one snapshot."""

    state: Path
    config: dict[str, Any]  # the search's config as ``serve`` stored it
    objectives: Objectives
    limits: Limits
    history: list[Row]  # every completed candidate, in completion order
    counts: dict[str, int]  # candidates by status, running and interrupted included

    @property
    def budget(self) -> int | None:
        return (self.config.get("search") or {}).get("budget")

    @property
    def population(self) -> int | None:
        return (self.config.get("search") or {}).get("population")

    @property
    def table(self) -> dict[str, Any] | None:
        """The ``[table]`` section of a search evaluated by lookup; None for a trained one."""
        table = self.config.get("table") or {}
        return table if table.get("path") else None

    @property
    def accuracy_words(self) -> tuple[str, str]:
        """(column heading, phrase) for the accuracy this search measured."""
        if self.table is not None:
            return "accuracy", f"table accuracy ({self.table.get('accuracy')})"
        return "val. acc.", "validation accuracy"

    @property
    def front(self) -> list[Row]:
        return [row for row in self.history if row.on_front]

    @property
    def best(self) -> Row | None:
        """The trained candidate of highest validation accuracy (the earlier one on a tie)."""
        trained = [row for row in self.history if row.result.accuracy is not None]
        return max(trained, key=lambda row: (row.result.accuracy, -row.completion), default=None)


def load_report(state_path: Path) -> SearchReport:
    """Read the search in ``state_path``; StateError when it is missing or not a state file."""
    with Store.open(state_path, readonly=True) as store, store.snapshot():
        config = store.meta("config")
        results = store.completed()
        counts = store.count_by_status()
    if config is not None and not isinstance(config, dict):
        raise StateError(f"state file {str(state_path)!r} holds a config that is not a table")
    config = config or {}
    try:
        objectives = Objectives.from_config(config.get("objectives") or DEFAULT_OBJECTIVES)
        limits = Limits.from_config(config.get("limits") or {})
    except EdgeevoError as exc:
        raise StateError(f"state file {str(state_path)!r}: stored config: {exc}") from None

    population = (config.get("search") or {}).get("population")
    on_front = {r.candidate_id for r in front_of(results, objectives)}
    total = len(results)
    history = [
        Row(
            result=result,
            completion=index + 1,
            age=total - index - 1,
            alive=population is not None and total - index - 1 < population,
            on_front=result.candidate_id in on_front,
        )
        for index, result in enumerate(results)
    ]
    return SearchReport(state_path, config, objectives, limits, history, counts)


@dataclass(frozen=True)
class Selection:
    """Which rows to show and in what order.

    ``everything`` shows every completed candidate instead of the front; ``max_latency`` (ms)
    and ``min_accuracy`` (a fraction, 0..1) keep only the rows within them; rows without the
    figure (never trained, never timed) are dropped by the filter on it.
    """

    everything: bool = False
    max_latency: float | None = None
    min_accuracy: float | None = None
    sort: str = "latency_ms"

    def __post_init__(self) -> None:
        if self.sort not in SORT_KEYS:
            raise EdgeevoError(
                f"sort key {self.sort!r} is unknown; accepted: {', '.join(SORT_KEYS)}"
            )
        if self.max_latency is not None and not (
            math.isfinite(self.max_latency) and self.max_latency > 0
        ):
            raise EdgeevoError(
                f"--max-latency {self.max_latency!r}; expected a positive number of milliseconds"
            )
        if self.min_accuracy is not None and not 0.0 <= self.min_accuracy <= 1.0:
            raise EdgeevoError(
                f"--min-accuracy {self.min_accuracy!r}; expected a fraction from 0 to 1 "
                "(0.3 for 30%)"
            )

    def describe(self) -> str:
        """The selection in words, e.g. "front, latency <= 0.5 ms, sorted by latency_ms"."""
        parts = ["every completed candidate" if self.everything else "front"]
        if self.max_latency is not None:
            parts.append(f"latency <= {self.max_latency:g} ms")
        if self.min_accuracy is not None:
            parts.append(f"accuracy >= {100 * self.min_accuracy:g}%")
        parts.append(f"sorted by {self.sort}")
        return ", ".join(parts)


def select(report: SearchReport, selection: Selection) -> list[Row]:
    """The rows ``selection`` asks for, filtered and sorted."""
    rows = report.history if selection.everything else report.front
    if selection.max_latency is not None:
        most = selection.max_latency
        rows = [r for r in rows if r.result.latency_ms is not None and r.result.latency_ms <= most]
    if selection.min_accuracy is not None:
        least = selection.min_accuracy
        rows = [r for r in rows if r.result.accuracy is not None and r.result.accuracy >= least]
    return sorted(rows, key=_sort_key(selection.sort))


def _sort_key(name: str):
    def missing_last(value: float | None, *, highest_first: bool = False) -> tuple[bool, float]:
        if value is None:
            return (True, 0.0)
        return (False, -value if highest_first else value)

    def key(row: Row) -> tuple[Any, ...]:
        r = row.result
        latency = missing_last(r.latency_ms)
        accuracy = missing_last(r.accuracy, highest_first=True)
        if name == "id":
            return (row.id,)
        if name == "age":
            return (row.age, row.id)
        if name == "accuracy":
            return (accuracy, latency, row.id)
        if name == "latency_ms":
            return (latency, accuracy, row.id)
        return (missing_last(getattr(r, name)), accuracy, row.id)

    return key


def row_dicts(rows: list[Row]) -> list[dict[str, Any]]:
    """One plain dict per row, with the columns of :data:`CSV_COLUMNS`."""
    return [
        {
            "id": row.id,
            "accuracy": row.result.accuracy,
            "latency_ms": row.result.latency_ms,
            "latency_p90_ms": row.result.latency_p90_ms,
            "latency_source": row.result.latency_source,
            "profile": row.result.profile,
            "flops": row.result.flops,
            "params": row.result.params,
            "status": row.result.status,
            "feasible": _feasible(row.result),
            "violations": "; ".join(row.result.violations),
            "on_front": row.on_front,
            "age": row.age,
            "alive": row.alive,
            "train_seconds": row.result.train_seconds,
            "parent_id": row.result.parent_id,
            "mutation": row.result.mutation,
            "genotype": row.result.genotype.dumps(),
        }
        for row in rows
    ]


def _feasible(result: Result) -> bool | None:
    """Within the hard limits; None for a candidate that failed before it could be checked."""
    if result.status == "failed" and not result.violations:
        return None
    return not result.violations


def to_csv(rows: list[Row]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(row_dicts(rows))
    return buffer.getvalue()


def to_json(report: SearchReport, rows: list[Row], selection: Selection) -> str:
    doc = {
        "state": str(report.state),
        "selection": {
            "rows": "all" if selection.everything else "front",
            "max_latency_ms": selection.max_latency,
            "min_accuracy": selection.min_accuracy,
            "sort": selection.sort,
        },
        "objectives": dict(report.objectives.items),
        "limits": {
            name: getattr(report.limits, name)
            for name in ("latency_ms", "flops", "params")
            if getattr(report.limits, name) is not None
        },
        "units": {
            "accuracy": "fraction of validation images classified right, 0..1",
            "latency_ms": LATENCY_NOTE,
            "flops": FLOPS_NOTE,
            "age": "candidates completed after this one; alive while below the population size",
        },
        "counts": report.counts,
        "budget": report.budget,
        "population": report.population,
        "candidates": [
            {**row, "genotype": json.loads(row["genotype"])} for row in row_dicts(rows)
        ],
    }
    return json.dumps(doc, indent=2) + "\n"


def render_text(
    report: SearchReport,
    rows: list[Row],
    selection: Selection,
    output_format: str,
    *,
    terminal: bool = False,
) -> str:
    """The rows in one of :data:`FORMATS`. A table for a terminal takes its width and colours;
    otherwise it is plain text, 100 characters wide."""
    if output_format == "csv":
        return to_csv(rows)
    if output_format == "json":
        return to_json(report, rows, selection)
    if output_format != "table":
        raise EdgeevoError(f"format {output_format!r}; expected one of: {', '.join(FORMATS)}")
    from rich.console import Console

    buffer = io.StringIO()
    if terminal:
        console = Console(file=buffer, force_terminal=True)
    else:
        console = Console(file=buffer, width=100, color_system=None)
    console.print(render_table(report, rows, selection))
    return buffer.getvalue()


def latency_sources(rows: list[Row]) -> list[str]:
    """How the rows' latencies were obtained, e.g. ``["measured with profile devbox"]``."""
    found = {(r.result.latency_source, r.result.profile) for r in rows if r.result.latency_ms}
    return [
        f"{source or 'unknown'} with profile {profile or 'unknown'}"
        for source, profile in sorted(found, key=lambda pair: (str(pair[0]), str(pair[1])))
    ]


def render_table(report: SearchReport, rows: list[Row], selection: Selection):
    """A rich Table of ``rows``, with the units and the search's state in its caption."""
    from rich.table import Table

    profiles = {r.result.profile for r in rows}
    counts = report.counts
    done = sum(counts.get(s, 0) for s in ("ok", "infeasible", "failed"))
    caption = [
        f"{done} candidates complete"
        + (f" of {report.budget}" if report.budget else "")
        + f": {counts.get('ok', 0)} {'looked up' if report.table else 'trained'}, "
        f"{counts.get('infeasible', 0)} infeasible, "
        f"{counts.get('failed', 0)} failed"
        + "".join(f", {counts[s]} {s}" for s in ("running", "interrupted") if counts.get(s)),
        f"objectives: {', '.join(f'{n} ({d})' for n, d in report.objectives.items)}",
        "hard limits: " + (", ".join(_limit_lines(report.limits)) or "none"),
        f"shown: {selection.describe()}",
        FLOPS_NOTE,
        LATENCY_NOTE if report.table is None else "latency: the table's value, in ms",
    ]
    sources = latency_sources(rows)
    if sources:
        caption.append("latency " + "; ".join(sources))
    if report.population:
        caption.append(
            f"age: candidates completed since; below {report.population} (P) it is alive in "
            "the population"
        )
    best = report.best
    if best is not None:
        caption.append(
            f"best {report.accuracy_words[1]}: {100 * (best.result.accuracy or 0):.2f}% "
            f"(candidate [{best.id}])"
        )

    what = "Candidates" if selection.everything else "Pareto front"
    table = Table(
        title=f"{what}: {len(rows)} of {len(report.history)} completed",
        caption="\n".join(caption),
        caption_justify="left",
    )
    table.add_column("id", justify="right")
    table.add_column(report.accuracy_words[0], justify="right")
    table.add_column("latency ms", justify="right")
    table.add_column("latency from")
    table.add_column("MFLOPs", justify="right")
    table.add_column("params", justify="right")
    table.add_column("feasible")
    table.add_column("age", justify="right")
    table.add_column("parent", justify="right")
    for row in rows:
        r = row.result
        source = r.latency_source or "-"
        if len(profiles) > 1:
            source += f" ({r.profile})"
        feasible = _feasible(r)
        table.add_row(
            str(row.id) + ("*" if selection.everything and row.on_front else ""),
            f"{100 * r.accuracy:.2f}%" if r.accuracy is not None else "-",
            f"{r.latency_ms:.3f}" if r.latency_ms is not None else "-",
            source,
            f"{r.flops / 1e6:.2f}" if r.flops is not None else "-",
            f"{r.params / 1e3:.1f}k" if r.params is not None else "-",
            {True: "yes", False: "[red]no[/red]", None: "failed"}[feasible],
            str(row.age),
            f"[{r.parent_id}]" if r.parent_id is not None else "random",
        )
    if selection.everything:
        caption.insert(3, "* on the Pareto front")
        table.caption = "\n".join(caption)
    return table


def _limit_lines(limits: Limits) -> list[str]:
    units = {"latency_ms": " ms", "flops": " FLOPs", "params": " parameters"}
    return [
        f"{name} <= {_figure(getattr(limits, name))}{units[name]}"
        for name in ("latency_ms", "flops", "params")
        if getattr(limits, name) is not None
    ]


def _figure(value: float) -> str:
    """5,000,000 for a count, 5 or 0.75 for milliseconds."""
    if float(value).is_integer() and abs(value) >= 1000:
        return f"{int(value):,}"
    return f"{value:g}"


@dataclass(frozen=True)
class Progress:
    """How the search improved, one entry per completed candidate (in completion order).

    ``hypervolume`` is the share of the reference box that the front so far dominates (0..1):
    the box runs, for each objective, from its ideal value (accuracy 1, costs 0) to
    ``reference`` (accuracy 0; a cost's hard limit, or 1.1 times its largest value seen).
    ``best_accuracy`` is the best validation accuracy so far of a feasible candidate.
    """

    evaluated: list[int]
    hypervolume: list[float]
    best_accuracy: list[float | None]
    reference: tuple[float, ...]


def search_progress(report: SearchReport) -> Progress:
    objectives = report.objectives
    directions = objectives.directions
    trained = [row.result for row in report.history if row.result.status == "ok"]
    trained = [r for r in trained if r.feasible]

    reference, ideal = [], []
    for name, direction in objectives.items:
        seen = [v for r in trained if (v := r.objective(name)) is not None]
        if direction == "max":
            reference.append(0.0)
            ideal.append(1.0 if name == "accuracy" else max(seen, default=1.0))
        else:
            limit = getattr(report.limits, name, None)
            reference.append(float(limit) if limit is not None else 1.1 * max(seen, default=1.0))
            ideal.append(0.0)
    box = math.prod(abs(r - i) for r, i in zip(reference, ideal, strict=True))

    front: list[tuple[float, ...]] = []
    volumes: list[float] = []
    best: list[float | None] = []
    best_so_far: float | None = None
    for row in report.history:
        r = row.result
        if r.status == "ok" and r.feasible:
            front.append(objectives.values(r))
            front = [front[i] for i in pareto_front(front, directions)]
            if r.accuracy is not None:
                best_so_far = max(best_so_far or 0.0, r.accuracy)
        volume = hypervolume(front, directions, reference) if front else 0.0
        volumes.append(volume / box if box > 0 else 0.0)
        best.append(best_so_far)
    return Progress(
        evaluated=[row.completion for row in report.history],
        hypervolume=volumes,
        best_accuracy=best,
        reference=tuple(reference),
    )
