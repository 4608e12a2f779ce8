"""One cell of the network built from one cell of a genotype.

A cell reads the outputs of the two cells before it, ``h[i-2]`` and ``h[i-1]``, and brings each
that a block reads to ``channels`` channels (the *preprocessing*). Its blocks then each add two
ops' results; the cell's output concatenates the blocks no other block reads, so it has
``len(outputs) * channels`` channels, a number that depends on the genotype. In a reduction cell
the ops that read the two inputs have stride 2 and every block is half the input's size; ops
reading blocks have stride 1.
"""

from __future__ import annotations

import torch
from torch import nn

from edgeevo.nets.ops import FactorizedReduce, ReLUConvBN, create_op
from edgeevo.space import Block, cell_outputs


class Cell(nn.Module):
    """The torch module for a normal or reduction cell.

    ``c_prev_prev`` and ``c_prev`` are the channel counts of ``h[i-2]`` and ``h[i-1]``. When the
    previous cell was a reduction (``reduction_prev``), ``h[i-2]`` is twice the size of
    ``h[i-1]`` and its preprocessing halves it with a factorized reduction.
    """

    def __init__(
        self,
        blocks: tuple[Block, ...],
        *,
        c_prev_prev: int,
        c_prev: int,
        channels: int,
        reduction: bool,
        reduction_prev: bool,
    ) -> None:
        super().__init__()
        self.reduction = reduction
        self.inputs = [block.inputs for block in blocks]
        self.outputs = cell_outputs(blocks)
        self.out_channels = len(self.outputs) * channels

        # An input that no block reads gets no preprocessing: it would be weights that never act.
        read = {state for block in blocks for state in block.inputs}
        self.preprocess0: nn.Module | None = None
        self.preprocess1: nn.Module | None = None
        if 0 in read:
            self.preprocess0 = (
                FactorizedReduce(c_prev_prev, channels)
                if reduction_prev
                else ReLUConvBN(c_prev_prev, channels)
            )
        if 1 in read:
            self.preprocess1 = ReLUConvBN(c_prev, channels)

        # ops[2 * i + half] is the op of block i that reads blocks[i].inputs[half].
        self.ops = nn.ModuleList(
            create_op(op, channels, 2 if reduction and state < 2 else 1)
            for block in blocks
            for state, op in zip(block.inputs, block.ops, strict=True)
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        # Hidden states by the genotype's numbers: 0 and 1 (when read), then one per block.
        states: dict[int, torch.Tensor] = {}
        if self.preprocess0 is not None:
            states[0] = self.preprocess0(s0)  # (B, C, H, W)
        if self.preprocess1 is not None:
            states[1] = self.preprocess1(s1)  # (B, C, H, W)
        for i, (a, b) in enumerate(self.inputs):
            # (B, C, H, W), or (B, C, H/2, W/2) in a reduction cell
            states[2 + i] = self.ops[2 * i](states[a]) + self.ops[2 * i + 1](states[b])

        return torch.cat([states[2 + j] for j in self.outputs], dim=1)  # (B, len(outputs)*C, ...)
