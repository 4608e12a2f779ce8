"""The latency predictor: op instances of a network, the space's op table, fitting, errors."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import onnx
import pytest

from edgeevo.hardware.onnx_export import export_onnx
from edgeevo.hardware.predictor import (
    LatencyPredictor,
    NetworkShape,
    OpKey,
    PredictionError,
    _live_cells,
    _view,
    fit_predictor,
    network_ops,
    space_op_keys,
    space_signature,
)
from edgeevo.nets import create_network
from edgeevo.nets.network import STEM_MULTIPLIER
from edgeevo.space import OPS, Genotype, NasnetSpace

TINY = NetworkShape(cells=1, filters=4, resolution=8, classes=10)

# ONNX nodes each op instance leaves in the exported graph (batch norm folded into convolutions).
NODES = {
    "stem": {"Conv": 1},
    "preprocess": {"Conv": 1},
    "reduce_input": {"Conv": 2, "BatchNormalization": 1},
    "identity": {"Conv": 2, "BatchNormalization": 1},  # stride 2: a factorized reduction
    "avg_pool_3x3": {"AveragePool": 1},
    "max_pool_3x3": {"MaxPool": 1},
    "sep_conv_3x3": {"Conv": 4},
    "sep_conv_5x5": {"Conv": 4},
    "sep_conv_7x7": {"Conv": 4},
    "conv_1x7_7x1": {"Conv": 2},
    "dil_sep_conv_3x3": {"Conv": 2},
    "add": {"Add": 1},
    "concat": {},
    "head": {"Gemm": 1},
}

# Normal cells that read only h[i-2]: each reduction cell is then read by no one (the normal cell
# after it skips it), and the exported graph drops it.
SKIPPING = Genotype.from_json(
    {
        "normal": [[0, "sep_conv_3x3", 0, "max_pool_3x3"], [2, "identity", 0, "avg_pool_3x3"]],
        "reduce": [[0, "sep_conv_5x5", 1, "identity"], [1, "dil_sep_conv_3x3", 2, "identity"]],
    }
)


def test_the_stem_multiplier_matches_the_network():
    from edgeevo.hardware import predictor

    assert predictor.STEM_MULTIPLIER == STEM_MULTIPLIER


def test_a_cell_no_one_reads_is_not_live():
    # Cells: normal, reduce, normal, reduce, normal; cell 4 reads cell 2, which reads cell 0.
    live = _live_cells(_view(SKIPPING.normal), _view(SKIPPING.reduce), TINY)
    assert live == [True, False, True, False, True]


def test_ops_of_a_network_by_hand():
    ops = network_ops(SKIPPING, TINY)
    # Normal cell 0 at 4 channels, 8 px: input 0 is the stem (12 channels).
    assert ops[OpKey("stem", 3, 12, 8)] == 1
    assert ops[OpKey("preprocess", 12, 4, 8)] == 1
    assert ops[OpKey("sep_conv_3x3", 4, 4, 8)] == 1
    # The concatenation of a normal cell: only block 1 is unread.
    assert ops[OpKey("concat", 4, 4, 8)] == 1
    # Normal cell 2 (8 channels, 4 px) reads cell 0 through a factorized reduction; the last
    # normal cell (16 channels, 2 px) reads cell 2 likewise, at 4 px with 8 channels.
    assert ops[OpKey("reduce_input", 4, 8, 8, 2)] == 1
    assert ops[OpKey("reduce_input", 8, 16, 4, 2)] == 1
    # The dead reduction cells leave no stride-2 op of theirs.
    assert not [key for key in ops if key.stride == 2 and key.kind != "reduce_input"]
    assert ops[OpKey("head", 16, 10, 2)] == 1
    # Three live normal cells, two blocks each.
    assert sum(n for key, n in ops.items() if key.kind == "add") == 6


@pytest.mark.parametrize("seed", range(6))
def test_ops_of_a_network_are_the_nodes_of_its_onnx_graph(seed):
    space = NasnetSpace(blocks=3)
    genotype = SKIPPING if seed == 0 else space.sample(random.Random(seed))
    if seed == 0:
        space = NasnetSpace(blocks=2)
    shape = NetworkShape(cells=2 if seed % 2 else 1, filters=4, resolution=8, classes=10)
    model = create_network(genotype, cells=shape.cells, filters=shape.filters, classes=10)
    graph = onnx.load_from_string(export_onnx(model, shape.resolution)).graph

    expected: Counter[str] = Counter()
    for key, count in network_ops(genotype, shape).items():
        for node, per_op in NODES[key.kind].items():
            expected[node] += per_op * count
    actual = Counter(node.op_type for node in graph.node if node.op_type in expected)
    assert actual == expected


def test_the_space_table_by_hand():
    # One block, two pools, one normal cell per stage: every key worked out on paper.
    keys = space_op_keys(1, ("avg_pool_3x3", "max_pool_3x3"), TINY)
    structure = [
        OpKey("stem", 3, 12, 8),
        OpKey("preprocess", 12, 4, 8),
        OpKey("preprocess", 12, 8, 8),
        OpKey("preprocess", 4, 8, 8),
        OpKey("preprocess", 8, 8, 4),
        OpKey("preprocess", 8, 16, 4),
        OpKey("preprocess", 16, 16, 2),
        OpKey("reduce_input", 4, 8, 8, 2),
        OpKey("reduce_input", 8, 16, 4, 2),
        OpKey("add", 4, 4, 8),
        OpKey("add", 8, 8, 4),
        OpKey("add", 16, 16, 2),
        OpKey("concat", 4, 4, 8),
        OpKey("concat", 8, 8, 4),
        OpKey("concat", 16, 16, 2),
        OpKey("head", 16, 10, 2),
    ]
    contexts = [(4, 8, 1), (8, 8, 2), (8, 4, 1), (16, 4, 2), (16, 2, 1)]
    ops = [
        OpKey(op, c, c, size, stride)
        for op in ("avg_pool_3x3", "max_pool_3x3")
        for c, size, stride in contexts
    ]
    assert keys == sorted(structure + ops)


@pytest.mark.parametrize(
    "shape", [NetworkShape(2, 16, 32, 10), NetworkShape(1, 8, 16, 10), NetworkShape(3, 5, 15, 7)]
)
def test_the_space_table_covers_every_network_of_the_space(shape):
    space = NasnetSpace()
    keys = set(space_op_keys(space.blocks, space.ops, shape))
    rng = random.Random(0)
    seen: set[OpKey] = set()
    for _ in range(300):
        ops = network_ops(space.sample(rng), shape)
        assert set(ops) <= keys
        seen |= set(ops)
    # And it holds little a network cannot use: a few hundred random networks meet most of it
    # (all of it after some 20,000; the rest are rare output counts).
    assert len(seen) >= 0.85 * len(keys)


def test_signature_follows_what_changes_shapes_only():
    ops = list(OPS)
    base = space_signature("nasnet", 5, ops, TINY)
    assert base == space_signature("nasnet", 5, list(reversed(ops)), TINY)
    assert len(base) == 16
    changed = [
        space_signature("nasnet", 4, ops, TINY),
        space_signature("nasnet", 5, ops[:-1], TINY),
        space_signature("nasnet", 5, ops, NetworkShape(2, 4, 8, 10)),
        space_signature("nasnet", 5, ops, NetworkShape(1, 8, 8, 10)),
        space_signature("nasnet", 5, ops, NetworkShape(1, 4, 16, 10)),
        space_signature("nasnet", 5, ops, NetworkShape(1, 4, 8, 100)),
    ]
    assert base not in changed
    assert len(set(changed)) == len(changed)


def _synthetic_networks(count: int, seed: int) -> tuple[dict[OpKey, float], list[Counter[OpKey]]]:
    space = NasnetSpace(blocks=3)
    keys = space_op_keys(space.blocks, space.ops, TINY)
    rng = np.random.default_rng(seed)
    timings = {key: float(rng.uniform(0.001, 0.05)) for key in keys}
    sampler = random.Random(seed)
    return timings, [network_ops(space.sample(sampler), TINY) for _ in range(count)]


def _truth(ops: Counter[OpKey], timings: dict[OpKey, float], scales: dict[str, float]) -> float:
    # 0.05 ms per run and 0.002 ms per op instance, and each kind's timings scaled.
    return (
        0.05
        + 0.002 * sum(ops.values())
        + sum(scales.get(key.kind, 1.0) * timings[key] * n for key, n in ops.items())
    )


def test_a_fitted_predictor_recovers_synthetic_timings_exactly():
    timings, networks = _synthetic_networks(60, seed=1)
    scales = {"sep_conv_3x3": 1.5, "preprocess": 0.5, "concat": 2.0, "add": 0.8}
    measured = [_truth(ops, timings, scales) for ops in networks]

    predictor, scores = fit_predictor(timings, 0.01, networks[:40], measured[:40])

    assert predictor.model == "per_kind"
    assert scores["per_kind/shrink=0"] < 1e-9
    assert scores["sum"] > 1
    for ops, truth in zip(networks[40:], measured[40:], strict=True):
        assert predictor.predict_ops(ops) == pytest.approx(truth, rel=1e-9)
    # The scale of every kind that is not the stem's (always once, so one with the intercept)
    # comes back as set.
    for kind in {key.kind for ops in networks for key in ops} - {"stem"}:
        assert predictor.scales[kind] == pytest.approx(scales.get(kind, 1.0), rel=1e-6)


def test_a_plain_sum_is_recovered_as_such():
    timings, networks = _synthetic_networks(20, seed=2)
    measured = [0.01 + sum(timings[key] * n for key, n in ops.items()) for ops in networks]

    predictor, scores = fit_predictor(timings, 0.01, networks, measured)

    assert scores["sum"] < 1e-9
    for ops, truth in zip(networks, measured, strict=True):
        assert predictor.predict_ops(ops) == pytest.approx(truth, rel=1e-9)


def test_one_scale_and_an_intercept():
    timings, networks = _synthetic_networks(20, seed=3)
    measured = [0.2 + 0.7 * sum(timings[k] * n for k, n in ops.items()) for ops in networks]

    predictor, _ = fit_predictor(timings, 0.01, networks, measured)

    for ops, truth in zip(networks, measured, strict=True):
        assert predictor.predict_ops(ops) == pytest.approx(truth, rel=1e-9)


def test_too_few_networks_for_cross_validation_keep_the_plain_sum():
    timings, networks = _synthetic_networks(3, seed=4)
    predictor, scores = fit_predictor(timings, 0.25, networks, [1.0, 2.0, 3.0])
    assert (predictor.model, scores) == ("sum", {})
    assert predictor.intercept_ms == 0.25
    assert predictor.per_op_ms == 0.0


def test_a_network_with_an_untimed_op_is_refused():
    predictor = LatencyPredictor("sum", {OpKey("stem", 3, 12, 8): 0.1}, 0.0, 0.0)
    with pytest.raises(KeyError, match=r"no timing for op preprocess/12->4/8px/s1"):
        predictor.predict_ops(Counter({OpKey("preprocess", 12, 4, 8): 1}))


def test_prediction_error_by_hand():
    error = PredictionError.of([1.0, 2.0625, 4.5, 8.0], [1.0, 2.0, 4.0, 8.5])
    # Errors: 0%, 3.125%, 12.5%, 5.882...%
    assert error.networks == 4
    assert error.mape == pytest.approx((0 + 3.125 + 12.5 + 50 / 8.5) / 4)
    assert error.within_5 == 50.0
    assert error.within_10 == 75.0
    assert error.worst == 12.5
    with pytest.raises(ValueError, match="as many predictions"):
        PredictionError.of([1.0], [1.0, 2.0])


def test_the_evaluator_predicts_without_exporting_or_timing(monkeypatch):
    import edgeevo.evaluate as evaluate
    from edgeevo.config import NetworkSection, TrainSection
    from edgeevo.fitness import Limits
    from edgeevo.hardware.latency import RuntimeSettings
    from edgeevo.result import Result

    def refuse(*args, **kwargs):
        raise AssertionError("predict mode must not export or time the network")

    monkeypatch.setattr(evaluate, "export_onnx", refuse)
    monkeypatch.setattr(evaluate, "measure_latency", refuse)
    shape = NetworkSection(cells=1, filters=4, resolution=8, classes=10)
    keys = space_op_keys(2, OPS, TINY)
    predictor = LatencyPredictor("sum", dict.fromkeys(keys, 0.01), 0.02, 0.0)
    latency = evaluate.LatencySettings(RuntimeSettings(), "box", predictor=predictor)
    evaluator = evaluate.Evaluator(None, shape, TrainSection(), latency, Limits(), None)

    result = Result(candidate_id=1, genotype=SKIPPING, status="failed", seed=0)
    evaluator._latency(result, model=None)

    ops = network_ops(SKIPPING, TINY)
    assert result.latency_ms == pytest.approx(0.02 + 0.01 * sum(ops.values()))
    assert (result.latency_source, result.profile, result.latency_p90_ms) == (
        "predicted",
        "box",
        None,
    )
