"""The NAS-Bench-201 space: string form, mutation, and its network trained for a step."""

from __future__ import annotations

import itertools
import random

import pytest

from edgeevo.errors import GenotypeError
from edgeevo.space import Nb201Genotype, Nb201Space, genotype_from_json
from edgeevo.space.nb201 import EDGES, OPS

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"


def test_string_form_round_trips_for_every_op_on_every_edge() -> None:
    for edge, op in itertools.product(range(len(EDGES)), OPS):
        ops = ["skip_connect"] * len(EDGES)
        ops[edge] = op
        genotype = Nb201Genotype(ops=tuple(ops))
        text = genotype.arch_str()
        assert Nb201Genotype.from_json(text) == genotype
        assert genotype_from_json(genotype.dumps()) == genotype
        assert text.count(op) >= 1


def test_string_form_names_each_edge_by_its_source() -> None:
    genotype = Nb201Genotype.from_json(ARCH)
    assert genotype.ops == (
        "nor_conv_3x3",
        "nor_conv_3x3",
        "avg_pool_3x3",
        "skip_connect",
        "nor_conv_3x3",
        "none",
    )
    assert genotype.arch_str() == ARCH == genotype.key() == genotype.to_json()
    assert genotype.dumps() == f'"{ARCH}"'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("|none~0|+|none~0|none~1|", "has 2 node groups separated by '+'; expected 3"),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 of NB201 genotype"),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|none~3|", "expected 'op~2'"),
        ("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown op 'conv'"),
        ("none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "expected '|op~i|...|'"),
    ],
)
def test_malformed_string_forms_name_the_part(text: str, message: str) -> None:
    with pytest.raises(
        GenotypeError, match="^.*" + message.replace("|", r"\|").replace("+", r"\+")
    ):
        Nb201Genotype.from_json(text)


def test_a_json_object_is_a_nasnet_genotype_and_a_number_is_neither() -> None:
    with pytest.raises(GenotypeError, match="must be a JSON object"):
        genotype_from_json("3")


def test_mutation_changes_one_edge_to_another_op() -> None:
    space = Nb201Space()
    rng = random.Random(0)
    parent = space.sample(rng)
    for _ in range(1000):
        child, mutation = space.mutate(parent, rng)
        changed = [i for i in range(len(EDGES)) if child.ops[i] != parent.ops[i]]
        assert changed == [mutation.edge]
        assert (parent.ops[mutation.edge], child.ops[mutation.edge]) == (
            mutation.old,
            mutation.new,
        )
        assert str(mutation).startswith("op edge ")
        parent = child
    assert space.size() == 15625
    assert space.signature() == "nb201/nodes=4/ops=" + ",".join(OPS)


def test_network_trains_a_step_counts_and_exports() -> None:
    import torch

    from edgeevo.hardware.cost import count_cost
    from edgeevo.hardware.onnx_export import export_onnx
    from edgeevo.nets import create_network

    torch.manual_seed(0)
    model = create_network(Nb201Genotype.from_json(ARCH), cells=1, filters=4, classes=10)
    images, labels = torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    loss = torch.nn.functional.cross_entropy(model(images), labels)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))

    # Node 2 reaches the output only by a 'none' edge: the edges into it (0->2, a 3x3 conv, and
    # 1->2, a pool) are left out with the 'none' edge, so 3 of the 6 edges have modules.
    cell = model.body[0]
    assert cell.edges == [(0, 1), (0, 3), (1, 3)]
    cost = count_cost(model.eval(), 16)
    # Weights of the 3x3 convs (no bias) and batch norms (2 per channel), by hand. Stem: 3*4*9 +
    # 8 = 116. Cells at C channels: two 3x3 convs, 2 * (9C^2 + 2C): 304, 1184, 4672 at C = 4, 8,
    # 16. ResNet blocks C -> 2C: 9 * C * 2C + 4C, 9 * (2C)^2 + 4C, 1x1 shortcut 2C^2: 928 and
    # 3648. Head: batch norm 32, classifier 16 * 10 + 10 = 170.
    assert cost.params == 116 + 304 + 928 + 1184 + 3648 + 4672 + 32 + 170 == 11054
    assert cost.flops > 0
    assert dict(cost.uncounted_ops) == {}
    assert len(export_onnx(model, 16)) > 0
