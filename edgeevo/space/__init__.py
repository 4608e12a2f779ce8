"""Search spaces: genotypes as plain data, with sampling, mutation, validation and keys.

Nothing here imports torch; :mod:`edgeevo.nets` turns a genotype into a network.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from edgeevo.errors import ConfigError, GenotypeError
from edgeevo.space.base import SearchSpace, SpaceGenotype
from edgeevo.space.nasnet import (
    CELLS,
    OPS,
    Block,
    Cell,
    Genotype,
    Mutation,
    NasnetSpace,
    cell_outputs,
)
from edgeevo.space.nb201 import Nb201Genotype, Nb201Space

if TYPE_CHECKING:
    from edgeevo.config import Config

__all__ = [
    "CELLS",
    "OPS",
    "AnyGenotype",
    "Block",
    "Cell",
    "Genotype",
    "Mutation",
    "NasnetSpace",
    "Nb201Genotype",
    "Nb201Space",
    "SearchSpace",
    "SpaceGenotype",
    "cell_outputs",
    "create_space",
    "genotype_from_json",
    "list_spaces",
]

# The values of ``[search] space``.
_SPACES = ("nasnet", "nb201")

AnyGenotype = Genotype | Nb201Genotype


def list_spaces() -> list[str]:
    return list(_SPACES)


def create_space(config: Config) -> NasnetSpace | Nb201Space:
    """The search space that ``[search] space`` names, with its ``[space]`` settings."""
    name = config.search.space
    if name == "nasnet":
        return NasnetSpace(blocks=config.space.blocks, ops=tuple(config.space.ops))
    if name == "nb201":
        # NB201's cell is fixed (4 nodes, 5 ops): the [space] keys shape NASNet cells only.
        from edgeevo.config import SpaceSection

        if config.space != SpaceSection():
            raise ConfigError(
                f"{config.source}: [space] blocks and ops shape NASNet cells; the nb201 space is "
                'fixed (6 edges, 5 ops): remove [space] or set [search] space = "nasnet"'
            )
        return Nb201Space()
    raise ConfigError(
        f"[search] space = {name!r} is not a space; accepted: {', '.join(map(repr, _SPACES))}"
    )


def genotype_from_json(doc: Any) -> AnyGenotype:
    """A genotype of any space from its JSON text or document: an object is a NASNet pair of
    cells, a string is an NB201 cell in NAS-Bench-201's string form."""
    if isinstance(doc, str):
        try:
            doc = json.loads(doc)
        except json.JSONDecodeError as exc:
            raise GenotypeError(f"genotype is not valid JSON: {exc}") from exc
    if isinstance(doc, str):
        return Nb201Genotype.from_json(doc)
    return Genotype.from_json(doc)
