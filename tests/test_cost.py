"""FLOPs and parameters: a count worked out by hand, every op counted, nothing hidden."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from edgeevo.hardware.cost import _int_list, _shape, count_cost
from edgeevo.nets import create_network
from edgeevo.space import OPS, Genotype

# One block per cell, so that the whole network can be counted by hand below.
HAND_GENOTYPE = Genotype.from_json(
    {
        "normal": [[0, "sep_conv_3x3", 1, "avg_pool_3x3"]],
        "reduce": [[0, "max_pool_3x3", 1, "identity"]],
    }
)


def test_hand_counted_network() -> None:
    # cells=1, filters=4, resolution 8, classes 10: stem (12 channels, 8x8), normal N0 (C=4,
    # 8x8), reduction R1 (C=8, 4x4), normal N1 (C=8, 4x4), reduction R2 (C=16, 2x2), normal N2
    # (C=16, 2x2). Every cell has one output block, so it puts out C channels.
    # Conventions: a convolution is c_out * (c_in / groups) * kh * kw multiply-adds per output
    # pixel; batch norm in eval mode is 2 per element; a pool kh * kw per output element; an
    # addition 1 per output element; ReLU 0; global pooling 1 per input element; linear
    # c_in * c_out.
    flops = {
        "stem": 12 * 3 * 3 * 3 * 8 * 8  # conv 3x3, 3 -> 12
        + 2 * 12 * 8 * 8,  # BN
        "N0": 4 * 12 * 8 * 8  # preprocess 0: conv 1x1, 12 -> 4
        + 2 * 4 * 8 * 8  # BN
        + 4 * 12 * 8 * 8  # preprocess 1: conv 1x1, 12 -> 4
        + 2 * 4 * 8 * 8  # BN
        + 2  # sep_conv_3x3 on state 0, twice:
        * (
            4 * 1 * 3 * 3 * 8 * 8  # depthwise 3x3
            + 4 * 4 * 8 * 8  # pointwise
            + 2 * 4 * 8 * 8  # BN
        )
        + 3 * 3 * 4 * 8 * 8  # avg_pool_3x3 on state 1
        + 4 * 8 * 8,  # add
        "R1": 8 * 12 * 8 * 8  # preprocess 0: conv 1x1, 12 -> 8 (stem, 8x8)
        + 2 * 8 * 8 * 8  # BN
        + 8 * 4 * 8 * 8  # preprocess 1: conv 1x1, 4 -> 8 (N0, 8x8)
        + 2 * 8 * 8 * 8  # BN
        + 3 * 3 * 8 * 4 * 4  # max_pool_3x3, stride 2, on state 0
        + 4 * 8 * 4 * 4  # identity, stride 2, on state 1: factorized reduce, conv a 8 -> 4
        + 4 * 8 * 4 * 4  # conv b 8 -> 4
        + 2 * 8 * 4 * 4  # BN
        + 8 * 4 * 4,  # add
        "N1": 4 * 4 * 4 * 4  # preprocess 0, factorized reduce of N0 (4 ch, 8x8): conv a 4 -> 4
        + 4 * 4 * 4 * 4  # conv b 4 -> 4
        + 2 * 8 * 4 * 4  # BN
        + 8 * 8 * 4 * 4  # preprocess 1: conv 1x1, 8 -> 8 (R1, 4x4)
        + 2 * 8 * 4 * 4  # BN
        + 2  # sep_conv_3x3 on state 0, twice:
        * (
            8 * 1 * 3 * 3 * 4 * 4  # depthwise 3x3
            + 8 * 8 * 4 * 4  # pointwise
            + 2 * 8 * 4 * 4  # BN
        )
        + 3 * 3 * 8 * 4 * 4  # avg_pool_3x3 on state 1
        + 8 * 4 * 4,  # add
        "R2": 16 * 8 * 4 * 4  # preprocess 0: conv 1x1, 8 -> 16 (R1, 4x4)
        + 2 * 16 * 4 * 4  # BN
        + 16 * 8 * 4 * 4  # preprocess 1: conv 1x1, 8 -> 16 (N1, 4x4)
        + 2 * 16 * 4 * 4  # BN
        + 3 * 3 * 16 * 2 * 2  # max_pool_3x3, stride 2
        + 8 * 16 * 2 * 2  # identity, stride 2: factorized reduce, conv a 16 -> 8
        + 8 * 16 * 2 * 2  # conv b 16 -> 8
        + 2 * 16 * 2 * 2  # BN
        + 16 * 2 * 2,  # add
        "N2": 8 * 8 * 2 * 2  # preprocess 0, factorized reduce of N1 (8 ch, 4x4): conv a 8 -> 8
        + 8 * 8 * 2 * 2  # conv b 8 -> 8
        + 2 * 16 * 2 * 2  # BN
        + 16 * 16 * 2 * 2  # preprocess 1: conv 1x1, 16 -> 16 (R2, 2x2)
        + 2 * 16 * 2 * 2  # BN
        + 2  # sep_conv_3x3 on state 0, twice:
        * (
            16 * 1 * 3 * 3 * 2 * 2  # depthwise 3x3
            + 16 * 16 * 2 * 2  # pointwise
            + 2 * 16 * 2 * 2  # BN
        )
        + 3 * 3 * 16 * 2 * 2  # avg_pool_3x3 on state 1
        + 16 * 2 * 2,  # add
        "head": 16 * 2 * 2  # global average pool
        + 16 * 10,  # linear
    }
    params = {
        "stem": 12 * 3 * 3 * 3 + 2 * 12,  # conv; BN scale and shift
        "N0": (4 * 12 + 2 * 4) * 2  # two preprocessing conv 1x1 + BN
        + 2 * (4 * 3 * 3 + 4 * 4 + 2 * 4),  # sep_conv_3x3: (depthwise + pointwise + BN) twice
        "R1": (8 * 12 + 2 * 8)  # preprocess 0
        + (8 * 4 + 2 * 8)  # preprocess 1
        + (4 * 8 + 4 * 8 + 2 * 8),  # factorized reduce: two convs 8 -> 4, BN
        "N1": (4 * 4 + 4 * 4 + 2 * 8)  # preprocess 0: factorized reduce 4 -> 8
        + (8 * 8 + 2 * 8)  # preprocess 1
        + 2 * (8 * 3 * 3 + 8 * 8 + 2 * 8),  # sep_conv_3x3
        "R2": (16 * 8 + 2 * 16) * 2  # two preprocessing conv 1x1 + BN
        + (8 * 16 + 8 * 16 + 2 * 16),  # factorized reduce: two convs 16 -> 8, BN
        "N2": (8 * 8 + 8 * 8 + 2 * 16)  # preprocess 0: factorized reduce 8 -> 16
        + (16 * 16 + 2 * 16)  # preprocess 1
        + 2 * (16 * 3 * 3 + 16 * 16 + 2 * 16),  # sep_conv_3x3
        "head": 16 * 10 + 10,  # linear weight and bias
    }

    model = create_network(HAND_GENOTYPE, cells=1, filters=4, classes=10)
    cost = count_cost(model, 8)

    assert sum(flops.values()) == 73_696
    assert sum(params.values()) == 3_342
    assert cost.flops == sum(flops.values())
    assert cost.params == sum(params.values())
    assert cost.uncounted_ops == {}


@pytest.mark.parametrize("op", OPS)
def test_every_op_is_counted(op: str) -> None:
    cell = [[0, op, 1, op], [2, op, 0, op], [1, op, 1, op]]
    model = create_network(
        Genotype.from_json({"normal": cell, "reduce": cell}), cells=1, filters=4, classes=10
    )
    cost = count_cost(model, 8)
    assert cost.uncounted_ops == {}
    assert cost.flops > 0


def test_pools_and_additions_count_per_output_element() -> None:
    model = nn.Sequential(
        nn.MaxPool2d(3, stride=2, padding=1),  # (1, 3, 4, 4) out: 9 per element
        nn.AvgPool2d((1, 3), stride=1, padding=(0, 1)),  # (1, 3, 4, 4) out: 3 per element
    )
    assert count_cost(model, 8).flops == 9 * 3 * 4 * 4 + 3 * 3 * 4 * 4


class _Residual(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x) + x


def test_relu_is_free_and_addition_is_not() -> None:
    assert count_cost(_Residual(), 8).flops == 3 * 8 * 8


class _Gated(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x) * 2


def test_ops_fvcore_cannot_count_come_back_and_are_not_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        cost = count_cost(_Gated(), 8)

    assert cost.uncounted_ops == {"aten::sigmoid": 1, "aten::mul": 1}
    assert cost.flops == 0
    assert not [r for r in caplog.records if r.name.startswith("fvcore")]


def test_model_keeps_its_mode() -> None:
    model = create_network(HAND_GENOTYPE, cells=1, filters=4, classes=10)
    model.train()
    count_cost(model, 8)
    assert model.training
    model.eval()
    count_cost(model, 8)
    assert not model.training


def test_count_is_in_eval_mode_and_leaves_running_statistics_alone() -> None:
    model = create_network(HAND_GENOTYPE, cells=1, filters=4, classes=10).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    count_cost(model, 8)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


class _WithSpareLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.used = nn.Conv2d(3, 2, 1, bias=False)
        self.spare = nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.used(x)


def test_weights_that_never_run_are_not_counted(caplog: pytest.LogCaptureFixture) -> None:
    # The spare layer's 2 * 2 + 2 weights never act: the network that runs has 2 * 3.
    with caplog.at_level(logging.DEBUG, logger="edgeevo"):
        cost = count_cost(_WithSpareLayer(), 4)

    assert cost.params == 2 * 3
    assert cost.flops == 2 * 3 * 4 * 4
    assert [r.getMessage() for r in caplog.records] == [
        "parameters of modules that never run are not counted: ['spare']"
    ]


class _FakeNode:
    def __init__(self, kind: str, inputs: list[object]) -> None:
        self._kind, self._inputs = kind, inputs

    def kind(self) -> str:
        return self._kind

    def inputs(self) -> list[object]:
        return self._inputs


class _FakeValue:
    """A traced value the trace did not resolve; method names as torch._C.Value has them."""

    def __init__(self, node: _FakeNode | None = None) -> None:
        self._node = node

    def isCompleteTensor(self) -> bool:
        return False

    def debugName(self) -> str:
        return "x.1"

    def toIValue(self) -> None:
        return None

    def node(self) -> _FakeNode | None:
        return self._node


def test_a_traced_value_without_shape_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"^traced value 'x.1' has no complete shape$"):
        _shape(_FakeValue())


def test_a_pool_window_that_is_not_constant_is_an_error() -> None:
    value = _FakeValue(_FakeNode("prim::ListConstruct", [_FakeValue(), _FakeValue()]))
    with pytest.raises(ValueError, match=r"^traced value 'x.1' is not a list of constant ints$"):
        _int_list(value)
