"""Search spaces: genotypes as plain data, with sampling, mutation, validation and keys.

Nothing here imports torch; :mod:`edgeevo.nets` turns a genotype into a network.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from edgeevo.config import Config

__all__ = [
    "CELLS",
    "OPS",
    "Block",
    "Cell",
    "Genotype",
    "Mutation",
    "NasnetSpace",
    "cell_outputs",
    "create_space",
]


def create_space(config: Config) -> NasnetSpace:
    """The search space that ``[search] space`` names, with its ``[space]`` settings."""
    return NasnetSpace(blocks=config.space.blocks, ops=tuple(config.space.ops))
