"""The NASNet space: mutation, JSON, canonical keys, and every malformed or out-of-space input."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from typing import Any

import pytest

from edgeevo.errors import ConfigError, GenotypeError, OutOfSpaceError
from edgeevo.space import OPS, Block, Genotype, NasnetSpace, cell_outputs

# A reduction cell shared by the hand-written genotypes below, so that only the normal cell varies.
REDUCE = [
    [0, "max_pool_3x3", 1, "sep_conv_3x3"],
    [1, "identity", 2, "avg_pool_3x3"],
    [0, "sep_conv_5x5", 3, "sep_conv_7x7"],
    [4, "conv_1x7_7x1", 1, "dil_sep_conv_3x3"],
    [2, "sep_conv_3x3", 5, "identity"],
]

# Blocks 0 and 1 are independent; block 2 reads both (as 2 and 3).
NORMAL = [
    [0, "sep_conv_3x3", 1, "sep_conv_5x5"],
    [1, "avg_pool_3x3", 1, "identity"],
    [2, "sep_conv_3x3", 3, "max_pool_3x3"],
    [0, "dil_sep_conv_3x3", 4, "identity"],
    [4, "conv_1x7_7x1", 5, "sep_conv_3x3"],
]


def genotype(normal: list[list[Any]], reduce: list[list[Any]] = REDUCE) -> Genotype:
    return Genotype.from_json({"normal": normal, "reduce": reduce})


def test_chained_mutations_validate_round_trip_and_change_the_network() -> None:
    space = NasnetSpace()
    rng = random.Random(0)
    parent = space.sample(rng)
    kinds = set()
    for _ in range(10_000):
        child, mutation = space.mutate(parent, rng)
        space.validate(child)
        assert Genotype.from_json(child.dumps()) == child
        assert child.key() != parent.key()

        # The mutation record names the one place that changed.
        kinds.add(mutation.kind)
        field = "inputs" if mutation.kind == "hidden_state" else "ops"
        before = getattr(parent.cell(mutation.cell)[mutation.block], field)[mutation.half]
        after = getattr(child.cell(mutation.cell)[mutation.block], field)[mutation.half]
        assert (before, after) == (mutation.old, mutation.new)
        parent = child
    assert kinds == {"hidden_state", "op"}


def test_mutations_stay_in_a_restricted_space() -> None:
    space = NasnetSpace(blocks=3, ops=("identity", "sep_conv_3x3"))
    rng = random.Random(1)
    parent = space.sample(rng)
    for _ in range(500):
        parent, _ = space.mutate(parent, rng)
        space.validate(parent)


def test_json_document_shape() -> None:
    g = genotype(NORMAL)
    doc = json.loads(g.dumps())
    assert doc == {"space": "nasnet", "normal": NORMAL, "reduce": REDUCE}
    assert Genotype.from_json(doc) == g
    assert cell_outputs(g.normal) == [4]


def test_key_merges_swapped_halves_of_a_block() -> None:
    swapped = [list(block) for block in NORMAL]
    swapped[0] = [1, "sep_conv_5x5", 0, "sep_conv_3x3"]
    a, b = genotype(NORMAL), genotype(swapped)
    assert a != b
    assert a.key() == b.key()


def test_key_merges_independent_blocks_listed_in_the_other_order() -> None:
    # Blocks 0 and 1 trade places, so block 2 reads them as 3 and 2.
    reordered = [
        [1, "avg_pool_3x3", 1, "identity"],
        [0, "sep_conv_3x3", 1, "sep_conv_5x5"],
        [3, "sep_conv_3x3", 2, "max_pool_3x3"],
        *NORMAL[3:],
    ]
    a, b = genotype(NORMAL), genotype(reordered)
    assert a != b
    assert a.key() == b.key()


def test_key_tells_different_networks_apart() -> None:
    # Block 2 reads the same two blocks but applies its ops to the other one of each.
    rewired = [list(block) for block in NORMAL]
    rewired[2] = [3, "sep_conv_3x3", 2, "max_pool_3x3"]
    assert genotype(NORMAL).key() != genotype(rewired).key()

    # The same cells as normal and reduction swapped.
    assert genotype(NORMAL).key() != genotype(REDUCE, NORMAL).key()


def _block0(item: Any) -> dict[str, Any]:
    return {"normal": [item, *NORMAL[1:]], "reduce": REDUCE}


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([NORMAL, REDUCE], r"must be a JSON object with keys 'normal' and 'reduce', got list"),
        ("[1, 2", r"genotype is not valid JSON"),
        ({"space": "nb201", "normal": NORMAL}, r"genotype space 'nb201' is not 'nasnet'"),
        ({"normal": NORMAL}, r"genotype cell 'reduce' must be a non-empty list .*got None"),
        ({"normal": [], "reduce": REDUCE}, r"genotype cell 'normal' must be .*got \[\]"),
        (_block0([0, "identity", 1]), r"normal block 0 must be \[input, op, input, op\], got "),
        (_block0("0,identity"), r"normal block 0 must be .*got '0,identity'"),
        (
            _block0([0, "identity", 2, "identity"]),
            r"normal block 0 reads input 2; .* reads 0\.\.1",
        ),
        (_block0([-1, "identity", 1, "identity"]), r"normal block 0 reads input -1;"),
        (_block0([True, "identity", 1, "identity"]), r"normal block 0 reads input True;"),
        (_block0([0.0, "identity", 1, "identity"]), r"normal block 0 reads input 0\.0;"),
        (
            _block0([0, "identity", 1, "conv_9x9"]),
            r"unknown op 'conv_9x9' in normal block 0; known ops: " + ", ".join(OPS),
        ),
    ],
)
def test_malformed_documents(doc: Any, message: str) -> None:
    with pytest.raises(GenotypeError, match=message):
        Genotype.from_json(doc)


def test_wrong_block_count_is_out_of_space() -> None:
    four_blocks = genotype(NORMAL[:4], REDUCE[:4])
    with pytest.raises(OutOfSpaceError, match=r"^normal cell has 4 blocks; this space has 5$"):
        NasnetSpace().validate(four_blocks)


def test_op_outside_a_restricted_set_is_out_of_space() -> None:
    space = NasnetSpace(ops=("identity", "sep_conv_3x3", "sep_conv_5x5"))
    with pytest.raises(
        OutOfSpaceError,
        match=r"^op 'avg_pool_3x3' in normal block 1 is not in this space's ops: "
        r"identity, sep_conv_3x3, sep_conv_5x5$",
    ):
        space.validate(genotype(NORMAL))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"blocks": 0}, ConfigError, r"^blocks = 0; expected a whole number of at least 1$"),
        ({"blocks": True}, ConfigError, r"^blocks = True; expected a whole number"),
        ({"blocks": 2.5}, ConfigError, r"^blocks = 2.5; expected a whole number"),
        ({"ops": ["identity", "avg_pool_3x3"]}, ConfigError, r"expected a tuple of op names"),
        ({"ops": ("identity", "nope")}, ConfigError, r"unknown op 'nope'; known ops: identity"),
        ({"ops": ("identity",)}, ConfigError, r"^ops = \['identity'\]; expected at least 2 ops"),
        (
            {"ops": ("identity", "identity", "sep_conv_3x3")},
            ConfigError,
            r"ops lists 'identity' more than once",
        ),
    ],
)
def test_space_settings_errors(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        NasnetSpace(**kwargs)


def test_importing_the_space_loads_no_torch() -> None:
    code = "import sys, edgeevo.space; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_validate_checks_wiring_of_genotypes_built_in_code() -> None:
    space = NasnetSpace(blocks=2)
    bad = Genotype(
        normal=(Block((0, 1), ("identity", "identity")), Block((0, 4), ("identity", "identity"))),
        reduce=(Block((0, 1), ("identity", "identity")), Block((0, 2), ("identity", "identity"))),
    )
    with pytest.raises(
        GenotypeError, match=r"^normal block 1 reads input 4; a block at position 1"
    ):
        space.validate(bad)


def test_unknown_document_key_is_refused() -> None:
    doc = genotype(NORMAL).to_json()
    doc["normals"] = doc["normal"]
    with pytest.raises(GenotypeError, match=r"unknown key 'normals' in genotype"):
        Genotype.from_json(doc)


def test_key_of_large_cells_merges_any_listing_order() -> None:
    # Every block reads only the previous cells, so all 10! listing orders are the same network
    # (trying each order would take minutes; the key groups twins instead).
    ops = list(OPS)
    cell = tuple(Block((i % 2, 1 - i % 2), (ops[i % 8], ops[(i + 3) % 8])) for i in range(10))
    shuffled = list(cell)
    random.Random(0).shuffle(shuffled)
    assert Genotype(cell, cell).key() == Genotype(tuple(shuffled), tuple(reversed(cell))).key()
