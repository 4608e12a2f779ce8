"""Multi-objective aging evolution whose tournament ranks members against the search's own front.

Still aging evolution: candidates 1..P are random, the population is the last P completed
candidates, the oldest dies whatever its fitness, and each parent wins a tournament among S
members drawn from the population. What changes, each measured on NAS-Bench-201
(``benchmarks/search_nb201.py``; README, "Search quality"):

1. A trained member ranks by how many members of the search's front (the nondominated trained
   candidates of the whole search, dead or alive) dominate it: a member on the search's front
   beats one that only looks good among S others. Members off the front, tied on that count,
   rank by their front rank within the sample, as in :mod:`aging`.
2. Ties among members on the front go to the one with the largest exclusive hypervolume
   contribution to that front (the volume only it dominates, up to the worst value seen in
   each objective); the member best in the first objective counts as infinite. The parent is
   drawn to the sparse parts of the front and to its leading end.
3. No genotype is evaluated twice: a child whose key a completed candidate has is replaced by
   another mutation of the parent, and when the parent's neighbourhood is spent, mutated a step
   further.
4. Infeasible members rank by their excess over the limits (as in :mod:`aging`), so while
   feasible parents are scarce the search walks back towards the limit.
"""

from __future__ import annotations

import dataclasses
import random

from edgeevo.fitness import Limits, Objectives, hypervolume, nondominated_sort
from edgeevo.result import FINAL_STATUSES, Proposal, Result
from edgeevo.search.aging import INFEASIBLE, TRAINED, AgingEvolution, Member
from edgeevo.space import SearchSpace

# Other mutations of the parent tried before a seen child is mutated a step further.
NEAR_RETRIES = 20
# Draws in all before a seen genotype is accepted: only a space nearly exhausted reaches it.
MAX_RETRIES = 200

Point = tuple[float, ...]  # objective values, each turned into one to minimise


class ParetoAgingEvolution(AgingEvolution):
    """Aging evolution with population size P, sample size S and a front-aware tournament.

    The population, its members' tiers and the aging are :class:`AgingEvolution`'s; what differs
    is the tournament, the search-wide front it ranks against, and the seen genotypes."""

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
        super().__init__(
            space, objectives, population=population, sample=sample, seed=seed, limits=limits
        )
        self._signs = tuple(-1.0 if d == "max" else 1.0 for d in objectives.directions)
        self._seen: set[str] = set()
        self._front: list[Point] = []
        self._worst: Point = ()  # the worst value of each objective among trained candidates
        self._contributions: dict[Point, float] | None = None  # of the front; None: stale

    def ask(self, candidate_id: int) -> Proposal:
        rng = self.rng(candidate_id)
        if candidate_id <= self.population_size or not self._population:
            genotype = self.space.sample(rng)
            for _ in range(MAX_RETRIES):
                if genotype.key() not in self._seen:
                    break
                genotype = self.space.sample(rng)
            return Proposal(genotype=genotype)

        parent = self._tournament(rng)
        child, mutation = self.space.mutate(parent.genotype, rng)
        steps = [str(mutation)]
        for attempt in range(MAX_RETRIES):
            if child.key() not in self._seen:
                break
            if attempt < NEAR_RETRIES:
                child, mutation = self.space.mutate(parent.genotype, rng)
                steps = [str(mutation)]
            else:
                child, mutation = self.space.mutate(child, rng)
                steps.append(str(mutation))
        return Proposal(genotype=child, parent_id=parent.candidate_id, mutation="; ".join(steps))

    def tell(self, result: Result) -> None:
        """Add a completed candidate to the population and the front; the oldest dies at P + 1."""
        if result.status not in FINAL_STATUSES:
            return
        self._seen.add(result.genotype.key())
        member = self._member(result)
        if member.tier == TRAINED:
            self._join_front(member.point)
        self._population.append(member)
        if len(self._population) > self.population_size:
            self._population.popleft()

    def _member(self, result: Result) -> Member:
        """As in :class:`AgingEvolution`, with each objective turned into one to minimise."""
        member = super()._member(result)
        if member.tier != TRAINED:
            return member
        point = tuple(s * v for s, v in zip(self._signs, member.point, strict=True))
        return dataclasses.replace(member, point=point)

    def _join_front(self, point: Point) -> None:
        self._worst = (
            tuple(max(a, b) for a, b in zip(self._worst, point, strict=True))
            if self._worst
            else point
        )
        if any(other == point or _dominates(other, point) for other in self._front):
            return
        self._front = [other for other in self._front if not _dominates(point, other)]
        self._front.append(point)
        self._contributions = None

    def _contribution(self, point: Point) -> float:
        """The volume of the front's hypervolume that only ``point`` dominates, up to the worst
        value seen in each objective; infinite for the point best in the first objective.

        The first objective leads: without its best member as a parent the front's leading
        end is lost when that member dies of age. Other extremes get their volume like any
        member: an extreme that is also the worst seen in another objective (a cell at chance
        accuracy that is the fastest of all, say) covers nothing worth a parent.
        """
        if self._contributions is None:
            front = self._front
            leader = min(p[0] for p in front)
            directions = ["min"] * len(self._worst)
            total = hypervolume(front, directions, self._worst)
            self._contributions = {
                p: (
                    float("inf")
                    if p[0] == leader
                    else total - hypervolume(front[:i] + front[i + 1 :], directions, self._worst)
                )
                for i, p in enumerate(front)
            }
        return self._contributions.get(point, 0.0)

    def _dominated_by(self, point: Point) -> int:
        """How many members of the search's front dominate ``point``."""
        return sum(1 for other in self._front if _dominates(other, point))

    def _tournament(self, rng: random.Random) -> Result:
        """The parent: the best of S members drawn without replacement (fewer while P fills)."""
        drawn = rng.sample(list(self._population), min(self.sample_size, len(self._population)))

        best_tier = min(member.tier for member in drawn)
        tied = [member for member in drawn if member.tier == best_tier]
        if best_tier == TRAINED:
            counts = [self._dominated_by(member.point) for member in tied]
            tied = [member for member, n in zip(tied, counts, strict=True) if n == min(counts)]
            if min(counts) == 0:
                shares = [self._contribution(member.point) for member in tied]
                tied = [member for member, s in zip(tied, shares, strict=True) if s == max(shares)]
            else:
                ranks = _ranks([member.point for member in tied])
                tied = [member for member, r in zip(tied, ranks, strict=True) if r == 0]
        elif best_tier == INFEASIBLE:
            least = min(member.excess for member in tied)
            tied = [member for member in tied if member.excess == least]

        return rng.choice(tied).result


def _dominates(a: Point, b: Point) -> bool:
    """Minimisation: ``a`` is nowhere worse than ``b`` and better somewhere."""
    return a != b and all(x <= y for x, y in zip(a, b, strict=True))


def _ranks(points: list[Point]) -> list[int]:
    """The front rank of each of ``points`` among themselves (minimisation)."""
    return nondominated_sort(points, ["min"] * len(points[0]))
