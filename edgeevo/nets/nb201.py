"""The NAS-Bench-201 network (Dong and Yang, 2020) built from one NB201 cell.

Stem (3x3 conv, batch norm), then three stages of ``cells`` copies of the cell at ``filters``,
2x and 4x ``filters`` channels, with a ResNet basic block of stride 2 between stages; batch norm,
ReLU, global average pooling and a linear classifier. NAS-Bench-201 trains N = 5 cells per stage
at 16 filters. Inside a cell every op keeps the size and the channels.
"""

from __future__ import annotations

import torch
from torch import nn

from edgeevo.space.nb201 import EDGES, NODES, Nb201Genotype


class ReLUConvBN(nn.Sequential):
    """ReLU, a k x k convolution without bias, batch norm (NB201's ``nor_conv_kxk``)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
        )


def create_nb201_op(name: str, channels: int) -> nn.Module:
    """The module of one NB201 op on ``channels`` channels; ``none`` is left out by the cell."""
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, 1, padding=1, count_include_pad=False)
    raise ValueError(f"op {name!r} has no module; NB201 builds skip, 1x1, 3x3 conv and pool")


class Nb201Cell(nn.Module):
    """Node j sums one op of every earlier node; node 3 is the output. A ``none`` edge adds
    nothing and gets no module; a node without any other edge is zero. An edge into a node that
    reaches the output by none but ``none`` edges is left out too: it could not change the
    output, and its weights would never train."""

    def __init__(self, genotype: Nb201Genotype, channels: int) -> None:
        super().__init__()
        live = {NODES - 1}
        for (source, target), op in reversed(list(zip(EDGES, genotype.ops, strict=True))):
            if op != "none" and target in live:
                live.add(source)
        kept = [
            (edge, op)
            for edge, op in zip(EDGES, genotype.ops, strict=True)
            if op != "none" and edge[1] in live
        ]
        self.edges = [edge for edge, _ in kept]
        self.ops = nn.ModuleList(create_nb201_op(op, channels) for _, op in kept)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]  # (B, C, H, W) each
        for target in range(1, NODES):
            terms = [
                op(nodes[source])
                for (source, to), op in zip(self.edges, self.ops, strict=True)
                if to == target
            ]
            # Added pairwise (aten::add), which the FLOPs count covers, rather than stacked.
            nodes.append(sum(terms[1:], terms[0]) if terms else torch.zeros_like(x))
        return nodes[-1]


class ResidualReduction(nn.Module):
    """NB201's ResNet basic block between stages: half the size, ``c_out`` channels."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C_in, H, W) -> (B, C_out, H/2, W/2)
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


class Nb201Network(nn.Module):
    """Image classifier from an NB201 cell: input ``(B, 3, H, W)``, logits ``(B, classes)``."""

    def __init__(self, genotype: Nb201Genotype, *, cells: int, filters: int, classes: int) -> None:
        super().__init__()
        for name, value in (("cells", cells), ("filters", filters), ("classes", classes)):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        self.stem = nn.Sequential(
            nn.Conv2d(3, filters, 3, padding=1, bias=False), nn.BatchNorm2d(filters)
        )
        layers: list[nn.Module] = []
        channels = filters
        for stage in range(3):
            if stage > 0:
                layers.append(ResidualReduction(channels, 2 * channels))
                channels *= 2
            layers.extend(Nb201Cell(genotype, channels) for _ in range(cells))
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.BatchNorm2d(channels), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        self.classifier = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)  # (B, F, H, W)
        x = self.body(x)  # (B, 4F, H/4, W/4)
        return self.classifier(self.head(x))  # (B, classes)
