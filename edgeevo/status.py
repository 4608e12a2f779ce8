"""``edgeevo status``: how far a search has come, read from its state file.

The state is opened read-only; in WAL mode a reader never blocks the daemon's writes, so the
command is safe to run (and to run often) beside a working daemon.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgeevo.config import Config
from edgeevo.fitness import Limits, Objectives, front_of, hypervolume
from edgeevo.result import FINAL_STATUSES, Result
from edgeevo.store import Store

STATUSES = ("ok", "infeasible", "failed", "running", "interrupted")


@dataclass(frozen=True)
class Best:
    objective: str
    direction: str
    value: float
    candidate_id: int


@dataclass(frozen=True)
class SearchStatus:
    """Progress of one search. Times are seconds; rates are candidates per hour."""

    state: str
    daemon_pid: int | None  # the serve process working on this state, None when there is none
    budget: int | None
    done: int  # complete: ok, infeasible or failed
    counts: dict[str, int]  # by status: ok, infeasible, failed, running, interrupted
    budget_left: int | None
    rate_per_hour: float | None
    seconds_left: float | None
    best: list[Best]
    front_size: int
    hypervolume: float | None
    reference: dict[str, float]  # the hypervolume's reference point, by objective
    reference_note: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def read_status(state_path: Path, *, now: float | None = None) -> SearchStatus:
    """The status of the search in ``state_path``; StateError when it is not a state file."""
    now = time.time() if now is None else now
    with Store.open(state_path, readonly=True) as store:
        config = store.meta("config") or {}
        workers = store.meta("workers")
        counts = store.count_by_status()
        results = store.completed()
        start = store.last_event("start")
        times = store.completion_times(since=start[0]) if start else []

    objectives = Objectives.from_config(config.get("objectives") or Config().objectives)
    limits = Limits.from_config(config.get("limits") or {})
    budget = (config.get("search") or {}).get("budget")
    population = (config.get("search") or {}).get("population") or 0
    done = sum(counts.get(status, 0) for status in FINAL_STATUSES)
    budget_left = None if budget is None else max(0, budget - done)

    # Throughput of the latest run (completions since its start), else the mean time of a
    # candidate in its worker divided among the workers.
    rate = None
    if start and times and times[-1] > start[0]:
        rate = 3600 * len(times) / (times[-1] - start[0])
    elif results and isinstance(workers, int):
        seconds = [r.total_seconds for r in results if r.total_seconds]
        if seconds:
            rate = 3600 * workers / (sum(seconds) / len(seconds))
    seconds_left = None
    if budget_left == 0:
        seconds_left = 0.0
    elif budget_left is not None and rate:
        seconds_left = 3600 * budget_left / rate

    front = front_of(results, objectives)
    reference, note = _reference(results, objectives, limits, population)
    volume = None
    if front and reference is not None:
        points = [objectives.values(r) for r in front]
        point = tuple(reference[name] for name in objectives.names)
        volume = hypervolume(points, objectives.directions, point)

    return SearchStatus(
        state=str(state_path),
        daemon_pid=_daemon_pid(state_path),
        budget=budget,
        done=done,
        counts={
            s: counts.get(s, 0) for s in ("ok", "infeasible", "failed", "running", "interrupted")
        },
        budget_left=budget_left,
        rate_per_hour=rate,
        seconds_left=seconds_left,
        best=_best(results, objectives),
        front_size=len(front),
        hypervolume=volume,
        reference=reference or {},
        reference_note=note,
    )


def _best(results: list[Result], objectives: Objectives) -> list[Best]:
    trained = [r for r in results if r.status == "ok" and r.feasible]
    best: list[Best] = []
    for name, direction in objectives.items:
        scored = [(r.objective(name), r.candidate_id) for r in trained]
        scored = [(v, i) for v, i in scored if v is not None]
        if not scored:
            continue
        # Ties go to the earlier candidate.
        sign = -1.0 if direction == "max" else 1.0
        value, candidate_id = min(scored, key=lambda vi: (sign * vi[0], vi[1]))
        best.append(Best(name, direction, value, candidate_id))
    return best


def _reference(
    results: list[Result], objectives: Objectives, limits: Limits, population: int
) -> tuple[dict[str, float] | None, str]:
    """The hypervolume's reference point, fixed for the whole search where it can be: 0 for an
    objective to maximise; for one to minimise its hard limit, else the worst value among the
    trained candidates of the random start (ids 1..P), which never change once complete."""
    trained = [r for r in results if r.status == "ok" and r.feasible]
    start = [r for r in trained if r.candidate_id <= population] or trained
    reference: dict[str, float] = {}
    notes: list[str] = []
    for name, direction in objectives.items:
        limit = getattr(limits, name, None)
        if direction == "max":
            reference[name] = 0.0
            notes.append(f"{name} 0")
        elif limit is not None:
            reference[name] = float(limit)
            notes.append(f"{name} {limit:g} (its limit)")
        else:
            values = [v for r in start if (v := r.objective(name)) is not None]
            if not values:
                return None, "no trained candidate yet"
            reference[name] = max(values)
            notes.append(f"{name} {max(values):g} (worst of the random start)")
    return reference, ", ".join(notes)


def _daemon_pid(state_path: Path) -> int | None:
    """The pid in the state's lock file, if that process is an edgeevo serve still running.

    The lock itself is not tried: taking it, even for a moment, could refuse a daemon that is
    starting just then.
    """
    import psutil

    try:
        pid = int(state_path.with_name(state_path.name + ".lock").read_text().split()[0])
        command = psutil.Process(pid).cmdline()
    except (OSError, ValueError, IndexError, psutil.Error):
        return None
    is_serve = "serve" in command and any("edgeevo" in part for part in command)
    return pid if is_serve else None


def render_status(status: SearchStatus) -> str:
    """The status as a few lines of text for people."""
    counts = status.counts
    daemon = (
        f"daemon running (pid {status.daemon_pid})"
        if status.daemon_pid is not None
        else "no daemon running"
    )
    of_budget = f" of {status.budget}" if status.budget is not None else ""
    running = (
        f"{counts['running']} running"
        if status.daemon_pid is not None
        else f"{counts['running'] + counts['interrupted']} unfinished (run at the next start)"
    )
    if status.daemon_pid is not None and counts["interrupted"]:
        running += f", {counts['interrupted']} interrupted"
    lines = [
        f"search {status.state}: {daemon}",
        f"candidates: {status.done}{of_budget} done ({counts['ok']} ok, {counts['infeasible']} "
        f"infeasible, {counts['failed']} failed), {running}"
        + (f"; {status.budget_left} left" if status.budget_left is not None else ""),
    ]
    if status.rate_per_hour is not None:
        left = (
            f"; about {_duration(status.seconds_left)} left"
            if status.seconds_left is not None
            else ""
        )
        lines.append(f"rate: {status.rate_per_hour:.1f} candidates per hour{left}")
    else:
        lines.append("rate: not known yet")
    if status.best:
        lines.append("best: " + ", ".join(_show_best(b) for b in status.best))
    volume = f"{status.hypervolume:.6g}" if status.hypervolume is not None else "-"
    lines.append(
        f"front: {status.front_size} candidates; hypervolume {volume} "
        f"(reference: {status.reference_note})"
    )
    return "\n".join(lines)


def _show_best(best: Best) -> str:
    if best.objective == "accuracy":
        value = f"{100 * best.value:.2f}%"
    elif best.objective == "latency_ms":
        value = f"{best.value:.3f} ms"
    elif best.objective == "flops":
        value = f"{best.value / 1e6:.2f} MFLOPs"
    else:
        value = f"{best.value / 1e3:.1f}k"
    return f"{best.objective} {value} [{best.candidate_id}]"


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"
