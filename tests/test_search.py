"""Strategies on a tiny synthetic problem: aging, tournaments, determinism and rebuilds."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest

from edgeevo.errors import ConfigError
from edgeevo.fitness import Limits, Objectives
from edgeevo.result import Proposal, Result, Status
from edgeevo.search import (
    AgingEvolution,
    ParetoAgingEvolution,
    RandomSearch,
    Strategy,
    create_strategy,
    list_strategies,
)
from edgeevo.space import Genotype, NasnetSpace, Nb201Space

SPACE = NasnetSpace()
OBJECTIVES = Objectives.from_config({"accuracy": "max", "latency_ms": "min"})
LIMITS = Limits(latency_ms=5.0)


def evaluate(candidate_id: int, proposal: Proposal, limits: Limits = LIMITS) -> Result:
    """A synthetic evaluation: separable convs make a net accurate and slow.

    Accuracy is the share of separable convs among the normal cell's ops; latency is 1 ms plus
    0.5 ms per separable conv in either cell, so the latency limit makes the problem a trade-off.
    """
    normal = [op for block in proposal.genotype.normal for op in block.ops]
    reduce = [op for block in proposal.genotype.reduce for op in block.ops]
    latency = 1.0 + 0.5 * sum("sep" in op for op in normal + reduce)
    violations = limits.violations(latency, 1000, 1000)
    return Result(
        candidate_id=candidate_id,
        genotype=proposal.genotype,
        status="infeasible" if violations else "ok",
        seed=0,
        parent_id=proposal.parent_id,
        mutation=proposal.mutation,
        accuracy=None if violations else sum("sep" in op for op in normal) / len(normal),
        latency_ms=latency,
        flops=1000,
        params=1000,
        violations=violations,
    )


def fake(
    candidate_id: int,
    status: Status = "ok",
    accuracy: float | None = 0.5,
    latency_ms: float = 3.0,
) -> Result:
    """A result with chosen figures; its genotype is a random one that marks the candidate."""
    return Result(
        candidate_id=candidate_id,
        genotype=SPACE.sample(random.Random(f"fake/{candidate_id}")),
        status=status,
        seed=0,
        accuracy=accuracy if status == "ok" else None,
        latency_ms=latency_ms,
        flops=1000,
        params=1000,
        violations=LIMITS.violations(latency_ms, 1000, 1000),
    )


def aging(population: int = 4, sample: int = 4, seed: int = 0) -> AgingEvolution:
    return AgingEvolution(
        SPACE, OBJECTIVES, population=population, sample=sample, seed=seed, limits=LIMITS
    )


def parents(strategy: Strategy, first_id: int, count: int = 40) -> set[int | None]:
    """The parents chosen for ``count`` consecutive candidate ids (each its own tournament)."""
    return {strategy.ask(i).parent_id for i in range(first_id, first_id + count)}


def test_first_population_candidates_are_random_genotypes() -> None:
    strategy = aging(population=4)
    proposals = [strategy.ask(i) for i in range(1, 5)]
    assert all(p.parent_id is None and p.mutation is None for p in proposals)
    assert len({p.genotype.key() for p in proposals}) == 4


def test_the_oldest_dies() -> None:
    strategy = aging(population=3, sample=2)
    alive = []
    for candidate_id in range(1, 7):
        strategy.tell(fake(candidate_id))
        alive.append(strategy.population_members())
    assert alive == [[1], [1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5], [4, 5, 6]]


def test_only_completed_candidates_join_the_population() -> None:
    strategy = aging(population=3, sample=2)
    statuses: list[Status] = ["running", "interrupted", "failed", "infeasible"]
    for candidate_id, status in enumerate(statuses, 1):
        strategy.tell(fake(candidate_id, status=status, latency_ms=9.0))
    assert strategy.population_members() == [3, 4]


def test_tournament_prefers_trained_over_infeasible_over_failed() -> None:
    # Population == sample, so every tournament sees every member.
    strategy = aging()
    strategy.tell(fake(1, status="failed"))
    strategy.tell(fake(2, status="infeasible", latency_ms=5.5))
    strategy.tell(fake(3, status="ok", accuracy=0.1, latency_ms=4.9))
    strategy.tell(fake(4, status="infeasible", latency_ms=9.0))
    assert parents(strategy, 5) == {3}

    # Without a trained member, the infeasible one nearest the limits wins.
    strategy = aging()
    for candidate_id, latency in [(1, 9.0), (2, 5.5), (3, 6.0)]:
        strategy.tell(fake(candidate_id, status="infeasible", latency_ms=latency))
    strategy.tell(fake(4, status="failed"))
    assert parents(strategy, 5) == {2}

    # Failed members are parents only when nothing else was drawn.
    strategy = aging(population=2, sample=2)
    strategy.tell(fake(1, status="failed"))
    strategy.tell(fake(2, status="failed"))
    assert parents(strategy, 3) == {1, 2}


def test_tournament_picks_from_the_first_front_at_random() -> None:
    strategy = aging()
    strategy.tell(fake(1, accuracy=0.90, latency_ms=3.0))  # front
    strategy.tell(fake(2, accuracy=0.80, latency_ms=3.5))  # behind 1
    strategy.tell(fake(3, accuracy=0.95, latency_ms=4.5))  # front
    strategy.tell(fake(4, accuracy=0.90, latency_ms=3.0))  # front: ties with 1
    assert parents(strategy, 5) == {1, 3, 4}


def test_a_child_is_one_mutation_of_its_parent() -> None:
    strategy = aging()
    members = {i: fake(i, accuracy=0.1 * i, latency_ms=1.0) for i in range(1, 5)}
    for result in members.values():
        strategy.tell(result)
    proposal = strategy.ask(5)
    assert proposal.parent_id == 4  # the most accurate at equal latency
    assert proposal.mutation is not None
    assert proposal.mutation.split()[0] in ("hidden_state", "op")
    SPACE.validate(proposal.genotype)
    assert proposal.genotype.key() != members[4].genotype.key()


def test_tournament_samples_the_population_without_replacement() -> None:
    # With a sample of 1 each tournament is a single draw, so over many ids every member wins.
    strategy = aging(population=4, sample=1)
    for candidate_id in range(1, 5):
        strategy.tell(fake(candidate_id, status="failed"))
    assert parents(strategy, 5) == {1, 2, 3, 4}


def test_an_empty_population_falls_back_to_a_random_genotype() -> None:
    strategy = aging(population=2, sample=2)
    proposal = strategy.ask(3)
    assert proposal.parent_id is None
    assert proposal.genotype == SPACE.sample(random.Random("0/3"))


def run(strategy: Strategy, budget: int, limits: Limits = LIMITS) -> list[Result]:
    """Asynchronous workers in miniature: three candidates out at once, the one asked
    second-to-last completing first, so that completion order differs from id order.
    """
    pending: list[Result] = []
    history: list[Result] = []
    for candidate_id in range(1, budget + 1):
        pending.append(evaluate(candidate_id, strategy.ask(candidate_id), limits))
        if len(pending) == 3:
            done = pending.pop(-2)
            strategy.tell(done)
            history.append(done)
    return history


def test_same_seed_and_history_give_the_same_proposals() -> None:
    first = run(aging(population=8, sample=3, seed=5), budget=60)
    second = run(aging(population=8, sample=3, seed=5), budget=60)
    assert [r.genotype for r in first] == [r.genotype for r in second]
    assert [r.parent_id for r in first] == [r.parent_id for r in second]

    other = run(aging(population=8, sample=3, seed=6), budget=60)
    assert [r.genotype for r in first] != [r.genotype for r in other]


def test_a_rebuild_from_history_proposes_the_same_next_children() -> None:
    original = aging(population=8, sample=3, seed=11)
    history = run(original, budget=50)

    rebuilt = aging(population=8, sample=3, seed=11)
    for result in history:
        rebuilt.tell(result)

    assert rebuilt.population_members() == original.population_members()
    for candidate_id in range(51, 81):
        proposal = original.ask(candidate_id)
        assert rebuilt.ask(candidate_id) == proposal
        result = evaluate(candidate_id, proposal)
        original.tell(result)
        rebuilt.tell(result)


def test_aging_climbs_where_random_search_does_not() -> None:
    # One objective and no limits: the late candidates of aging evolution are nearly all
    # separable convs, those of random search half of them, as drawn.
    accuracy = Objectives.from_config({"accuracy": "max"})
    strategies = [
        AgingEvolution(SPACE, accuracy, population=20, sample=5, seed=3),
        RandomSearch(SPACE, seed=3),
    ]
    late = []
    for strategy in strategies:
        history = run(strategy, budget=200, limits=Limits())
        late.append(sum(r.accuracy or 0.0 for r in history[-50:]) / 50)
    assert late[0] > 0.8
    assert late[1] < 0.65


def test_random_search_is_seeded_and_shares_aging_s_first_genotypes() -> None:
    def genotypes(strategy: Strategy, ids: range) -> list[Genotype]:
        return [strategy.ask(i).genotype for i in ids]

    assert genotypes(RandomSearch(SPACE, seed=1), range(1, 20)) == genotypes(
        RandomSearch(SPACE, seed=1), range(1, 20)
    )
    assert genotypes(RandomSearch(SPACE, seed=1), range(1, 20)) != genotypes(
        RandomSearch(SPACE, seed=2), range(1, 20)
    )

    # The same seed starts both from the same random population; after it they part.
    strategy = aging(population=4, sample=2, seed=1)
    baseline = RandomSearch(SPACE, seed=1)
    assert genotypes(strategy, range(1, 5)) == genotypes(baseline, range(1, 5))
    for candidate_id in range(1, 5):
        strategy.tell(fake(candidate_id))
    assert genotypes(strategy, range(5, 10)) != genotypes(baseline, range(5, 10))
    baseline.tell(fake(5))
    assert baseline.ask(6).parent_id is None


@pytest.mark.parametrize(
    ("population", "sample", "message"),
    [
        (1, 1, r"^\[search\] population = 1: accepted: an integer of at least 2$"),
        (True, 1, r"^\[search\] population = True: accepted"),
        (10.0, 1, r"^\[search\] population = 10\.0: accepted"),
        (10, 0, r"^\[search\] sample = 0: accepted: an integer from 1 to population \(10\)$"),
        (10, 11, r"^\[search\] sample = 11: accepted: an integer from 1 to population \(10\)$"),
        (10, 2.5, r"^\[search\] sample = 2\.5: accepted"),
    ],
)
def test_aging_settings_errors(population: int, sample: int, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        AgingEvolution(SPACE, OBJECTIVES, population=population, sample=sample, seed=0)


def test_seed_must_be_an_integer() -> None:
    with pytest.raises(ConfigError, match=r"^\[search\] seed = '7': accepted: an integer$"):
        RandomSearch(SPACE, seed="7")  # type: ignore[arg-type]


def test_candidate_ids_start_at_1() -> None:
    with pytest.raises(ValueError, match=r"^candidate ids start at 1, got 0$"):
        RandomSearch(SPACE, seed=0).ask(0)


def test_a_trained_result_without_its_objectives_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^\[1\] has status 'ok' but no accuracy$"):
        aging().tell(fake(1, accuracy=None))


def test_create_strategy_by_name() -> None:
    kwargs = {"population": 10, "sample": 3, "seed": 0}
    assert list_strategies() == ["pareto", "aging", "random"]
    assert isinstance(
        create_strategy("pareto", SPACE, OBJECTIVES, LIMITS, **kwargs), ParetoAgingEvolution
    )
    strategy = create_strategy("aging", SPACE, OBJECTIVES, LIMITS, **kwargs)
    assert type(strategy) is AgingEvolution
    assert (strategy.population_size, strategy.sample_size, strategy.limits) == (10, 3, LIMITS)
    assert isinstance(create_strategy("random", SPACE, OBJECTIVES, LIMITS, **kwargs), RandomSearch)

    with pytest.raises(
        ConfigError,
        match=r"^\[search\] strategy = 'regularized' is not a strategy; "
        r"accepted: 'pareto', 'aging', 'random'$",
    ):
        create_strategy("regularized", SPACE, OBJECTIVES, LIMITS, **kwargs)


def test_importing_the_strategies_loads_no_torch_or_numpy() -> None:
    code = (
        "import sys, edgeevo.search, edgeevo.fitness; "
        "assert not {'torch', 'numpy'} & set(sys.modules), 'a heavy import was loaded'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def nb201_result(candidate_id: int, genotype, accuracy: float, latency_ms: float) -> Result:
    return Result(
        candidate_id=candidate_id,
        genotype=genotype,
        status="ok",
        seed=0,
        accuracy=accuracy,
        latency_ms=latency_ms,
    )


def test_pareto_tournament_prefers_the_search_front_then_the_larger_contribution() -> None:
    # Population 3, all drawn by a sample of 3. The search's front: A (0.9, 10 ms), B (0.8, 4 ms),
    # D (0.7, 3 ms), C (0.6, 2 ms); E (0.5, 9 ms) is dominated by B, D and C. Between its front
    # neighbours B alone covers (0.8 - 0.7) x (10 - 4) = 0.6 and D (0.7 - 0.6) x (4 - 3) = 0.1.
    space = Nb201Space()
    strategy = ParetoAgingEvolution(space, OBJECTIVES, population=3, sample=3, seed=0)
    rng = random.Random(5)
    cells = [space.sample(rng) for _ in range(5)]
    figures = [(0.9, 10.0), (0.6, 2.0), (0.5, 9.0), (0.8, 4.0), (0.7, 3.0)]
    for i, (cell, (accuracy, latency)) in enumerate(zip(cells, figures, strict=True), start=1):
        strategy.tell(nb201_result(i, cell, accuracy, latency))
    # Alive: E [3], B [4], D [5]; the extremes A and C died of age but stay on the front.
    assert strategy.population_members() == [3, 4, 5]
    for candidate_id in range(6, 30):
        assert strategy.ask(candidate_id).parent_id == 4


def test_pareto_never_proposes_a_genotype_a_completed_candidate_has() -> None:
    space = Nb201Space()
    strategy = ParetoAgingEvolution(space, OBJECTIVES, population=25, sample=25, seed=1)
    rng = random.Random(0)
    parent = space.sample(rng)
    strategy.tell(nb201_result(1, parent, 0.9, 5.0))
    # Every neighbour of the parent but one is seen already, as is the parent itself.
    neighbours = {space.mutate(parent, random.Random(k))[0] for k in range(2000)}
    assert len(neighbours) == 24
    unseen = sorted(neighbours, key=lambda g: g.key())[0]
    for i, cell in enumerate(sorted(neighbours - {unseen}, key=lambda g: g.key()), start=2):
        strategy.tell(nb201_result(i, cell, 0.1, 50.0))
    # The parent, alive and alone on the front, wins; 23 of its 24 children are seen.
    proposal = strategy.ask(40)
    assert proposal.genotype == unseen
    assert proposal.parent_id == 1
