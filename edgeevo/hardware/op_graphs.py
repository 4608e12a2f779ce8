"""Each op instance of the predictor as a tiny torch module, exported to ONNX on its own.

The modules are the very ones the network builds (:mod:`edgeevo.nets`), with the inputs they get
there: ``(1, c_in, size, size)`` float tensors, one per input (two for ``add``, ``k`` for
``concat``). They are exported in eval mode, as a candidate is, so batch norm folds into the
convolution before it.

A graph holds ``copies`` side-by-side copies of the op, each with inputs and an output of its
own (so that ONNX Runtime cannot merge them). The difference between the runs of a graph of
many copies and of one, divided by the extra copies, is what one op adds to a run: the fixed cost
of a run (the call, its inputs and outputs) cancels out.
"""

from __future__ import annotations

import torch
from torch import nn

from edgeevo.hardware.onnx_export import ONNX_OPSET, export_graph
from edgeevo.hardware.predictor import OpKey
from edgeevo.nets.network import STEM_MULTIPLIER
from edgeevo.nets.ops import FactorizedReduce, ReLUConvBN, create_op


class _Add(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


class _Concat(nn.Module):
    def forward(self, *states: torch.Tensor) -> torch.Tensor:
        return torch.cat(states, dim=1)


class _Head(nn.Sequential):
    """ReLU, global average pooling and the classifier, as the network ends."""

    def __init__(self, channels: int, classes: int) -> None:
        super().__init__(
            nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(channels, classes)
        )


def create_op_module(key: OpKey) -> tuple[nn.Module, int]:
    """The module for ``key`` and how many ``(1, c_in, size, size)`` inputs it takes."""
    if key.kind == "stem":
        if key.c_out % STEM_MULTIPLIER:
            raise ValueError(f"a stem has a multiple of {STEM_MULTIPLIER} channels: {key.label()}")
        # As edgeevo.nets.network.Network builds its stem.
        stem = nn.Sequential(
            nn.Conv2d(3, key.c_out, 3, padding=1, bias=False), nn.BatchNorm2d(key.c_out)
        )
        return stem, 1
    if key.kind == "preprocess":
        return ReLUConvBN(key.c_in, key.c_out), 1
    if key.kind == "reduce_input":
        return FactorizedReduce(key.c_in, key.c_out), 1
    if key.kind == "add":
        return _Add(), 2
    if key.kind == "concat":
        return _Concat(), key.c_out // key.c_in
    if key.kind == "head":
        return _Head(key.c_in, key.c_out), 1
    return create_op(key.kind, key.c_in, key.stride), 1


class _Copies(nn.Module):
    """Independent copies of an op: copy ``i`` reads inputs ``i * per_copy`` onwards."""

    def __init__(self, modules: list[nn.Module], per_copy: int) -> None:
        super().__init__()
        self.copies = nn.ModuleList(modules)
        self.per_copy = per_copy

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        n = self.per_copy
        return tuple(op(*inputs[i * n : (i + 1) * n]) for i, op in enumerate(self.copies))


def export_op(key: OpKey, copies: int = 1) -> bytes:
    """The ONNX graph of ``copies`` copies of one op instance at batch 1, with seeded weights."""
    torch.manual_seed(0)
    built = [create_op_module(key) for _ in range(copies)]
    per_copy = built[0][1]
    module = _Copies([op for op, _ in built], per_copy)
    images = tuple(torch.randn(1, key.c_in, key.size, key.size) for _ in range(copies * per_copy))
    return export_graph(module.eval(), images)


def export_empty(size: int = 1) -> bytes:
    """A one-node graph (Identity on ``(1, 1, size, size)``): what a run costs with no work."""
    import onnx
    from onnx import TensorProto, helper

    shape = [1, 1, size, size]
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "empty",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)])
    onnx.checker.check_model(model)
    return model.SerializeToString()
