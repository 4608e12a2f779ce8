"""The ops a block applies to a hidden state, and a registry from op name to module factory.

Every factory takes ``(channels, stride)`` and returns a module that keeps the channel count and
divides height and width by ``stride`` (rounding up): for an input ``(B, C, H, W)`` the output is
``(B, C, ceil(H / stride), ceil(W / stride))``. Stride 2 is used inside a reduction cell by the ops
that read the two previous cells; every other op has stride 1.

Op bodies follow NASNet (Zoph et al., 2018) as reimplemented by DARTS (Liu et al., 2019): a conv
op starts with ReLU and ends with batch norm, convolutions carry no bias, pools have no norm.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from edgeevo.errors import GenotypeError

OpFactory = Callable[[int, int], nn.Module]

_REGISTRY: dict[str, OpFactory] = {}


def register_op(name: str) -> Callable[[OpFactory], OpFactory]:
    """Register ``factory(channels, stride)`` under ``name``, the op's name in the genotype."""

    def register(factory: OpFactory) -> OpFactory:
        if name in _REGISTRY:
            raise ValueError(f"op {name!r} is already registered")
        _REGISTRY[name] = factory
        return factory

    return register


def list_ops() -> list[str]:
    """The names of the registered ops, in registration order."""
    return list(_REGISTRY)


def create_op(name: str, channels: int, stride: int) -> nn.Module:
    """The module for op ``name`` on ``channels`` channels with ``stride`` 1 or 2."""
    if name not in _REGISTRY:
        raise GenotypeError(f"unknown op {name!r}; known ops: {', '.join(_REGISTRY)}")
    if stride not in (1, 2):
        raise ValueError(f"op stride must be 1 or 2, got {stride}")
    return _REGISTRY[name](channels, stride)


class ReLUConvBN(nn.Sequential):
    """ReLU, a 1x1 convolution from ``c_in`` to ``c_out`` channels, batch norm.

    A cell uses it to bring each of its two inputs to the cell's channel count.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )


class FactorizedReduce(nn.Module):
    """Halve height and width without dropping pixels: two 1x1 convolutions of stride 2.

    The second convolution reads the input shifted by one pixel right and down, so that together
    the two see every pixel; their outputs are concatenated along channels. The shifted input is
    padded back to full size on the bottom and right so that both halves agree for odd sizes too.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.relu = nn.ReLU()
        self.conv_a = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_b = nn.Conv2d(c_in, c_out - c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)  # (B, C_in, H, W)
        shifted = F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))  # (B, C_in, H, W), moved by one pixel
        x = torch.cat([self.conv_a(x), self.conv_b(shifted)], dim=1)  # (B, C_out, H/2, W/2)
        return self.bn(x)


class SepConv(nn.Sequential):
    """NASNet's separable convolution: ReLU, depthwise k x k, pointwise 1x1, batch norm, twice.

    Only the first depthwise convolution carries the stride.
    """

    def __init__(self, channels: int, kernel: int, stride: int) -> None:
        pad = kernel // 2
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(channels, channels, kernel, stride, pad, groups=channels, bias=False),
            nn.Conv2d(channels, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, kernel, 1, pad, groups=channels, bias=False),
            nn.Conv2d(channels, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
        )


class DilSepConv(nn.Sequential):
    """ReLU, depthwise 3x3 with dilation 2 (a 5x5 field), pointwise 1x1, batch norm; once."""

    def __init__(self, channels: int, stride: int) -> None:
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(
                channels, channels, 3, stride, padding=2, dilation=2, groups=channels, bias=False
            ),
            nn.Conv2d(channels, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
        )


class Conv1x7Then7x1(nn.Sequential):
    """ReLU, a 1x7 then a 7x1 full convolution, batch norm.

    The stride is split across the two: the 1x7 convolution strides along the width, the 7x1
    along the height.
    """

    def __init__(self, channels: int, stride: int) -> None:
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(channels, channels, (1, 7), (1, stride), (0, 3), bias=False),
            nn.Conv2d(channels, channels, (7, 1), (stride, 1), (3, 0), bias=False),
            nn.BatchNorm2d(channels),
        )


@register_op("identity")
def _identity(channels: int, stride: int) -> nn.Module:
    # A strided identity must still halve the size: NASNet uses a factorized reduction there.
    return nn.Identity() if stride == 1 else FactorizedReduce(channels, channels)


@register_op("avg_pool_3x3")
def _avg_pool_3x3(channels: int, stride: int) -> nn.Module:
    # Padding is left out of the average, so border pixels are not pulled towards zero.
    return nn.AvgPool2d(3, stride, padding=1, count_include_pad=False)


@register_op("max_pool_3x3")
def _max_pool_3x3(channels: int, stride: int) -> nn.Module:
    return nn.MaxPool2d(3, stride, padding=1)


@register_op("sep_conv_3x3")
def _sep_conv_3x3(channels: int, stride: int) -> nn.Module:
    return SepConv(channels, 3, stride)


@register_op("sep_conv_5x5")
def _sep_conv_5x5(channels: int, stride: int) -> nn.Module:
    return SepConv(channels, 5, stride)


@register_op("sep_conv_7x7")
def _sep_conv_7x7(channels: int, stride: int) -> nn.Module:
    return SepConv(channels, 7, stride)


@register_op("conv_1x7_7x1")
def _conv_1x7_7x1(channels: int, stride: int) -> nn.Module:
    return Conv1x7Then7x1(channels, stride)


@register_op("dil_sep_conv_3x3")
def _dil_sep_conv_3x3(channels: int, stride: int) -> nn.Module:
    return DilSepConv(channels, stride)
