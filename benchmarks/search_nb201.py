"""How few candidates each strategy needs to find the accuracy-latency front of NAS-Bench-201.

Every candidate is evaluated by lookup in a table (no training), so a search of 1,000 candidates
takes well under a second and many seeds can be run. For each strategy and for pymoo's NSGA-II at
the same budget this prints:

- the median hypervolume regret 1 - HV/HV* of accuracy (max) against latency (min), where HV* is
  the hypervolume of the table's exact front, with the reference point accuracy 85% and the
  table's largest latency;
- with a latency limit (20 ms by default), the median best accuracy among feasible candidates;
- the single-objective check: accuracy alone, population 10 and sample 3 (NAS-Bench-201's
  protocol), aging evolution against random search, as the median best accuracy.

The last line is JSON. Every strategy here is independent of the budget (nothing it does looks at
how many candidates remain), so one run of the largest budget is scored at each smaller budget on
its first candidates: the same figures as separate runs, at a third of the cost.

    python benchmarks/search_nb201.py --table PATH --latency raspi4_ms --seeds 50
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from edgeevo.fitness import Limits, Objectives, hypervolume, pareto_front
from edgeevo.result import Proposal, Result
from edgeevo.search import Strategy, create_strategy
from edgeevo.space import Nb201Genotype, Nb201Space
from edgeevo.tabular import Table, TabularEvaluator, load_table

DEFAULT_TABLE = (
    Path(__file__).resolve().parents[1] / "../shared/bench-data/nb201_cifar10_latency.csv"
)
BUDGETS = (100, 300, 1000)
OBJECTIVES = Objectives.from_config({"accuracy": "max", "latency_ms": "min"})
ACCURACY_ONLY = Objectives.from_config({"accuracy": "max"})
REFERENCE_ACCURACY = 0.85

# The aging strategies' settings for the multi-objective problems: population P and sample S.
POPULATION, SAMPLE = 32, 16
# NSGA-II's population, which is also its offspring per generation.
NSGA2_POPULATION = 20

Run = list[Result]  # the completed candidates in evaluation order


def run_strategy(strategy: Strategy, evaluator: TabularEvaluator, budget: int) -> Run:
    """One search with one worker: ask, evaluate, tell, ``budget`` times."""
    results = []
    for candidate_id in range(1, budget + 1):
        proposal = strategy.ask(candidate_id)
        result = evaluator.evaluate(candidate_id, proposal, seed=0)
        strategy.tell(result)
        results.append(result)
    return results


def run_nsga2(
    evaluator: TabularEvaluator, budget: int, seed: int, population: int = NSGA2_POPULATION
) -> Run:
    """pymoo's NSGA-II on the 6 edges as integers 0..4 (NB201's op order), ``budget``
    evaluations counted as pymoo counts them (a genotype seen in an earlier generation is
    evaluated again and counts again; pymoo removes duplicates within a generation only)."""
    import numpy as np
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.core.problem import Problem
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair
    from pymoo.operators.sampling.rnd import IntegerRandomSampling

    space = Nb201Space()
    limit = evaluator.limits.latency_ms
    problem = Problem(
        n_var=6, n_obj=2, n_ieq_constr=1 if limit is not None else 0, xl=0, xu=len(space.ops) - 1
    )
    algorithm = NSGA2(
        pop_size=population,
        sampling=IntegerRandomSampling(),
        crossover=SBX(prob=0.9, eta=15, vtype=float, repair=RoundingRepair()),
        mutation=PM(eta=20, vtype=float, repair=RoundingRepair()),
        eliminate_duplicates=True,
    )
    algorithm.setup(problem, termination=("n_evals", budget), seed=seed, verbose=False)
    results: Run = []
    while len(results) < budget:
        offspring = algorithm.ask()
        objectives, constraints = [], []
        for x in offspring.get("X"):
            genotype = Nb201Genotype(ops=tuple(space.ops[int(v)] for v in x))
            result = evaluator.evaluate(len(results) + 1, Proposal(genotype=genotype), seed=0)
            results.append(result)
            row = evaluator.table.rows[genotype.key()]
            objectives.append((-row.accuracy, row.latency_ms))
            constraints.append((row.latency_ms - limit,) if limit is not None else ())
        offspring.set("F", np.array(objectives, dtype=float))
        if limit is not None:
            offspring.set("G", np.array(constraints, dtype=float))
        algorithm.tell(infills=offspring)
    return results[:budget]


def front_hypervolume(results: Sequence[Result], reference: tuple[float, float]) -> float:
    points = [(r.accuracy, r.latency_ms) for r in results if r.status == "ok"]
    return hypervolume(points, OBJECTIVES.directions, reference)


def table_front(table: Table) -> list[tuple[float, float]]:
    """The exact accuracy-latency front of every row of the table."""
    points = [(row.accuracy, row.latency_ms) for row in table.rows.values()]
    return [points[i] for i in pareto_front(points, OBJECTIVES.directions)]


def best_accuracy(results: Sequence[Result]) -> float:
    return max((r.accuracy for r in results if r.status == "ok"), default=0.0)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


Maker = Callable[[int, Objectives, Limits], Strategy]


def strategy_maker(name: str, population: int, sample: int) -> Maker:
    def make(seed: int, objectives: Objectives, limits: Limits) -> Strategy:
        return create_strategy(
            name,
            Nb201Space(),
            objectives,
            limits,
            population=population,
            sample=sample,
            seed=seed,
        )

    return make


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", type=Path, default=DEFAULT_TABLE.resolve())
    parser.add_argument("--latency", default="raspi4_ms", help="the table's latency column (ms)")
    parser.add_argument("--accuracy", default="cifar10_test_acc", help="in percent")
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--limit", type=float, default=20.0, help="latency limit in ms")
    parser.add_argument("--budgets", type=int, nargs="+", default=list(BUDGETS))
    parser.add_argument("--strategies", nargs="+", default=None, help="default: all")
    parser.add_argument("--no-nsga2", action="store_true", help="leave pymoo's NSGA-II out")
    args = parser.parse_args(argv)

    from edgeevo.config import SearchSection

    table = load_table(args.table, accuracy=args.accuracy, latency=args.latency)
    budgets = sorted(args.budgets)
    largest = budgets[-1]
    default = SearchSection().strategy
    makers: dict[str, Maker] = {
        "default": strategy_maker(default, POPULATION, SAMPLE),
        "aging": strategy_maker("aging", POPULATION, SAMPLE),
        "random": strategy_maker("random", POPULATION, SAMPLE),
    }
    if args.strategies:
        makers = {name: makers[name] for name in args.strategies}

    front = table_front(table)
    reference = (REFERENCE_ACCURACY, max(row.latency_ms for row in table.rows.values()))
    best_hv = hypervolume(front, OBJECTIVES.directions, reference)
    print(
        f"table {args.table.name}: {len(table.rows)} rows, latency column {args.latency}; "
        f"exact front {len(front)} points, HV* {best_hv:.6g} (reference accuracy "
        f"{100 * reference[0]:.0f}%, latency {reference[1]:.4g} ms); {args.seeds} seeds"
    )

    def score(runs: dict[str, list[Run]], measure: Callable[[Run], float]) -> dict:
        return {
            name: {str(b): median([measure(run[:b]) for run in seed_runs]) for b in budgets}
            for name, seed_runs in runs.items()
        }

    def search_all(limits: Limits, objectives: Objectives, with_nsga2: bool) -> dict:
        evaluator = TabularEvaluator(table, limits)
        runs: dict[str, list[Run]] = {}
        for name, make in makers.items():
            runs[name] = [
                run_strategy(make(seed, objectives, limits), evaluator, largest)
                for seed in range(args.seeds)
            ]
        if with_nsga2:
            runs["nsga2"] = [run_nsga2(evaluator, largest, seed) for seed in range(args.seeds)]
        return runs

    started = time.perf_counter()
    # Multi-objective, no limit: hypervolume regret.
    runs = search_all(Limits(), OBJECTIVES, not args.no_nsga2)
    regret = score(runs, lambda run: 1.0 - front_hypervolume(run, reference) / best_hv)
    print_table(
        "median hypervolume regret 1 - HV/HV* (lower is better)", regret, budgets, "{:.4f}"
    )

    # Multi-objective under a latency limit: best feasible accuracy.
    runs = search_all(Limits(latency_ms=args.limit), OBJECTIVES, not args.no_nsga2)
    limited = score(runs, lambda run: 100 * best_accuracy(run))
    limit_best = max(
        (row.accuracy for row in table.rows.values() if row.latency_ms <= args.limit), default=0
    )
    print_table(
        f"median best accuracy (%) with latency <= {args.limit:g} ms "
        f"(best in table {100 * limit_best:.3f}%)",
        limited,
        budgets,
        "{:.3f}",
    )

    # Single objective, NAS-Bench-201's protocol: population 10, sample 3.
    single_makers = {
        "default": strategy_maker(default, 10, 3),
        "aging": strategy_maker("aging", 10, 3),
        "random": strategy_maker("random", 10, 3),
    }
    saved, makers = makers, {n: m for n, m in single_makers.items() if n in makers}
    runs = search_all(Limits(), ACCURACY_ONLY, False)
    makers = saved
    single = score(runs, lambda run: 100 * best_accuracy(run))
    top = max(row.accuracy for row in table.rows.values())
    print_table(
        f"single objective: median best accuracy (%), population 10, sample 3 "
        f"(best in table {100 * top:.3f}%)",
        single,
        budgets,
        "{:.3f}",
    )
    print(f"({time.perf_counter() - started:.0f} s)")
    print(
        json.dumps(
            {
                "table": args.table.name,
                "latency": args.latency,
                "seeds": args.seeds,
                "regret": regret,
                "best_accuracy_under_limit": {"limit_ms": args.limit, **limited},
                "single_objective_best_accuracy": single,
            }
        )
    )
    return 0


def print_table(title: str, scores: dict, budgets: list[int], fmt: str) -> None:
    print(f"\n{title}", flush=True)
    print(f"{'strategy':<10}" + "".join(f"{b:>10}" for b in budgets))
    for name, by_budget in scores.items():
        print(
            f"{name:<10}" + "".join(f"{fmt.format(by_budget[str(b)]):>10}" for b in budgets),
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(main())
