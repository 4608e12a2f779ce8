"""The NASNet search space as searched by AmoebaNet (Zoph et al., 2018; Real et al., 2019).

A genotype is a pair of cells, *normal* and *reduction*. Each cell has B blocks. Block ``i`` reads
two hidden states, applies one op to each and adds the results. The hidden states a block may read
are numbered::

    0        output of the cell before the previous one (h[i-2])
    1        output of the previous cell (h[i-1])
    2 + j    output of block j of this cell, for j < i

The cell's output concatenates, along channels, every block that no other block of the cell reads.

This module is plain data and the standard library only: building the torch modules lives in
:mod:`edgeevo.nets`.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import random
from dataclasses import dataclass
from typing import Any, Literal

from edgeevo.errors import ConfigError, GenotypeError, OutOfSpaceError

# AmoebaNet's op set, in the order of the paper's figure.
OPS: tuple[str, ...] = (
    "identity",
    "avg_pool_3x3",
    "max_pool_3x3",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "sep_conv_7x7",
    "conv_1x7_7x1",
    "dil_sep_conv_3x3",
)

CellName = Literal["normal", "reduce"]
CELLS: tuple[CellName, CellName] = ("normal", "reduce")
MutationKind = Literal["hidden_state", "op"]


@dataclass(frozen=True)
class Block:
    """Two (input, op) pairs whose results are added."""

    inputs: tuple[int, int]
    ops: tuple[str, str]


Cell = tuple[Block, ...]


def cell_outputs(cell: Cell) -> list[int]:
    """Indices of the blocks whose outputs form the cell's output (those no block reads)."""
    read = {state - 2 for block in cell for state in block.inputs if state >= 2}
    return [i for i in range(len(cell)) if i not in read]


@dataclass(frozen=True)
class Genotype:
    """A normal and a reduction cell. Construct through :meth:`from_json` or a space's methods."""

    normal: Cell
    reduce: Cell

    def cell(self, name: CellName) -> Cell:
        return self.normal if name == "normal" else self.reduce

    def to_json(self) -> dict[str, Any]:
        """The genotype as a JSON-ready document: each block is ``[input, op, input, op]``."""
        return {
            "space": "nasnet",
            **{
                name: [[b.inputs[0], b.ops[0], b.inputs[1], b.ops[1]] for b in self.cell(name)]
                for name in CELLS
            },
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"))

    @classmethod
    def from_json(cls, doc: Any) -> Genotype:
        """Parse and check a document written by :meth:`to_json`; GenotypeError when malformed."""
        if isinstance(doc, str):
            try:
                doc = json.loads(doc)
            except json.JSONDecodeError as exc:
                raise GenotypeError(f"genotype is not valid JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise GenotypeError(
                "genotype must be a JSON object with keys 'normal' and 'reduce', "
                f"got {type(doc).__name__}"
            )
        unknown = sorted(set(doc) - {"space", *CELLS})
        if unknown:
            raise GenotypeError(
                f"unknown key {unknown[0]!r} in genotype; expected 'space', 'normal', 'reduce'"
            )
        space = doc.get("space", "nasnet")
        if space != "nasnet":
            raise GenotypeError(f"genotype space {space!r} is not 'nasnet'")
        cells = [_parse_cell(name, doc.get(name)) for name in CELLS]
        return cls(normal=cells[0], reduce=cells[1])

    def key(self) -> str:
        """Canonical key: equal for every encoding of the same network.

        Two encodings are the same network when one becomes the other by swapping the two
        halves of blocks (addition commutes) and by renumbering blocks in another order that
        still computes each block after the blocks it reads (the concatenation then lists the
        same tensors in another channel order, which the next cell's 1x1 convolution absorbs).
        """
        return f"normal={_canonical_cell(self.normal)}|reduce={_canonical_cell(self.reduce)}"

    def __str__(self) -> str:
        return self.key()


def _parse_cell(name: str, raw: Any) -> Cell:
    if not isinstance(raw, list) or not raw:
        raise GenotypeError(
            f"genotype cell {name!r} must be a non-empty list of blocks [input, op, input, op], "
            f"got {raw!r}"
        )
    blocks = []
    for i, item in enumerate(raw):
        where = f"{name} block {i}"
        if not isinstance(item, list) or len(item) != 4:
            raise GenotypeError(f"{where} must be [input, op, input, op], got {item!r}")
        inputs = (item[0], item[2])
        ops = (item[1], item[3])
        for state in inputs:
            if isinstance(state, bool) or not isinstance(state, int) or not 0 <= state < i + 2:
                raise GenotypeError(
                    f"{where} reads input {state!r}; a block at position {i} reads 0..{i + 1} "
                    "(0 and 1: the two previous cells, 2+j: block j)"
                )
        for op in ops:
            if op not in OPS:
                raise GenotypeError(f"unknown op {op!r} in {where}; known ops: {', '.join(OPS)}")
        blocks.append(Block(inputs=inputs, ops=ops))
    return tuple(blocks)


@functools.lru_cache(maxsize=65536)
def _canonical_cell(cell: Cell) -> str:
    """The smallest encoding of ``cell`` over the block orders that cannot be told apart.

    Each block gets a structural signature, computed bottom-up from its ops and the signatures of
    what it reads, that renumbering cannot change. Sorting by (depth, signature) is an order in
    which every block comes after the blocks it reads; only blocks with equal depth and signature
    (twins) can still be swapped, so only those permutations are tried. Twins are rare, so this
    is one encoding in the common case instead of one per dependency-respecting order.
    """
    depth: dict[int, int] = {0: 0, 1: 0}
    signature: dict[int, str] = {0: "h0", 1: "h1"}
    for i, block in enumerate(cell):
        state = 2 + i
        depth[state] = 1 + max(depth[s] for s in block.inputs)
        halves = sorted(
            f"{op}({signature[s]})" for s, op in zip(block.inputs, block.ops, strict=True)
        )
        digest = hashlib.blake2b("+".join(halves).encode(), digest_size=12).hexdigest()
        signature[state] = digest

    # Blocks grouped into runs of twins, the runs in (depth, signature) order.
    ranked = sorted(range(len(cell)), key=lambda b: (depth[2 + b], signature[2 + b]))
    groups = [
        list(group)
        for _, group in itertools.groupby(ranked, key=lambda b: (depth[2 + b], signature[2 + b]))
    ]
    best: tuple[tuple[tuple[int, str], ...], ...] | None = None
    for arrangement in itertools.product(*(itertools.permutations(g) for g in groups)):
        order = [b for group in arrangement for b in group]
        relabel = {0: 0, 1: 1, **{2 + block: 2 + i for i, block in enumerate(order)}}
        encoded = tuple(
            tuple(
                sorted((relabel[s], op) for s, op in zip(cell[b].inputs, cell[b].ops, strict=True))
            )
            for b in order
        )
        if best is None or encoded < best:
            best = encoded
    assert best is not None
    return ";".join("+".join(f"{op}~{s}" for s, op in block) for block in best)


@dataclass(frozen=True)
class Mutation:
    """What one mutation changed: which cell, block and half, from what to what."""

    kind: MutationKind
    cell: CellName
    block: int
    half: int
    old: int | str
    new: int | str

    def __str__(self) -> str:
        part = "input" if self.kind == "hidden_state" else "op"
        return f"{self.kind} {self.cell}[{self.block}].{part}{self.half}: {self.old} -> {self.new}"


@dataclass(frozen=True)
class NasnetSpace:
    """The configured space: B blocks per cell and the ops a block may use."""

    blocks: int = 5
    ops: tuple[str, ...] = OPS

    def __post_init__(self) -> None:
        if isinstance(self.blocks, bool) or not isinstance(self.blocks, int) or self.blocks < 1:
            raise ConfigError(f"blocks = {self.blocks!r}; expected a whole number of at least 1")
        if not isinstance(self.ops, tuple):
            raise ConfigError(f"ops = {self.ops!r}; expected a tuple of op names")
        unknown = [op for op in self.ops if op not in OPS]
        if unknown:
            raise ConfigError(f"unknown op {unknown[0]!r}; known ops: {', '.join(OPS)}")
        repeated = sorted({op for op in self.ops if self.ops.count(op) > 1})
        if repeated:
            raise ConfigError(f"ops lists {repeated[0]!r} more than once; list each op once")
        if len(self.ops) < 2:
            raise ConfigError(
                f"ops = {list(self.ops)}; expected at least 2 ops (an op mutation replaces one "
                "op by another)"
            )

    def signature(self) -> str:
        """Identifies the space for profiles and state files made for it."""
        return f"nasnet/blocks={self.blocks}/ops={','.join(self.ops)}"

    def sample(self, rng: random.Random) -> Genotype:
        """A genotype drawn uniformly: every input and op of every block independently."""

        def cell() -> Cell:
            return tuple(
                Block(
                    inputs=(rng.randrange(i + 2), rng.randrange(i + 2)),
                    ops=(rng.choice(self.ops), rng.choice(self.ops)),
                )
                for i in range(self.blocks)
            )

        return Genotype(normal=cell(), reduce=cell())

    def validate(self, genotype: Genotype) -> None:
        """GenotypeError when malformed, OutOfSpaceError when well formed but not in this space."""
        for name in CELLS:
            cell = genotype.cell(name)
            if len(cell) != self.blocks:
                raise OutOfSpaceError(
                    f"{name} cell has {len(cell)} blocks; this space has {self.blocks}"
                )
            for i, block in enumerate(cell):
                for state in block.inputs:
                    if isinstance(state, bool) or not isinstance(state, int):
                        raise GenotypeError(f"{name} block {i} reads input {state!r}")
                    if not 0 <= state < i + 2:
                        raise GenotypeError(
                            f"{name} block {i} reads input {state}; a block at position {i} "
                            f"reads 0..{i + 1} (0 and 1: the two previous cells, 2+j: block j)"
                        )
                for op in block.ops:
                    if op not in self.ops:
                        raise OutOfSpaceError(
                            f"op {op!r} in {name} block {i} is not in this space's ops: "
                            f"{', '.join(self.ops)}"
                        )

    def mutate(self, parent: Genotype, rng: random.Random) -> tuple[Genotype, Mutation]:
        """One hidden-state or op mutation, chosen with equal odds, that changes the network.

        A hidden-state mutation can rewire a block to a twin of the block it read, which leaves
        the network as it was; such a draw is discarded and another made. An op mutation always
        changes the multiset of ops, so the loop ends.
        """
        parent_key = parent.key()
        while True:
            child, mutation = self._mutate_once(parent, rng)
            if child.key() != parent_key:
                return child, mutation

    def _mutate_once(self, parent: Genotype, rng: random.Random) -> tuple[Genotype, Mutation]:
        name: CellName = rng.choice(CELLS)
        cell = list(parent.cell(name))
        i = rng.randrange(len(cell))
        half = rng.randrange(2)
        block = cell[i]
        kind: MutationKind = rng.choice(("hidden_state", "op"))
        old: int | str
        new: int | str
        if kind == "hidden_state":
            old = block.inputs[half]
            new = rng.choice([s for s in range(i + 2) if s != old])
            inputs = list(block.inputs)
            inputs[half] = new
            cell[i] = Block(inputs=(inputs[0], inputs[1]), ops=block.ops)
        else:
            old = block.ops[half]
            new = rng.choice([op for op in self.ops if op != old])
            ops = list(block.ops)
            ops[half] = new
            cell[i] = Block(inputs=block.inputs, ops=(ops[0], ops[1]))
        changed = tuple(cell)
        child = Genotype(
            normal=changed if name == "normal" else parent.normal,
            reduce=changed if name == "reduce" else parent.reduce,
        )
        return child, Mutation(kind=kind, cell=name, block=i, half=half, old=old, new=new)
