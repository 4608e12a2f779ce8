"""Search spaces: genotypes as plain data, with sampling, mutation, validation and keys.

Nothing here imports torch; :mod:`edgeevo.nets` turns a genotype into a network.
"""

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

__all__ = ["CELLS", "OPS", "Block", "Cell", "Genotype", "Mutation", "NasnetSpace", "cell_outputs"]
