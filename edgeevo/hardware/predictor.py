"""Predict a network's ONNX Runtime latency on a target PC from per-op timings made there.

A network of the NASNet space is a fixed set of *op instances*: the stem, each live cell's
preprocessing of its inputs, the ops of its blocks, the blocks' additions, the concatenation of
its outputs, and the classifier head. Each instance is named by an :class:`OpKey` (what it is,
its channels, its input size and stride), and every key the configured space and network can
produce is timed on the target in tiny ONNX graphs of its own (``edgeevo profile-device``): the
time one instance adds to a run, in ms.

A sum of such timings misses what a whole graph adds or saves (its fixed cost per run, the
memory traffic between ops, caches that a tiny graph keeps warm), so the predictor corrects the
sum with a few coefficients fitted on calibration networks timed end to end:

    latency_ms = intercept_ms + per_op_ms * n + sum over kinds g of scale[g] * op_ms[g]

where ``n`` is the number of op instances and ``op_ms[g]`` the summed timings of the instances
of kind ``g``. The coefficients are fitted by least squares on relative error, shrunk towards the
plain sum (scale 1) so that a kind seen in few calibration networks keeps its timing. Simpler
models (the plain sum; one scale and an intercept) are fitted too, and the one with the lowest
cross-validated error is kept.

This module imports no torch: predicting is arithmetic on a genotype and a table.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeevo.space import Block, Cell, Genotype, cell_outputs

# The stem's channels as a multiple of the filters, as edgeevo.nets.network builds it (imported
# from there would pull in torch).
STEM_MULTIPLIER = 3

MODELS: tuple[str, ...] = ("sum", "scaled", "per_kind")


@dataclass(frozen=True, order=True)
class OpKey:
    """One op instance's shape: ``kind`` on a ``(1, c_in, size, size)`` input with ``stride``.

    ``kind`` is an op of the space or one of the network's own parts: ``stem``, ``preprocess``
    (ReLU, 1x1 convolution, batch norm), ``reduce_input`` (the factorized reduction of h[i-2]
    after a reduction cell), ``add`` (a block's sum), ``concat`` (a cell's output) and ``head``
    (ReLU, global average pooling, the linear classifier).

    ``c_out`` is the output's channels: the same as ``c_in`` for the space's ops and ``add``;
    for ``concat`` it is ``k * c_in`` for ``k`` inputs of ``c_in`` channels each; for ``head`` it
    is the number of classes.
    """

    kind: str
    c_in: int
    c_out: int
    size: int
    stride: int = 1

    def label(self) -> str:
        return f"{self.kind}/{self.c_in}->{self.c_out}/{self.size}px/s{self.stride}"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "c_in": self.c_in,
            "c_out": self.c_out,
            "size": self.size,
            "stride": self.stride,
        }


@dataclass(frozen=True)
class NetworkShape:
    """The stack the cells go into: ``[network]`` of the config, without torch."""

    cells: int
    filters: int
    resolution: int
    classes: int


@dataclass(frozen=True)
class _CellView:
    """What the network walk needs of one cell: its blocks' ops and inputs and what it reads."""

    blocks: Cell
    outputs: int
    reads: frozenset[int]


def _view(cell: Cell) -> _CellView:
    reads = frozenset(state for block in cell for state in block.inputs if state < 2)
    return _CellView(cell, len(cell_outputs(cell)), reads)


def _half(size: int) -> int:
    # A stride-2 op rounds up (padding 1 on a 3x3 window, or a 1x1 convolution of stride 2).
    return (size + 1) // 2


def _walk(
    normal: _CellView, reduce: _CellView, shape: NetworkShape
) -> Iterator[tuple[OpKey, int]]:
    """Every op instance of the network, with the cell it belongs to (-1: stem and head).

    Mirrors edgeevo.nets.network.Network and edgeevo.nets.cells.Cell; a test compares the two.
    """
    stem = STEM_MULTIPLIER * shape.filters
    yield OpKey("stem", 3, stem, shape.resolution), -1

    c_pp, c_p, channels = stem, stem, shape.filters
    size_pp = size_p = shape.resolution
    reduction_prev = False
    index = 0
    for stage in range(3):
        for reduction in [False] * shape.cells if stage == 0 else [True] + [False] * shape.cells:
            view = reduce if reduction else normal
            if reduction:
                channels *= 2
            # Both inputs of a cell have the size of h[i-1] once preprocessed.
            if 0 in view.reads:
                if reduction_prev:
                    yield OpKey("reduce_input", c_pp, channels, size_pp, 2), index
                else:
                    yield OpKey("preprocess", c_pp, channels, size_pp), index
            if 1 in view.reads:
                yield OpKey("preprocess", c_p, channels, size_p), index
            out_size = _half(size_p) if reduction else size_p
            for op, reads_input, stride in _cell_nodes(view, reduction):
                in_size = size_p if reads_input else out_size
                yield OpKey(op, channels, channels, in_size, stride), index
            yield OpKey("concat", channels, view.outputs * channels, out_size), index

            c_pp, c_p = c_p, view.outputs * channels
            size_pp, size_p = size_p, out_size
            reduction_prev = reduction
            index += 1

    yield OpKey("head", c_p, shape.classes, size_p), -1


# Ops without weights: the exporter merges two such nodes that read the same tensor into one.
_WEIGHTLESS = frozenset({"avg_pool_3x3", "max_pool_3x3"})


def _cell_nodes(view: _CellView, reduction: bool) -> list[tuple[str, bool, int]]:
    """``(op, reads a cell input, stride)`` of each node a cell leaves in the exported graph,
    ``op`` being ``add`` for a block's sum.

    A stride-1 identity is no node. The exporter merges nodes that compute the same thing from
    the same tensors: one pool applied twice to one state, and then sums of equal terms.
    """
    values: dict[int, Hashable] = {0: "h0", 1: "h1"}
    made: set[Hashable] = set()
    nodes = []
    for i, block in enumerate(view.blocks):
        terms = []
        for half, (state, op) in enumerate(zip(block.inputs, block.ops, strict=True)):
            stride = 2 if reduction and state < 2 else 1
            if op == "identity" and stride == 1:
                terms.append(values[state])
                continue
            value = (op, stride, values[state]) if op in _WEIGHTLESS else (op, i, half)
            if value not in made:
                made.add(value)
                nodes.append((op, state < 2, stride))
            terms.append(value)
        value = ("add", *terms)
        if value not in made:
            made.add(value)
            nodes.append(("add", False, 1))
        values[2 + i] = value
    return nodes


def _cell_kinds(shape: NetworkShape) -> list[bool]:
    """For each cell of the network in order, whether it is a reduction cell."""
    return [False] * shape.cells + ([True] + [False] * shape.cells) * 2


def _live_cells(normal: _CellView, reduce: _CellView, shape: NetworkShape) -> list[bool]:
    # A cell whose output no later live cell reads is dropped from the exported graph: the head
    # reads the last cell, cell i+1 reads cell i as its input 1 and cell i+2 as its input 0.
    kinds = _cell_kinds(shape)
    reads = [(reduce if r else normal).reads for r in kinds]
    live = [False] * len(kinds)
    live[-1] = True
    for i in range(len(kinds) - 2, -1, -1):
        by_next = live[i + 1] and 1 in reads[i + 1]
        by_second = i + 2 < len(kinds) and live[i + 2] and 0 in reads[i + 2]
        live[i] = by_next or by_second
    return live


def network_ops(genotype: Genotype, shape: NetworkShape) -> Counter[OpKey]:
    """How often each op instance occurs in the exported graph of ``genotype`` at ``shape``."""
    normal, reduce = _view(genotype.normal), _view(genotype.reduce)
    live = _live_cells(normal, reduce, shape)
    return Counter(key for key, cell in _walk(normal, reduce, shape) if cell < 0 or live[cell])


def space_op_keys(blocks: int, ops: Sequence[str], shape: NetworkShape) -> list[OpKey]:
    """Every op instance that any genotype of the space can put in its network, sorted.

    Normal cells share one genotype cell and so one output count ``k`` (1 to ``blocks``), as
    do reduction cells; the preprocessing and concatenation shapes follow from the pair. Every op
    can sit in every position where a stand-in cell with the same inputs has one.
    """
    keys: set[OpKey] = set()
    for k_normal in range(1, blocks + 1):
        for k_reduce in range(1, blocks + 1):
            normal, reduce = _stand_in(blocks, k_normal), _stand_in(blocks, k_reduce)
            for key, _ in _walk(normal, reduce, shape):
                if key.kind != _ANY_OP:
                    keys.add(key)
                    continue
                for op in ops:
                    # A stride-1 identity is no node of the graph.
                    if op != "identity" or key.stride == 2:
                        keys.add(OpKey(op, key.c_in, key.c_out, key.size, key.stride))
    return sorted(keys)


# The op of a stand-in cell's blocks: a placeholder for each op of the space.
_ANY_OP = "*"


def _stand_in(blocks: int, outputs: int) -> _CellView:
    """A cell with ``outputs`` output blocks that reads both cell inputs.

    Block 0 reads inputs 0 and 1 (stride 2 in a reduction cell); to leave ``outputs`` blocks
    unread, each of the first ``blocks - outputs`` blocks is read by the next one, whose op then
    reads a block (stride 1).
    """
    cell = tuple(
        Block(
            inputs=(0, 1) if i == 0 or i > blocks - outputs else (0, 2 + i - 1),
            ops=(_ANY_OP, _ANY_OP),
        )
        for i in range(blocks)
    )
    return _view(cell)


def space_signature(space: str, blocks: int, ops: Sequence[str], shape: NetworkShape) -> str:
    """A short hash of everything that decides the op instances a profile must time.

    The order of the ops does not change the shapes, so they are sorted.
    """
    doc = {
        "space": space,
        "blocks": blocks,
        "ops": sorted(ops),
        "cells": shape.cells,
        "filters": shape.filters,
        "resolution": shape.resolution,
        "classes": shape.classes,
    }
    digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
    return digest[:16]


@dataclass(frozen=True)
class LatencyPredictor:
    """A fitted latency model: see the module's docstring for its formula.

    ``timings`` maps each op instance to the time in ms it adds to a run. ``model`` names which
    of :data:`MODELS` the coefficients belong to: for ``sum`` every scale is 1, ``per_op_ms`` is 0
    and ``intercept_ms`` is the median run of an empty graph; for ``scaled`` one scale serves
    every kind.
    """

    model: str
    timings: dict[OpKey, float]
    intercept_ms: float
    per_op_ms: float
    scales: dict[str, float] = field(default_factory=dict)

    def features(self, ops: Counter[OpKey]) -> tuple[int, dict[str, float]]:
        """The instance count and the summed timings per kind of one network's ops."""
        missing = [key for key in ops if key not in self.timings]
        if missing:
            raise KeyError(f"no timing for op {missing[0].label()} in the profile")
        net: dict[str, float] = {}
        for key, count in ops.items():
            net[key.kind] = net.get(key.kind, 0.0) + count * self.timings[key]
        return sum(ops.values()), net

    def predict_ops(self, ops: Counter[OpKey]) -> float:
        """Predicted latency in ms of a network made of ``ops``."""
        count, net = self.features(ops)
        return (
            self.intercept_ms
            + self.per_op_ms * count
            + sum(self.scales.get(kind, 1.0) * value for kind, value in net.items())
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "intercept_ms": self.intercept_ms,
            "per_op_ms": self.per_op_ms,
            "scales": dict(sorted(self.scales.items())),
        }


@dataclass(frozen=True)
class PredictionError:
    """How far predictions fell from measured latencies on ``networks`` networks, in percent.

    ``mape`` is the mean absolute percentage error; ``within_5`` and ``within_10`` the share of
    networks predicted within 5% and 10% of their measured median; ``worst`` the largest error.
    """

    networks: int
    mape: float
    within_5: float
    within_10: float
    worst: float

    @classmethod
    def of(cls, predicted: Sequence[float], measured: Sequence[float]) -> PredictionError:
        if not measured or len(predicted) != len(measured):
            raise ValueError("need as many predictions as measurements, and at least one")
        errors = 100 * np.abs(np.asarray(predicted) - measured) / np.asarray(measured)
        return cls(
            networks=len(measured),
            mape=float(errors.mean()),
            within_5=float(100 * np.mean(errors <= 5)),
            within_10=float(100 * np.mean(errors <= 10)),
            worst=float(errors.max()),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "networks": self.networks,
            "mape": self.mape,
            "within_5": self.within_5,
            "within_10": self.within_10,
            "worst": self.worst,
        }

    def __str__(self) -> str:
        return (
            f"MAPE {self.mape:.2f}%, {self.within_5:.1f}% within ±5%, "
            f"{self.within_10:.1f}% within ±10%, worst {self.worst:.1f}%, "
            f"on {self.networks} networks"
        )


# Shrinkage of the per-kind scales towards 1, tried in cross-validation (0 is plain least squares).
_SHRINKAGE = (0.0, 0.01, 0.1, 1.0)
_FOLDS = 5


def fit_predictor(
    timings: dict[OpKey, float],
    overhead_ms: float,
    networks: Sequence[Counter[OpKey]],
    measured_ms: Sequence[float],
    *,
    model: str | None = None,
) -> tuple[LatencyPredictor, dict[str, float]]:
    """The model of :data:`MODELS` with the lowest cross-validated MAPE, refitted on all networks.

    ``timings`` gives each op instance's time in ms, ``overhead_ms`` the median run of an empty
    graph (the plain sum's intercept), ``networks`` the op instances of each calibration network
    and ``measured_ms`` its median latency. ``model`` limits the choice to one of :data:`MODELS`.

    Returns the predictor and each tried model's cross-validated MAPE in percent (keyed
    ``sum``, ``scaled``, ``per_kind/shrink=...``). With fewer networks than folds, only the plain
    sum is possible.
    """
    if len(networks) != len(measured_ms):
        raise ValueError("need one measured latency per network")
    plain = LatencyPredictor("sum", dict(timings), overhead_ms, 0.0)
    features = [plain.features(ops) for ops in networks]
    y = np.asarray(measured_ms, dtype=np.float64)
    kinds = sorted({kind for _, net in features for kind in net})

    candidates: dict[str, tuple[str, float]] = {"sum": ("sum", 0.0), "scaled": ("scaled", 0.0)}
    for shrink in _SHRINKAGE:
        candidates[f"per_kind/shrink={shrink:g}"] = ("per_kind", shrink)
    if model is not None:
        if model not in MODELS:
            raise ValueError(f"unknown model {model!r}; expected one of {', '.join(MODELS)}")
        candidates = {name: pair for name, pair in candidates.items() if pair[0] == model}

    scores: dict[str, float] = {}
    if len(networks) >= _FOLDS:
        folds = np.arange(len(networks)) % _FOLDS
        for name, (model, shrink) in candidates.items():
            errors = np.empty(len(networks))
            for fold in range(_FOLDS):
                train = folds != fold
                coefficients = _solve(model, shrink, kinds, features, y, train, overhead_ms)
                predicted = np.array(
                    [_apply(coefficients, kinds, features[i]) for i in np.flatnonzero(~train)]
                )
                errors[~train] = np.abs(predicted - y[~train]) / y[~train]
            scores[name] = float(100 * errors.mean())
        best = min(scores, key=scores.__getitem__)
    elif model in (None, "sum"):
        best = "sum"
    else:
        raise ValueError(f"fitting {model!r} needs at least {_FOLDS} networks")

    chosen, shrink = candidates[best]
    every = np.ones(len(y), dtype=bool)
    intercept, per_op, scales = _solve(chosen, shrink, kinds, features, y, every, overhead_ms)
    return LatencyPredictor(chosen, dict(timings), intercept, per_op, scales), scores


_Coefficients = tuple[float, float, dict[str, float]]


def _apply(
    coefficients: _Coefficients, kinds: list[str], features: tuple[int, dict[str, float]]
) -> float:
    intercept, per_op, scales = coefficients
    count, net = features
    return intercept + per_op * count + sum(scales[k] * net.get(k, 0.0) for k in kinds)


def _solve(
    model: str,
    shrink: float,
    kinds: list[str],
    features: list[tuple[int, dict[str, float]]],
    y: np.ndarray,
    rows: np.ndarray,
    overhead_ms: float,
) -> _Coefficients:
    """Least squares on relative error over the networks in ``rows`` (a boolean mask)."""
    chosen = [features[i] for i in np.flatnonzero(rows)]
    target = y[rows]
    if model == "sum":
        # Nothing to fit: the empty run's cost once, then every op's timing as measured.
        return overhead_ms, 0.0, dict.fromkeys(kinds, 1.0)

    totals = np.array([sum(net.values()) for _, net in chosen])
    if model == "scaled":
        design = np.column_stack([np.ones(len(chosen)), totals])
        weights = 1 / target
        (intercept, scale), *_ = np.linalg.lstsq(
            design * weights[:, None], target * weights, rcond=None
        )
        return float(intercept), 0.0, dict.fromkeys(kinds, float(scale))

    # per_kind: columns intercept, count, one scale per kind; rows weighted by 1 / latency, so
    # that the squares summed are of relative errors. Shrinkage adds a row per kind pulling its
    # scale towards 1, weighted by the kind's share of the latency so that it is unit-free.
    counts = np.array([count for count, _ in chosen], dtype=np.float64)
    net = np.array([[n.get(k, 0.0) for k in kinds] for _, n in chosen])
    design = np.column_stack([np.ones(len(chosen)), counts, net]) / target[:, None]
    response = np.ones(len(chosen))
    if shrink > 0:
        share = np.sqrt(len(chosen)) * net.mean(axis=0) / target.mean()
        penalty = np.zeros((len(kinds), 2 + len(kinds)))
        penalty[np.arange(len(kinds)), 2 + np.arange(len(kinds))] = math.sqrt(shrink) * share
        design = np.vstack([design, penalty])
        response = np.concatenate([response, math.sqrt(shrink) * share])
    solution, *_ = np.linalg.lstsq(design, response, rcond=None)
    scales = {k: float(s) for k, s in zip(kinds, solution[2:], strict=True)}
    return float(solution[0]), float(solution[1]), scales
