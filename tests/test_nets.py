"""Networks from genotypes: every op in every cell position, exact shapes, and no idle weights."""

from __future__ import annotations

import math
import random

import pytest
import torch
from torch import nn

from edgeevo.errors import GenotypeError
from edgeevo.nets import Cell, create_network, create_op, list_ops, register_op
from edgeevo.nets.ops import FactorizedReduce, ReLUConvBN
from edgeevo.space import OPS, Genotype, NasnetSpace, cell_outputs


def uniform_genotype(op: str) -> Genotype:
    """``op`` everywhere: on state 0, state 1 and a block, in both cells; blocks 1 and 2 out."""
    cell = [[0, op, 1, op], [2, op, 0, op], [1, op, 1, op]]
    return Genotype.from_json({"normal": cell, "reduce": cell})


def cell_shapes(model: nn.Module, image: torch.Tensor) -> list[tuple[int, ...]]:
    """The output shape of every cell of ``model`` on ``image``, in order."""
    shapes: list[tuple[int, ...]] = []
    hooks = [
        cell.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape)))
        for cell in model.cells
    ]
    try:
        model(image)
    finally:
        for hook in hooks:
            hook.remove()
    return shapes


def test_registry_holds_exactly_the_ops_of_the_space() -> None:
    assert list_ops() == list(OPS)


def test_unknown_op_lists_the_known_ones() -> None:
    with pytest.raises(GenotypeError, match=r"unknown op 'conv_9x9'; known ops: identity, avg_"):
        create_op("conv_9x9", 4, 1)


def test_op_stride_must_be_one_or_two() -> None:
    with pytest.raises(ValueError, match="op stride must be 1 or 2, got 3"):
        create_op("identity", 4, 3)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [8, 7])
def test_op_keeps_channels_and_divides_size_by_stride(op: str, stride: int, size: int) -> None:
    module = create_op(op, 4, stride)
    out = module(torch.randn(2, 4, size, size + 1))
    expected = (2, 4, math.ceil(size / stride), math.ceil((size + 1) / stride))
    assert tuple(out.shape) == expected


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize(
    ("resolution", "sizes"),
    [(8, (8, 4, 2)), (9, (9, 5, 3))],  # the odd size exercises the factorized reduction's pad
)
def test_op_in_every_cell_position(op: str, resolution: int, sizes: tuple[int, int, int]) -> None:
    # cells=1: normal, reduction, normal after a reduction (state 0 factorized-reduced),
    # reduction, normal after a reduction. Two output blocks per cell, so 2*C channels.
    model = create_network(uniform_genotype(op), cells=1, filters=4, classes=10).eval()
    image = torch.randn(2, 3, resolution, resolution)
    big, mid, small = sizes

    assert cell_shapes(model, image) == [
        (2, 8, big, big),  # normal, C=4
        (2, 16, mid, mid),  # reduction, C=8
        (2, 16, mid, mid),  # normal, C=8
        (2, 32, small, small),  # reduction, C=16
        (2, 32, small, small),  # normal, C=16
    ]
    assert tuple(model(image).shape) == (2, 10)
    preprocess = [type(cell.preprocess0) for cell in model.cells]
    assert preprocess == [ReLUConvBN, ReLUConvBN, FactorizedReduce, ReLUConvBN, FactorizedReduce]


@pytest.mark.parametrize("op", OPS)
def test_reduction_cell_strides_only_ops_that_read_the_two_inputs(op: str) -> None:
    cell = Cell(
        uniform_genotype(op).reduce,
        c_prev_prev=6,
        c_prev=6,
        channels=4,
        reduction=True,
        reduction_prev=False,
    )
    # Ops in block order, each with the state it reads: (0, 1), (2, 0), (1, 1).
    reads = [0, 1, 2, 0, 1, 1]
    for module, state in zip(cell.ops, reads, strict=True):
        out = module(torch.randn(1, 4, 8, 8))
        assert out.shape[-1] == (4 if state < 2 else 8), (op, state)


@pytest.mark.parametrize(
    ("cells", "filters", "resolution", "classes"),
    [(1, 4, 8, 10), (2, 6, 16, 3), (1, 5, 11, 100), (3, 2, 12, 2)],
)
def test_random_genotypes_give_exact_shapes(
    cells: int, filters: int, resolution: int, classes: int
) -> None:
    genotype = NasnetSpace().sample(random.Random(f"{cells}-{filters}-{resolution}"))
    model = create_network(genotype, cells=cells, filters=filters, classes=classes).eval()

    k_normal = len(cell_outputs(genotype.normal))
    k_reduce = len(cell_outputs(genotype.reduce))
    expected = []
    size, channels = resolution, filters
    for stage in range(3):
        if stage:
            size, channels = math.ceil(size / 2), channels * 2
            expected.append((1, k_reduce * channels, size, size))
        expected += [(1, k_normal * channels, size, size)] * cells

    image = torch.randn(1, 3, resolution, resolution)
    assert cell_shapes(model, image) == expected
    assert tuple(model(image).shape) == (1, classes)


def test_batch_of_several_images() -> None:
    model = create_network(uniform_genotype("sep_conv_3x3"), cells=1, filters=4, classes=7)
    assert tuple(model(torch.randn(5, 3, 16, 16)).shape) == (5, 7)


def test_unread_input_gets_no_preprocessing() -> None:
    # Neither cell reads state 0.
    cell = [[1, "sep_conv_3x3", 1, "identity"], [2, "max_pool_3x3", 1, "avg_pool_3x3"]]
    genotype = Genotype.from_json({"normal": cell, "reduce": cell})
    model = create_network(genotype, cells=1, filters=4, classes=10)

    assert all(cell.preprocess0 is None for cell in model.cells)
    assert all(isinstance(cell.preprocess1, ReLUConvBN) for cell in model.cells)
    assert tuple(model(torch.randn(1, 3, 8, 8)).shape) == (1, 10)


@pytest.mark.parametrize("seed", range(3))
def test_every_parameter_takes_part(seed: int) -> None:
    # A weight without a gradient would be counted in params yet never act.
    genotype = NasnetSpace().sample(random.Random(seed))
    model = create_network(genotype, cells=1, filters=4, classes=10)
    model(torch.randn(2, 3, 8, 8)).sum().backward()

    idle = [name for name, p in model.named_parameters() if p.grad is None]
    assert idle == []


@pytest.mark.parametrize(
    ("setting", "value"), [("cells", 0), ("filters", 0), ("classes", 0), ("filters", -3)]
)
def test_stack_sizes_must_be_positive(setting: str, value: int) -> None:
    sizes = {"cells": 1, "filters": 4, "classes": 10, setting: value}
    with pytest.raises(ValueError, match=f"^{setting} must be at least 1, got {value}$"):
        create_network(uniform_genotype("identity"), **sizes)


def test_an_op_name_registers_once() -> None:
    with pytest.raises(ValueError, match=r"^op 'identity' is already registered$"):
        register_op("identity")(lambda channels, stride: nn.Identity())
    assert list_ops() == list(OPS)
