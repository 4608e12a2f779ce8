"""Search strategies behind one ask/tell interface, created by name from the config."""

from __future__ import annotations

from edgeevo.errors import ConfigError
from edgeevo.fitness import Limits, Objectives
from edgeevo.search.aging import AgingEvolution
from edgeevo.search.base import Strategy
from edgeevo.search.pareto_aging import ParetoAgingEvolution
from edgeevo.search.random_search import RandomSearch
from edgeevo.space import SearchSpace

__all__ = [
    "AgingEvolution",
    "ParetoAgingEvolution",
    "RandomSearch",
    "Strategy",
    "create_strategy",
    "list_strategies",
]


# The values of ``[search] strategy``.
_STRATEGIES = ("pareto", "aging", "random")


def list_strategies() -> list[str]:
    """The names ``create_strategy`` accepts."""
    return list(_STRATEGIES)


def create_strategy(
    name: str,
    space: SearchSpace,
    objectives: Objectives,
    limits: Limits,
    *,
    population: int,
    sample: int,
    seed: int,
) -> Strategy:
    """The strategy the config names; ConfigError listing the known names when unknown."""
    if name == "pareto":
        return ParetoAgingEvolution(
            space, objectives, population=population, sample=sample, seed=seed, limits=limits
        )
    if name == "aging":
        return AgingEvolution(
            space, objectives, population=population, sample=sample, seed=seed, limits=limits
        )
    if name == "random":
        # Random search needs neither fitness nor a population; it takes the same arguments so
        # that every strategy is created the same way.
        return RandomSearch(space, seed=seed)
    raise ConfigError(
        f"[search] strategy = {name!r} is not a strategy; "
        f"accepted: {', '.join(map(repr, _STRATEGIES))}"
    )
