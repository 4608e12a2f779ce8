"""Torch networks built from genotypes: the ops, the cells and the stacked network.

Nothing here knows about search or storage; a genotype goes in, an ``nn.Module`` comes out.
"""

from edgeevo.nets.cells import Cell
from edgeevo.nets.network import Network, create_network
from edgeevo.nets.ops import create_op, list_ops, register_op

__all__ = ["Cell", "Network", "create_network", "create_op", "list_ops", "register_op"]
