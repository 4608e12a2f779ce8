"""FLOPs and parameters of a network, as fvcore counts them.

FLOPs follow fvcore's convention: one multiply-add counts as one FLOP, at batch 1. fvcore's own
handlers count convolutions and linear layers (multiply-adds, bias not counted), batch norm in
eval mode (two per element: scale and shift) and adaptive average pooling (one per input
element). It skips some ops that this search space uses; :data:`_EXTRA_HANDLES` counts them:

* ``aten::avg_pool2d`` and ``aten::max_pool2d``: ``kernel_h * kernel_w`` per output element (one
  add or compare per window element; border windows are counted whole, padding included);
* ``aten::add`` and ``aten::add_``: one per output element (the sum of a block's two ops).

ReLU is ignored on purpose: it is a compare, not a multiply-add. Padding, slicing and
concatenation move data and count zero, as fvcore has them.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cost:
    """What a network costs to run once on one image.

    ``flops`` is fvcore's count (one multiply-add is one FLOP) at batch 1; ``params`` the number
    of parameters. ``uncounted_ops`` maps each op that fvcore met but could not count to how
    often it met it; its cost is missing from ``flops``. Empty for every op of the NASNet space.
    """

    flops: int
    params: int
    uncounted_ops: dict[str, int] = field(default_factory=dict)


def count_cost(model: nn.Module, resolution: int) -> Cost:
    """Count FLOPs and parameters of ``model`` on one ``(1, 3, resolution, resolution)`` image.

    The model is traced in eval mode (so batch norm counts as at inference) and put back in the
    mode it was in.
    """
    flop_count_analysis = _import_fvcore()
    image = torch.zeros(1, 3, resolution, resolution)

    was_training = model.training
    model.eval()
    try:
        analysis = flop_count_analysis(model, (image,))
        analysis.set_op_handle(**_EXTRA_HANDLES)
        # Not warnings but part of the answer: unsupported ops come back in uncounted_ops, and
        # the uncalled modules that matter are logged below. Modules without ops (an identity)
        # look uncalled to fvcore, which is expected.
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        with torch.no_grad():
            flops = int(analysis.total())
        uncounted = dict(analysis.unsupported_ops())
        uncalled = sorted(analysis.uncalled_modules())
    finally:
        model.train(was_training)

    # A cell whose output no later cell reads never runs (the space allows it): its weights are
    # not part of the network that runs, nor of its ONNX export, so they are not counted.
    idle = {id(p) for name in uncalled for p in model.get_submodule(name).parameters()}
    if idle:
        logger.debug("parameters of modules that never run are not counted: %s", uncalled)
    params = sum(p.numel() for p in model.parameters() if id(p) not in idle)
    return Cost(flops=flops, params=params, uncounted_ops=uncounted)


def _import_fvcore() -> Any:
    # fvcore's import scripts functions with torch.jit.script, which this torch deprecates with
    # a FutureWarning per function; they say nothing about counting.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning
        )
        from fvcore.nn import FlopCountAnalysis

    return FlopCountAnalysis


def _shape(value: Any) -> list[int]:
    # A traced value (torch._C.Value) whose shape the trace recorded.
    if not value.isCompleteTensor():
        raise ValueError(f"traced value {value.debugName()!r} has no complete shape")
    return list(value.type().sizes())


def _int_list(value: Any) -> list[int]:
    # A traced list of constant ints: the trace builds it with prim::ListConstruct.
    node = value.node()
    items = list(node.inputs()) if node.kind() == "prim::ListConstruct" else [value]
    ints = [item.toIValue() for item in items]
    if not all(isinstance(i, int) for i in ints):
        raise ValueError(f"traced value {value.debugName()!r} is not a list of constant ints")
    return ints


def _pool_flops(inputs: list[Any], outputs: list[Any]) -> int:
    # aten::avg_pool2d / aten::max_pool2d (input, kernel_size, stride, padding, ...); a
    # one-element kernel_size means a square window.
    kernel = _int_list(inputs[1])
    return kernel[0] * kernel[-1] * math.prod(_shape(outputs[0]))


def _elementwise_flops(inputs: list[Any], outputs: list[Any]) -> int:
    return math.prod(_shape(outputs[0]))


_EXTRA_HANDLES: dict[str, Callable[[list[Any], list[Any]], int] | None] = {
    "aten::avg_pool2d": _pool_flops,
    "aten::max_pool2d": _pool_flops,
    "aten::add": _elementwise_flops,
    "aten::add_": _elementwise_flops,
    # Not multiply-adds; fvcore ignores them already, named here so that it stays so.
    "aten::relu": None,
    "aten::relu_": None,
    # Data movement (the factorized reduction's shift), like the constant_pad_nd fvcore ignores.
    "aten::pad": None,
}
