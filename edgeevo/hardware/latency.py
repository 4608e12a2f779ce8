"""Time an exported network in ONNX Runtime on this machine's CPU.

Latency is wall time of one ``session.run`` at batch 1 in milliseconds, Python's call overhead
included, taken with ``time.perf_counter_ns`` after warm-up runs; the statistic used is named at
each figure (median, p90).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

import numpy as np

logger = logging.getLogger(__name__)

# Above this (p90 - p10) / median, a latency measurement is reported as untrustworthy.
SPREAD_WARNING = 0.5

ExecutionMode = Literal["sequential", "parallel"]
OptimizationLevel = Literal["disable", "basic", "extended", "all"]

# ONNX Runtime's enum member for each of our names.
_EXECUTION_MODES = {"sequential": "ORT_SEQUENTIAL", "parallel": "ORT_PARALLEL"}
_OPTIMIZATION_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


@dataclass(frozen=True)
class RuntimeSettings:
    """How ONNX Runtime runs a network: the settings a latency figure is only valid under.

    ``intra_op_threads`` split one op's work; ``inter_op_threads`` run independent ops at once
    and matter only in ``parallel`` execution. With ``allow_spinning`` off, idle pool threads
    sleep instead of busy-waiting for the next op, which costs a little latency but leaves the
    cores to other work, as on a PC that runs more than the network.
    """

    intra_op_threads: int = 1
    inter_op_threads: int = 1
    allow_spinning: bool = False
    execution_mode: ExecutionMode = "sequential"
    optimization_level: OptimizationLevel = "all"

    def __post_init__(self) -> None:
        for name in ("intra_op_threads", "inter_op_threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number of threads >= 1, got {value!r}")
        if not isinstance(self.allow_spinning, bool):
            raise ValueError(f"allow_spinning must be true or false, got {self.allow_spinning!r}")
        if self.execution_mode not in _EXECUTION_MODES:
            raise ValueError(
                f"execution_mode must be one of {', '.join(get_args(ExecutionMode))}, "
                f"got {self.execution_mode!r}"
            )
        if self.optimization_level not in _OPTIMIZATION_LEVELS:
            raise ValueError(
                f"optimization_level must be one of {', '.join(get_args(OptimizationLevel))}, "
                f"got {self.optimization_level!r}"
            )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> RuntimeSettings:
        """Settings from :meth:`to_json`'s document; ValueError names a missing or unknown key."""
        fields = list(cls.__dataclass_fields__)
        missing = [name for name in fields if name not in doc]
        unknown = sorted(set(doc) - set(fields))
        if missing or unknown:
            raise ValueError(
                f"runtime settings need exactly the keys {', '.join(fields)}; "
                f"missing: {', '.join(missing) or 'none'}, unknown: {', '.join(unknown) or 'none'}"
            )
        return cls(**doc)


@dataclass(frozen=True)
class LatencyStats:
    """Timings of ``runs`` runs of one network, in milliseconds.

    ``spread`` is ``(p90 - p10) / median``: how noisy the runs were, as a fraction.
    """

    median_ms: float
    p90_ms: float
    min_ms: float
    spread: float
    runs: int

    @classmethod
    def from_ns(cls, times_ns: list[int]) -> LatencyStats:
        """The statistics of run times given in nanoseconds."""
        if not times_ns:
            raise ValueError("no run times to summarise")
        ms = np.asarray(times_ns, dtype=np.float64) / 1e6
        p10, median, p90 = np.percentile(ms, [10, 50, 90])
        return cls(
            median_ms=float(median),
            p90_ms=float(p90),
            min_ms=float(ms.min()),
            spread=float((p90 - p10) / median),
            runs=len(times_ns),
        )


def create_session(onnx_bytes: bytes, settings: RuntimeSettings) -> Any:
    """An ONNX Runtime session on the CPU, set up as ``settings`` say."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.intra_op_threads
    options.inter_op_num_threads = settings.inter_op_threads
    spinning = "1" if settings.allow_spinning else "0"
    options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
    options.add_session_config_entry("session.inter_op.allow_spinning", spinning)
    options.execution_mode = getattr(ort.ExecutionMode, _EXECUTION_MODES[settings.execution_mode])
    options.graph_optimization_level = getattr(
        ort.GraphOptimizationLevel, _OPTIMIZATION_LEVELS[settings.optimization_level]
    )
    return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])


def measure_latency(
    onnx_bytes: bytes,
    resolution: int,
    settings: RuntimeSettings,
    *,
    warmup: int = 10,
    repeats: int = 50,
) -> LatencyStats:
    """Run the network ``warmup`` times untimed, then ``repeats`` times timed, on one image.

    The model must take one ``(1, 3, resolution, resolution)`` float input, as
    :func:`~edgeevo.hardware.onnx_export.export_onnx` writes it.
    """
    if warmup < 0 or repeats < 1:
        raise ValueError(
            f"need warmup >= 0 and repeats >= 1, got warmup={warmup}, repeats={repeats}"
        )
    session = create_session(onnx_bytes, settings)

    (model_input,) = session.get_inputs()
    expected = [1, 3, resolution, resolution]
    if list(model_input.shape) != expected:
        raise ValueError(
            f"the model's input {model_input.name!r} has shape {model_input.shape}; "
            f"resolution {resolution} needs {expected}"
        )
    feed = random_feed(session)
    for _ in range(warmup):
        session.run(None, feed)
    times_ns = _time_runs(session, feed, repeats)

    stats = LatencyStats.from_ns(times_ns)
    logger.debug(
        "latency: median %.3f ms, p90 %.3f ms over %d runs",
        stats.median_ms,
        stats.p90_ms,
        stats.runs,
    )
    return stats


def random_feed(session: Any) -> dict[str, np.ndarray]:
    """Seeded random float inputs for every input of ``session``, at the shapes it declares."""
    rng = np.random.default_rng(0)
    return {
        item.name: rng.standard_normal(item.shape, dtype=np.float32)
        for item in session.get_inputs()
    }


def _time_runs(session: Any, feed: dict[str, np.ndarray], repeats: int) -> list[int]:
    times_ns = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        session.run(None, feed)
        times_ns.append(time.perf_counter_ns() - start)
    return times_ns


def measure_many(
    graphs: list[bytes],
    settings: RuntimeSettings,
    *,
    warmup: int,
    repeats: int,
    rounds: int,
    on_round: Callable[[int], None] | None = None,
) -> list[LatencyStats]:
    """Time several ONNX graphs in interleaved rounds; one :class:`LatencyStats` per graph.

    Each graph gets ``warmup`` untimed runs, then ``repeats`` timed runs split over ``rounds``
    passes over all graphs, so that a burst of other load on a busy machine falls on many
    timings a little rather than on one timing wholly. ``on_round(done)`` is called after each
    graph of each pass, with the number of graph-passes done so far.
    """
    if warmup < 0 or repeats < 1 or not 1 <= rounds <= repeats:
        raise ValueError(
            f"need warmup >= 0 and 1 <= rounds <= repeats, got warmup={warmup}, "
            f"repeats={repeats}, rounds={rounds}"
        )
    sessions = [create_session(graph, settings) for graph in graphs]
    feeds = [random_feed(session) for session in sessions]
    for session, feed in zip(sessions, feeds, strict=True):
        for _ in range(warmup):
            session.run(None, feed)

    times_ns: list[list[int]] = [[] for _ in graphs]
    done = 0
    for round_index in range(rounds):
        # The first rounds take one run more when the repeats do not divide evenly.
        runs = repeats // rounds + (1 if round_index < repeats % rounds else 0)
        for i, (session, feed) in enumerate(zip(sessions, feeds, strict=True)):
            times_ns[i].extend(_time_runs(session, feed, runs))
            done += 1
            if on_round is not None:
                on_round(done)
    return [LatencyStats.from_ns(times) for times in times_ns]
