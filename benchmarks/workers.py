"""Throughput of ``edgeevo serve`` with one and with two worker processes, and its overhead.

The real daemon (:func:`edgeevo.daemon.serve`, in a process of its own) runs the search in
``--config`` twice, each time on a fresh state: with ``[workers] count = 1`` and ``count = 2``,
one torch thread per worker (``threads = 1``), and ``--budget`` candidates. Then, from the state:

* candidates per hour = candidates / (last completion - first candidate handed out) * 3600. The
  start-up (every worker loading the data) is left out: it happens once in a search of days.
* ``speedup_2_workers`` = candidates per hour with 2 workers / with 1 worker.
* ``overhead_percent``: everything but training, as a share of the candidate's time. The
  candidate's time is the worker time the search had per candidate (W x the window above,
  divided by the candidates); training is the trainer's own wall clock (``train_seconds``). The
  rest is split into the evaluation outside training (building the network, counting FLOPs,
  the ONNX export and its latency, in the worker) and the daemon's own work with the time
  workers waited for it (storing results, asking the strategy, handing candidates over).

The figures depend on a quiet machine. Run small to check that it works:

    EDGEEVO_DATA_ROOT=../shared/data/cifar10 .venv/bin/python benchmarks/workers.py --budget 4

The last line printed is JSON with ``speedup_2_workers`` and ``overhead_percent`` (of the
2-worker run), beside the figures of each run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import multiprocessing
import sqlite3
import sys
import tempfile
from pathlib import Path

from edgeevo.config import Config, load_config

HERE = Path(__file__).resolve().parent


def _serve(config: Config, log_path: str) -> None:
    """The daemon in a process of its own, logging to a file."""
    from edgeevo.daemon import serve

    handler = logging.FileHandler(log_path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("edgeevo")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    sys.exit(serve(config))


def run_search(config: Config, workers: int, budget: int, folder: Path) -> dict[str, float]:
    """Run the search with ``workers`` one-thread workers; its figures, from the state."""
    state = folder / f"workers-{workers}.db"
    config = dataclasses.replace(
        config,
        search=dataclasses.replace(config.search, budget=budget),
        workers=dataclasses.replace(config.workers, count=workers, threads=1),
        state=dataclasses.replace(config.state, path=str(state)),
    )
    log = folder / f"workers-{workers}.log"
    process = multiprocessing.get_context("spawn").Process(target=_serve, args=(config, str(log)))
    process.start()
    process.join()
    if process.exitcode != 0:
        sys.exit(f"serve with {workers} workers exited with {process.exitcode}; see {log}")

    with sqlite3.connect(state) as db:
        rows = db.execute(
            "SELECT created_at, finished_at, status, train_seconds, total_seconds FROM candidates"
        ).fetchall()
    window = max(row[1] for row in rows) - min(row[0] for row in rows)
    worker_time = workers * window
    training = sum(row[3] or 0.0 for row in rows)
    evaluation = sum(row[4] or 0.0 for row in rows)
    return {
        "workers": workers,
        "candidates": len(rows),
        "trained": sum(row[2] == "ok" for row in rows),
        "seconds": window,
        "candidates_per_hour": 3600 * len(rows) / window,
        "seconds_per_candidate": worker_time / len(rows),
        "training_percent": 100 * training / worker_time,
        "evaluation_outside_training_percent": 100 * (evaluation - training) / worker_time,
        "daemon_and_waiting_percent": 100 * (worker_time - evaluation) / worker_time,
        "overhead_percent": 100 * (worker_time - training) / worker_time,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=HERE / "workers.toml")
    parser.add_argument("--budget", type=int, default=40, help="candidates per run")
    args = parser.parse_args()
    config = load_config(args.config)

    runs = []
    with tempfile.TemporaryDirectory(prefix="edgeevo-bench-") as tmp:
        for workers in (1, 2):
            figures = run_search(config, workers, args.budget, Path(tmp))
            runs.append(figures)
            print(
                f"{workers} worker{'s' if workers > 1 else ''} (1 torch thread each): "
                f"{figures['candidates']} candidates ({figures['trained']} trained) in "
                f"{figures['seconds']:.1f} s, {figures['candidates_per_hour']:.1f} candidates "
                f"per hour, {figures['seconds_per_candidate']:.2f} worker-seconds per candidate: "
                f"training {figures['training_percent']:.2f}%, evaluation outside training "
                f"{figures['evaluation_outside_training_percent']:.2f}%, daemon and waiting "
                f"{figures['daemon_and_waiting_percent']:.2f}%",
                flush=True,
            )
    speedup = runs[1]["candidates_per_hour"] / runs[0]["candidates_per_hour"]
    print(f"speedup with 2 workers: {speedup:.2f}x (goal 1.7x)")
    print(
        f"overhead (everything but training) with 2 workers: {runs[1]['overhead_percent']:.2f}% "
        f"of a candidate's time, of which the daemon and waiting for it "
        f"{runs[1]['daemon_and_waiting_percent']:.2f}% (goal under 2%)"
    )
    print(
        json.dumps(
            {
                "speedup_2_workers": round(speedup, 3),
                "overhead_percent": round(runs[1]["overhead_percent"], 2),
                "daemon_percent": round(runs[1]["daemon_and_waiting_percent"], 2),
                "config": str(args.config),
                "budget": args.budget,
                "runs": [{k: round(v, 3) for k, v in run.items()} for run in runs],
            }
        )
    )


if __name__ == "__main__":
    main()
