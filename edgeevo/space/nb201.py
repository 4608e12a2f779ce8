"""The NAS-Bench-201 cell space (Dong and Yang, 2020).

A cell is a fixed DAG of 4 nodes: node 0 is the cell's input, node ``j`` sums one op applied to
each earlier node ``i < j``, and node 3 is the cell's output. That gives 6 edges, each carrying one
of 5 ops, so the space holds 5^6 = 15,625 cells. The network stacks one cell everywhere.

A genotype's JSON is NAS-Bench-201's own string form, so that the benchmark's ``arch_str`` values
are genotypes as they stand::

    |nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|

Three groups separated by ``+``, one per node 1..3, each listing its incoming edges as ``op~i``
for i = 0, 1, ... This module is plain data and the standard library only.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from edgeevo.errors import GenotypeError, OutOfSpaceError

# NAS-Bench-201's op set, in its own order.
OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")

NODES = 4
# The edges (source, target) in the order the string form lists them.
EDGES: tuple[tuple[int, int], ...] = tuple((i, j) for j in range(1, NODES) for i in range(j))


@dataclass(frozen=True)
class Nb201Genotype:
    """The op on each of the 6 edges, in :data:`EDGES` order."""

    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.ops) != len(EDGES):
            raise GenotypeError(f"an NB201 cell has {len(EDGES)} edges, got {len(self.ops)} ops")
        for op in self.ops:
            if op not in OPS:
                raise GenotypeError(f"unknown op {op!r}; known NB201 ops: {', '.join(OPS)}")

    def arch_str(self) -> str:
        """NAS-Bench-201's string form."""
        groups = []
        for node in range(1, NODES):
            edges = [f"{self.ops[e]}~{i}" for e, (i, j) in enumerate(EDGES) if j == node]
            groups.append("|" + "|".join(edges) + "|")
        return "+".join(groups)

    def to_json(self) -> str:
        """The JSON-ready document: the string form itself."""
        return self.arch_str()

    def dumps(self) -> str:
        return json.dumps(self.arch_str())

    @classmethod
    def from_json(cls, doc: Any) -> Nb201Genotype:
        """Parse the string form; GenotypeError naming the part that is wrong."""
        if not isinstance(doc, str):
            raise GenotypeError(
                f"NB201 genotype must be a string like '|op~0|+|op~0|op~1|+|op~0|op~1|op~2|', "
                f"got {type(doc).__name__}"
            )
        groups = doc.split("+")
        if len(groups) != NODES - 1:
            raise GenotypeError(
                f"NB201 genotype {doc!r} has {len(groups)} node groups separated by '+'; "
                f"expected {NODES - 1}"
            )
        ops: list[str] = []
        for node, group in enumerate(groups, start=1):
            if len(group) < 2 or group[0] != "|" or group[-1] != "|":
                raise GenotypeError(
                    f"node {node} of NB201 genotype {doc!r} is {group!r}; expected '|op~i|...|'"
                )
            edges = group[1:-1].split("|")
            if len(edges) != node:
                raise GenotypeError(
                    f"node {node} of NB201 genotype {doc!r} has {len(edges)} edges; "
                    f"expected {node}"
                )
            for i, edge in enumerate(edges):
                op, sep, source = edge.partition("~")
                if not sep or source != str(i):
                    raise GenotypeError(
                        f"edge {edge!r} into node {node} of NB201 genotype {doc!r}; "
                        f"expected 'op~{i}'"
                    )
                if op not in OPS:
                    raise GenotypeError(
                        f"unknown op {op!r} in NB201 genotype {doc!r}; known ops: {', '.join(OPS)}"
                    )
                ops.append(op)
        return cls(ops=tuple(ops))

    def key(self) -> str:
        """The string form: the DAG fixes where each edge goes, so each cell has one encoding."""
        return self.arch_str()

    def __str__(self) -> str:
        return self.arch_str()


@dataclass(frozen=True)
class EdgeMutation:
    """What one mutation changed: the op on one edge."""

    edge: int
    old: str
    new: str

    @property
    def kind(self) -> str:
        return "op"

    def __str__(self) -> str:
        source, target = EDGES[self.edge]
        return f"op edge {source}->{target}: {self.old} -> {self.new}"


@dataclass(frozen=True)
class Nb201Space:
    """The whole NAS-Bench-201 space: 6 edges, each one of the 5 ops."""

    ops: tuple[str, ...] = OPS

    def __post_init__(self) -> None:
        if self.ops != OPS:
            raise OutOfSpaceError(
                f"the NB201 space has the ops {', '.join(OPS)}; got {', '.join(self.ops)}"
            )

    def signature(self) -> str:
        return f"nb201/nodes={NODES}/ops={','.join(self.ops)}"

    def size(self) -> int:
        return len(self.ops) ** len(EDGES)

    def sample(self, rng: random.Random) -> Nb201Genotype:
        """A cell drawn uniformly: each edge's op independently."""
        return Nb201Genotype(ops=tuple(rng.choice(self.ops) for _ in EDGES))

    def validate(self, genotype: Any) -> None:
        if not isinstance(genotype, Nb201Genotype):
            raise OutOfSpaceError(
                f"genotype of type {type(genotype).__name__} is not an NB201 cell"
            )

    def mutate(
        self, parent: Nb201Genotype, rng: random.Random
    ) -> tuple[Nb201Genotype, EdgeMutation]:
        """Replace the op of one edge, drawn uniformly, by one of the 4 others."""
        edge = rng.randrange(len(EDGES))
        old = parent.ops[edge]
        new = rng.choice([op for op in self.ops if op != old])
        ops = list(parent.ops)
        ops[edge] = new
        return Nb201Genotype(ops=tuple(ops)), EdgeMutation(edge=edge, old=old, new=new)
