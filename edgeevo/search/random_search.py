"""Random search: every candidate an independent uniform draw from the space; the baseline."""

from __future__ import annotations

from edgeevo.result import Proposal, Result
from edgeevo.search.base import Strategy
from edgeevo.space import SearchSpace


class RandomSearch(Strategy):
    """Samples each genotype from the space, ignoring every result."""

    def __init__(self, space: SearchSpace, *, seed: int) -> None:
        super().__init__(seed=seed)
        self.space = space

    def ask(self, candidate_id: int) -> Proposal:
        return Proposal(genotype=self.space.sample(self.rng(candidate_id)))

    def tell(self, result: Result) -> None:
        """Random search learns nothing from results."""
