"""The stacked network for CIFAR-sized images, as in NASNet (Zoph et al., 2018).

Stem, then three stages of ``cells`` normal cells with a reduction cell between stages; ``filters``
channels per block at the first stage, doubling at each reduction (and the size halving). A ReLU,
global average pooling and a linear classifier give the logits.
"""

from __future__ import annotations

import torch
from torch import nn

from edgeevo.nets.cells import Cell
from edgeevo.space import AnyGenotype, Genotype, Nb201Genotype

# The stem's channels as a multiple of ``filters`` (NASNet's CIFAR stem; DARTS uses the same).
STEM_MULTIPLIER = 3


class Network(nn.Module):
    """Image classifier built from a genotype: input ``(B, 3, H, W)``, logits ``(B, classes)``.

    Any image size works (8 pixels and up make sense); an odd size is rounded up at each
    reduction. NASNet's auxiliary head and drop path are left out: they help long final
    training runs, not the few epochs of proxy training a search gives each candidate.
    """

    def __init__(self, genotype: Genotype, *, cells: int, filters: int, classes: int) -> None:
        super().__init__()
        for name, value in (("cells", cells), ("filters", filters), ("classes", classes)):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")

        stem_channels = STEM_MULTIPLIER * filters
        self.stem = nn.Sequential(
            nn.Conv2d(3, stem_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(stem_channels),
        )

        # Stages of normal cells, with a reduction cell (and twice the channels) between them.
        c_prev_prev, c_prev, channels = stem_channels, stem_channels, filters
        reduction_prev = False
        self.cells = nn.ModuleList()
        for stage in range(3):
            reductions = [False] * cells if stage == 0 else [True] + [False] * cells
            for reduction in reductions:
                if reduction:
                    channels *= 2
                cell = Cell(
                    genotype.reduce if reduction else genotype.normal,
                    c_prev_prev=c_prev_prev,
                    c_prev=c_prev,
                    channels=channels,
                    reduction=reduction,
                    reduction_prev=reduction_prev,
                )
                self.cells.append(cell)
                c_prev_prev, c_prev = c_prev, cell.out_channels
                reduction_prev = reduction

        # The last cell ends in batch norm or a pool, so the head starts with a ReLU (as NASNet's).
        self.relu = nn.ReLU()
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)  # (B, 3F, H, W)
        for cell in self.cells:
            # (B, k*F, H, W) in the first stage, (B, k*2F, H/2, W/2) and (B, k*4F, H/4, W/4)
            # after the reductions, where k is the number of the cell's output blocks.
            s0, s1 = s1, cell(s0, s1)

        x = self.global_pool(self.relu(s1)).flatten(1)  # (B, k*4F)
        return self.classifier(x)  # (B, classes)


def create_network(genotype: AnyGenotype, *, cells: int, filters: int, classes: int) -> nn.Module:
    """The classifier for ``genotype``: see :class:`Network`, or :class:`Nb201Network` for an
    NB201 cell.

    ``cells`` is the number of normal cells per stage (N), ``filters`` the channels per block at
    the first stage (F) and ``classes`` the number of logits.
    """
    if isinstance(genotype, Nb201Genotype):
        from edgeevo.nets.nb201 import Nb201Network

        return Nb201Network(genotype, cells=cells, filters=filters, classes=classes)
    return Network(genotype, cells=cells, filters=filters, classes=classes)
