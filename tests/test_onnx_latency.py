"""ONNX export matches PyTorch for every op; latency timing and the session's settings."""

from __future__ import annotations

import math
import random
import subprocess
import sys

import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from edgeevo.hardware.latency import LatencyStats, RuntimeSettings, create_session, measure_latency
from edgeevo.hardware.onnx_export import OnnxParityError, export_onnx
from edgeevo.nets import create_network
from edgeevo.space import OPS, Genotype, NasnetSpace


def uniform_genotype(op: str) -> Genotype:
    cell = [[0, op, 1, op], [2, op, 0, op], [1, op, 1, op]]
    return Genotype.from_json({"normal": cell, "reduce": cell})


def trained_looking(model: nn.Module, seed: int) -> nn.Module:
    """Give batch norm non-trivial statistics, so that folding it into convolutions is tested."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=generator) * 0.1)
    return model


@pytest.fixture(scope="module")
def small_onnx() -> bytes:
    model = create_network(uniform_genotype("sep_conv_3x3"), cells=1, filters=4, classes=10)
    return export_onnx(model, 16)


@pytest.mark.parametrize("op", OPS)
def test_every_op_matches_pytorch(op: str) -> None:
    model = trained_looking(
        create_network(uniform_genotype(op), cells=1, filters=4, classes=10), 0
    )
    onnx_bytes = export_onnx(model, 12, atol=1e-4)

    graph = onnx.load_from_string(onnx_bytes).graph
    assert [i.name for i in graph.input] == ["image"]
    assert [o.name for o in graph.output] == ["logits"]


@pytest.mark.parametrize("seed", [0, 1])
def test_random_genotype_matches_pytorch(seed: int) -> None:
    genotype = NasnetSpace().sample(random.Random(seed))
    model = create_network(genotype, cells=1, filters=8, classes=10)
    export_onnx(trained_looking(model, seed), 32, atol=1e-4)


def test_export_keeps_the_model_mode() -> None:
    model = create_network(uniform_genotype("avg_pool_3x3"), cells=1, filters=4, classes=10)
    model.train()
    export_onnx(model, 8)
    assert model.training


class _Drifting(nn.Module):
    """Adds how often it was called: the export freezes one count, PyTorch then sees another."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 2)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.linear(x.mean((2, 3))) + float(self.calls)


def test_parity_failure_names_the_difference() -> None:
    with pytest.raises(
        OnnxParityError,
        match=r"^ONNX Runtime's logits differ from PyTorch's by up to \d+ \(allowed: 0.0001\) "
        r"at resolution 8$",
    ):
        export_onnx(_Drifting(), 8)


def test_latency_stats_are_positive_and_ordered(small_onnx: bytes) -> None:
    stats = measure_latency(small_onnx, 16, RuntimeSettings(), warmup=2, repeats=7)

    assert stats.runs == 7
    for value in (stats.median_ms, stats.p90_ms, stats.min_ms, stats.spread):
        assert math.isfinite(value)
    assert 0 < stats.min_ms <= stats.median_ms <= stats.p90_ms
    assert stats.spread >= 0


def test_latency_statistics_from_known_times() -> None:
    stats = LatencyStats.from_ns([ms * 1_000_000 for ms in range(10, 0, -1)])  # 1..10 ms

    assert stats == LatencyStats(
        median_ms=pytest.approx(5.5),
        p90_ms=pytest.approx(9.1),
        min_ms=1.0,
        spread=pytest.approx((9.1 - 1.9) / 5.5),
        runs=10,
    )


def test_latency_needs_runs() -> None:
    with pytest.raises(ValueError, match="no run times to summarise"):
        LatencyStats.from_ns([])


@pytest.mark.parametrize(("warmup", "repeats"), [(-1, 5), (0, 0)])
def test_latency_rejects_run_counts(small_onnx: bytes, warmup: int, repeats: int) -> None:
    with pytest.raises(
        ValueError,
        match=f"need warmup >= 0 and repeats >= 1, got warmup={warmup}, repeats={repeats}",
    ):
        measure_latency(small_onnx, 16, RuntimeSettings(), warmup=warmup, repeats=repeats)


def test_latency_rejects_another_resolution(small_onnx: bytes) -> None:
    with pytest.raises(
        ValueError,
        match=r"the model's input 'image' has shape \[1, 3, 16, 16\]; "
        r"resolution 32 needs \[1, 3, 32, 32\]",
    ):
        measure_latency(small_onnx, 32, RuntimeSettings(), repeats=1)


def test_settings_reach_the_session(small_onnx: bytes) -> None:
    settings = RuntimeSettings(
        intra_op_threads=2,
        inter_op_threads=3,
        allow_spinning=True,
        execution_mode="parallel",
        optimization_level="basic",
    )
    options = create_session(small_onnx, settings).get_session_options()

    assert options.intra_op_num_threads == 2
    assert options.inter_op_num_threads == 3
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    assert options.get_session_config_entry("session.inter_op.allow_spinning") == "1"
    assert options.execution_mode == ort.ExecutionMode.ORT_PARALLEL
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC


def test_default_settings_reach_the_session(small_onnx: bytes) -> None:
    session = create_session(small_onnx, RuntimeSettings())
    options = session.get_session_options()

    assert options.intra_op_num_threads == 1
    assert options.inter_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.get_session_config_entry("session.inter_op.allow_spinning") == "0"
    assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert session.get_providers() == ["CPUExecutionProvider"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"intra_op_threads": 0},
            "intra_op_threads must be a whole number of threads >= 1, got 0",
        ),
        ({"inter_op_threads": 1.5}, "inter_op_threads must be a whole number of threads >= 1"),
        ({"intra_op_threads": True}, "intra_op_threads must be a whole number"),
        ({"allow_spinning": "no"}, "allow_spinning must be true or false, got 'no'"),
        (
            {"execution_mode": "async"},
            "execution_mode must be one of sequential, parallel, got 'async'",
        ),
        (
            {"optimization_level": "max"},
            "optimization_level must be one of disable, basic, extended, all, got 'max'",
        ),
    ],
)
def test_settings_reject_bad_values(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}"):
        RuntimeSettings(**kwargs)  # type: ignore[arg-type]


def test_settings_json_round_trip() -> None:
    settings = RuntimeSettings(intra_op_threads=4, execution_mode="parallel")
    assert RuntimeSettings.from_json(settings.to_json()) == settings


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"threads": 2}, "missing: none, unknown: threads"),
        ({"allow_spinning": None}, "missing: allow_spinning, unknown: none"),
    ],
)
def test_settings_json_needs_exactly_its_keys(change: dict[str, object], message: str) -> None:
    doc = {**RuntimeSettings().to_json(), **change}
    doc = {k: v for k, v in doc.items() if v is not None}
    with pytest.raises(ValueError, match=f"runtime settings need exactly the keys .*; {message}$"):
        RuntimeSettings.from_json(doc)


def test_importing_the_package_loads_no_onnx_onnxruntime_or_fvcore() -> None:
    code = (
        "import sys, edgeevo.hardware, edgeevo.nets; "
        "print(sorted(m for m in ('onnx', 'onnxruntime', 'fvcore') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
