"""Aging evolution (regularized evolution; Real et al., 2019) with a multi-objective tournament.

The population is the last P completed candidates in completion order. Candidates 1..P are random
genotypes; every later one mutates the winner of a tournament among S members drawn from the
population without replacement. Each ``tell`` adds a completed candidate and, once there are more
than P, the oldest dies whatever its fitness: that aging is what regularises the search.

The paper's tournament picks the most accurate member. Here fitness has several objectives and
hard limits, so the winner is decided in this order:

1. feasibility: trained and within every limit, then infeasible (over a limit, never trained),
   then failed;
2. among trained members, Pareto rank within the sample (rank 0 wins);
3. among infeasible members, the smallest excess over the limits (:meth:`Limits.excess`);
4. uniformly at random among the members still tied.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from dataclasses import dataclass

from edgeevo.errors import ConfigError
from edgeevo.fitness import Limits, Objectives, nondominated_sort
from edgeevo.result import FINAL_STATUSES, Proposal, Result
from edgeevo.search.base import Strategy
from edgeevo.space import SearchSpace

logger = logging.getLogger(__name__)

# Feasibility tiers of a population member; a lower tier always wins the tournament.
TRAINED, INFEASIBLE, FAILED = 0, 1, 2


@dataclass(frozen=True)
class Member:
    """A completed candidate with what the tournament needs, worked out once when it joins."""

    result: Result
    tier: int
    point: tuple[float, ...] = ()  # the objectives' values; only for TRAINED
    excess: float = 0.0  # the relative excess over the limits; only for INFEASIBLE


class AgingEvolution(Strategy):
    """Aging evolution over a space with population size P and sample (tournament) size S."""

    def __init__(
        self,
        space: SearchSpace,
        objectives: Objectives,
        *,
        population: int,
        sample: int,
        seed: int,
        limits: Limits | None = None,
    ) -> None:
        super().__init__(seed=seed)
        check_sizes(population, sample)
        self.space = space
        self.objectives = objectives
        self.limits = limits if limits is not None else Limits()
        self.population_size = population
        self.sample_size = sample
        self._population: deque[Member] = deque()

    def population_members(self) -> list[int]:
        """The candidate ids alive in the population, oldest first."""
        return [member.result.candidate_id for member in self._population]

    def ask(self, candidate_id: int) -> Proposal:
        rng = self.rng(candidate_id)
        if candidate_id <= self.population_size:
            return Proposal(genotype=self.space.sample(rng))

        # With asynchronous workers a tournament can fall due before any candidate completed.
        if not self._population:
            logger.warning(
                "[%d] no completed candidate to mutate yet; proposing a random genotype",
                candidate_id,
            )
            return Proposal(genotype=self.space.sample(rng))

        parent = self._tournament(rng)
        child, mutation = self.space.mutate(parent.genotype, rng)
        return Proposal(genotype=child, parent_id=parent.candidate_id, mutation=str(mutation))

    def tell(self, result: Result) -> None:
        """Add a completed candidate to the population; the oldest dies once there are P + 1."""
        if result.status not in FINAL_STATUSES:
            return
        self._population.append(self._member(result))
        if len(self._population) > self.population_size:
            self._population.popleft()

    def _member(self, result: Result) -> Member:
        if result.status == "failed":
            return Member(result=result, tier=FAILED)
        if result.status == "ok" and result.feasible:
            return Member(result=result, tier=TRAINED, point=self.objectives.values(result))
        excess = self.limits.excess(result.latency_ms, result.flops, result.params)
        return Member(result=result, tier=INFEASIBLE, excess=excess)

    def _tournament(self, rng: random.Random) -> Result:
        """The parent: the best of S members drawn without replacement (fewer while P fills)."""
        drawn = rng.sample(list(self._population), min(self.sample_size, len(self._population)))

        best_tier = min(member.tier for member in drawn)
        tied = [member for member in drawn if member.tier == best_tier]
        if best_tier == TRAINED:
            points = [member.point for member in tied]
            ranks = nondominated_sort(points, self.objectives.directions)
            tied = [member for member, rank in zip(tied, ranks, strict=True) if rank == 0]
        elif best_tier == INFEASIBLE:
            least = min(member.excess for member in tied)
            tied = [member for member in tied if member.excess == least]

        return rng.choice(tied).result


def check_sizes(population: int, sample: int) -> None:
    """ConfigError unless 2 <= population and 1 <= sample <= population."""
    if not _is_int(population) or population < 2:
        raise ConfigError(
            f"[search] population = {population!r}: accepted: an integer of at least 2"
        )
    if not _is_int(sample) or not 1 <= sample <= population:
        raise ConfigError(
            f"[search] sample = {sample!r}: accepted: an integer from 1 to "
            f"population ({population})"
        )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
