"""The interface every search strategy keeps: ``ask`` for a child, ``tell`` its result.

A strategy does no I/O and keeps nothing that cannot be rebuilt: the daemon makes a new strategy
after a restart and replays ``tell`` for every completed candidate in completion order. For that
replay to lead to the same proposals, a strategy draws the randomness of each ``ask`` from a
generator seeded by its own seed and the candidate id, never from the module-level ``random``.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod

from edgeevo.errors import ConfigError
from edgeevo.result import Proposal, Result


class Strategy(ABC):
    """Proposes genotypes one candidate at a time and learns from their results."""

    def __init__(self, *, seed: int) -> None:
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ConfigError(f"[search] seed = {seed!r}: accepted: an integer")
        self.seed = seed

    def rng(self, candidate_id: int) -> random.Random:
        """The generator for one candidate: the same (seed, id) always gives the same draws.

        The seed does not name the strategy, so two strategies with the same seed start from the
        same random genotypes, which makes their runs a controlled comparison.
        """
        if candidate_id < 1:
            raise ValueError(f"candidate ids start at 1, got {candidate_id}")
        # A str seed goes through SHA-512, not hash(), so the draws are the same in every
        # process and after every restart.
        return random.Random(f"{self.seed}/{candidate_id}")

    @abstractmethod
    def ask(self, candidate_id: int) -> Proposal:
        """The genotype to evaluate as candidate ``candidate_id``."""

    @abstractmethod
    def tell(self, result: Result) -> None:
        """Learn the result of a candidate; results arrive in completion order."""
