"""What a strategy, the store and the report need from a search space and its genotypes."""

from __future__ import annotations

import random
from typing import Any, Protocol


class SpaceGenotype(Protocol):
    """A genotype of any space: plain data with a canonical key and a JSON form."""

    def key(self) -> str:
        """Equal for every encoding of the same network."""
        ...

    def to_json(self) -> Any:
        """A JSON-ready document that the space's ``from_json`` reads back."""
        ...

    def dumps(self) -> str:
        """:meth:`to_json` as JSON text, as the state file stores it."""
        ...


class SearchSpace(Protocol):
    """The operations a strategy uses: sample, mutate, and the signature of the space."""

    def signature(self) -> str:
        """Identifies the space for state files and profiles made for it."""
        ...

    def sample(self, rng: random.Random) -> Any:
        """A genotype drawn at random."""
        ...

    def mutate(self, parent: Any, rng: random.Random) -> tuple[Any, Any]:
        """A child one mutation away, and the mutation (whose ``str`` is logged and stored)."""
        ...
