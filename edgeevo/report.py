"""The Pareto front of a search, as a terminal table and as CSV and JSON files.

Reads the state file read-only, so it can run beside a daemon that is writing it.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeevo.files import write_atomically
from edgeevo.fitness import Objectives, front_of
from edgeevo.result import Result
from edgeevo.store import Store

FLOPS_NOTE = "FLOPs as fvcore counts them: one multiply-add counts as one, at batch 1"
LATENCY_NOTE = "latency: median of repeated ONNX Runtime runs at batch 1, in ms"

CSV_COLUMNS = (
    "id",
    "accuracy",
    "latency_ms",
    "latency_p90_ms",
    "latency_source",
    "profile",
    "flops",
    "params",
    "train_seconds",
    "parent_id",
    "mutation",
    "genotype",
)


@dataclass(frozen=True)
class FrontReport:
    front: list[Result]  # sorted by latency, then by accuracy (best first)
    objectives: Objectives
    counts: dict[str, int]
    budget: int | None
    best_accuracy: Result | None


def load_front(state_path: Path) -> FrontReport:
    """The front of all completed, feasible candidates of the search in ``state_path``."""
    with Store.open(state_path, readonly=True) as store:
        config = store.meta("config") or {}
        results = store.completed()
        counts = store.count_by_status()
    objectives = Objectives.from_config(
        config.get("objectives") or {"accuracy": "max", "latency_ms": "min", "flops": "min"}
    )
    front = sorted(
        front_of(results, objectives),
        key=lambda r: (_or_inf(r.latency_ms), -(r.accuracy or 0.0), r.candidate_id),
    )
    trained = [r for r in results if r.status == "ok" and r.accuracy is not None]
    best = max(trained, key=lambda r: (r.accuracy, -r.candidate_id), default=None)
    budget = (config.get("search") or {}).get("budget")
    return FrontReport(front, objectives, counts, budget, best)


def _or_inf(value: float | None) -> float:
    return float("inf") if value is None else value


def front_rows(report: FrontReport) -> list[dict[str, Any]]:
    """One plain dict per front member, with the columns of :data:`CSV_COLUMNS`."""
    return [
        {
            "id": r.candidate_id,
            "accuracy": r.accuracy,
            "latency_ms": r.latency_ms,
            "latency_p90_ms": r.latency_p90_ms,
            "latency_source": r.latency_source,
            "profile": r.profile,
            "flops": r.flops,
            "params": r.params,
            "train_seconds": r.train_seconds,
            "parent_id": r.parent_id,
            "mutation": r.mutation,
            "genotype": r.genotype.dumps(),
        }
        for r in report.front
    ]


def write_csv(report: FrontReport, path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(front_rows(report))
    write_atomically(path, buffer.getvalue())


def write_json(report: FrontReport, path: Path) -> None:
    doc = {
        "objectives": dict(report.objectives.items),
        "units": {"flops": FLOPS_NOTE, "latency_ms": LATENCY_NOTE, "accuracy": "fraction 0..1"},
        "counts": report.counts,
        "front": [{**row, "genotype": json.loads(row["genotype"])} for row in front_rows(report)],
    }
    write_atomically(path, json.dumps(doc, indent=2) + "\n")


def render_front(report: FrontReport):
    """A rich Table of the front, sorted by latency."""
    from rich.table import Table

    counts = report.counts
    done = sum(counts.get(s, 0) for s in ("ok", "infeasible", "failed"))
    caption = [
        f"{done} candidates complete"
        + (f" of {report.budget}" if report.budget else "")
        + f": {counts.get('ok', 0)} trained, {counts.get('infeasible', 0)} infeasible, "
        f"{counts.get('failed', 0)} failed",
        f"objectives: {', '.join(f'{n} ({d})' for n, d in report.objectives.items)}",
        FLOPS_NOTE,
        LATENCY_NOTE,
    ]
    if report.best_accuracy is not None:
        best = report.best_accuracy
        caption.append(
            f"best validation accuracy: {100 * (best.accuracy or 0):.2f}% "
            f"(candidate [{best.candidate_id}])"
        )
    sources = sorted({f"{r.latency_source} with {r.profile} settings" for r in report.front})
    if sources:
        caption.append("latency " + "; ".join(sources))
    table = Table(
        title=f"Pareto front: {len(report.front)} candidates",
        caption="\n".join(caption),
        caption_justify="left",
    )
    table.add_column("id", justify="right")
    table.add_column("val. acc.", justify="right")
    table.add_column("latency ms", justify="right")
    table.add_column("MFLOPs", justify="right")
    table.add_column("params", justify="right")
    table.add_column("train s", justify="right")
    table.add_column("parent", justify="right")
    table.add_column("mutation", no_wrap=True)
    for r in report.front:
        table.add_row(
            str(r.candidate_id),
            f"{100 * (r.accuracy or 0):.2f}%",
            f"{r.latency_ms:.3f}" if r.latency_ms is not None else "-",
            f"{r.flops / 1e6:.2f}" if r.flops is not None else "-",
            f"{r.params / 1e3:.1f}k" if r.params is not None else "-",
            f"{r.train_seconds:.1f}" if r.train_seconds is not None else "-",
            f"[{r.parent_id}]" if r.parent_id is not None else "random",
            (r.mutation or "").split(" ")[0],
        )
    return table
