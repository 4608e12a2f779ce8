"""Making a device profile on the target: host facts, op and network timings, the fit.

Run by ``edgeevo profile-device``; the format it writes is :mod:`edgeevo.hardware.profile`'s.
Torch and ONNX are imported only here, so that reading a profile needs neither.
"""

from __future__ import annotations

import logging
import platform
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from edgeevo.hardware.latency import SPREAD_WARNING, LatencyStats, RuntimeSettings
from edgeevo.hardware.predictor import (
    LatencyPredictor,
    NetworkShape,
    OpKey,
    PredictionError,
    fit_predictor,
    network_ops,
    space_op_keys,
)
from edgeevo.hardware.profile import (
    CalibrationTiming,
    DeviceProfile,
    HostFacts,
    Measurement,
    OpTiming,
    SpaceDescription,
)
from edgeevo.space import Genotype, NasnetSpace

logger = logging.getLogger(__name__)

# Every third calibration network is held out: the predictor never sees it, and its error on
# those networks is the one the profile states.
HOLDOUT_EVERY = 3

# Called as progress(step, done, total) while a profile is made; the steps in order:
STEPS = ("export op graphs", "time op graphs", "export calibration networks", "time calibration")
Progress = Callable[[str, int, int], None]


def collect_host_facts() -> HostFacts:
    """The facts of this machine, from /proc/cpuinfo, psutil, platform and ONNX Runtime."""
    import onnxruntime as ort
    import psutil

    frequency = psutil.cpu_freq()
    mhz = None
    if frequency is not None:
        mhz = frequency.max if frequency.max > 0 else frequency.current
    try:
        os_name = platform.freedesktop_os_release()["PRETTY_NAME"]
    except (OSError, KeyError):
        os_name = f"{platform.system()} {platform.version()}".strip()

    return HostFacts(
        cpu_model=_cpu_model(),
        physical_cores=psutil.cpu_count(logical=False),
        logical_cores=psutil.cpu_count(logical=True),
        cpu_mhz=mhz,
        governor=_governor(),
        memory_bytes=psutil.virtual_memory().total,
        os=os_name,
        kernel=platform.release(),
        machine=platform.machine(),
        python=platform.python_version(),
        onnxruntime=ort.__version__,
        providers=tuple(ort.get_available_providers()),
    )


def _governor() -> str | None:
    try:
        path = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def _cpu_model() -> str:
    # Linux names the model in /proc/cpuinfo ("model name" on x86, "Model" on some ARM boards);
    # elsewhere platform knows at least the architecture.
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def make_profile(
    name: str,
    settings: RuntimeSettings,
    space: SpaceDescription,
    *,
    calibration: int = 90,
    seed: int = 0,
    measurement: Measurement | None = None,
    progress: Progress | None = None,
) -> DeviceProfile:
    """Profile this machine for ``space``: time its op instances and ``calibration`` random
    networks under ``settings``, and fit the latency predictor.

    Every third calibration network is held out of the fit and gives the stated error. The
    networks are drawn from ``seed``; ``progress`` hears of each step (see :data:`STEPS`).
    ``measurement`` says how to time (:class:`Measurement`'s defaults when None).
    """
    # Torch and onnx only when a profile is made: reading one needs neither.
    import torch

    start = time.monotonic()
    report = progress or (lambda step, done, total: None)
    # Exporting traces each network once on one image: a second torch thread gains nothing, and
    # on a busy machine its OpenMP threads wait on each other and make exports ten times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        how = measurement or Measurement()
        return _make_profile(name, settings, space, calibration, seed, how, report, start)
    finally:
        torch.set_num_threads(threads)


def _make_profile(
    name: str,
    settings: RuntimeSettings,
    space: SpaceDescription,
    calibration: int,
    seed: int,
    measurement: Measurement,
    report: Progress,
    start: float,
) -> DeviceProfile:
    from edgeevo.hardware.latency import measure_many
    from edgeevo.hardware.onnx_export import export_onnx
    from edgeevo.hardware.op_graphs import export_empty, export_op
    from edgeevo.nets import create_network

    host = collect_host_facts()
    shape = space.shape

    # Every op instance of the space in a graph of one copy and one of many, and the empty graph.
    keys = space_op_keys(space.blocks, space.ops, shape)
    copies = measurement.copies
    graphs = [export_empty()]
    for i, key in enumerate(keys):
        graphs += [export_op(key), export_op(key, copies)]
        report(STEPS[0], i + 1, len(keys))
    stats = measure_many(
        graphs,
        settings,
        warmup=measurement.warmup,
        repeats=measurement.op_repeats,
        rounds=measurement.rounds,
        on_round=lambda done: report(STEPS[1], done, len(graphs) * measurement.rounds),
    )
    overhead_ms = stats[0].median_ms
    ops = tuple(
        OpTiming(
            key,
            op_ms=max(many.median_ms - one.median_ms, 0.0) / (copies - 1),
            single_ms=one.median_ms,
            copies_ms=many.median_ms,
            spread=max(one.spread, many.spread),
        )
        for key, one, many in zip(keys, stats[1::2], stats[2::2], strict=True)
    )
    _warn_of_spread("op graphs", [(f"graph {i}", s) for i, s in enumerate(stats)])

    # Calibration networks: distinct random genotypes, exported as a candidate is.
    sampler = NasnetSpace(blocks=space.blocks, ops=space.ops)
    rng = random.Random(seed)
    genotypes: dict[str, Genotype] = {}
    while len(genotypes) < calibration:
        genotype = sampler.sample(rng)
        genotypes.setdefault(genotype.key(), genotype)
    networks = []
    for i, genotype in enumerate(genotypes.values()):
        model = create_network(
            genotype, cells=space.cells, filters=space.filters, classes=space.classes
        )
        networks.append(export_onnx(model, space.resolution))
        report(STEPS[2], i + 1, calibration)
    network_stats = measure_many(
        networks,
        settings,
        warmup=measurement.warmup,
        repeats=measurement.network_repeats,
        rounds=measurement.rounds,
        on_round=lambda done: report(STEPS[3], done, calibration * measurement.rounds),
    )
    _warn_of_spread(
        "calibration networks",
        [(f"network {i}", s) for i, s in enumerate(network_stats)],
    )
    timings = tuple(
        CalibrationTiming(g, s.median_ms, s.p90_ms, s.spread, i % HOLDOUT_EVERY == 2)
        for i, (g, s) in enumerate(zip(genotypes.values(), network_stats, strict=True))
    )

    predictor, scores, error = fit_and_test(
        {timing.key: timing.op_ms for timing in ops}, overhead_ms, timings, shape
    )
    logger.info("predictor %s; cross-validated MAPE by model: %s", predictor.model, scores)
    if error is not None:
        logger.info("held-out error: %s", error)

    return DeviceProfile(
        name=name,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        seconds=round(time.monotonic() - start, 1),
        host=host,
        runtime=settings,
        measurement=measurement,
        space=space,
        signature=space.signature(),
        overhead_ms=overhead_ms,
        ops=ops,
        calibration=timings,
        predictor=predictor.to_json(),
        cross_validation=scores,
        error=error,
    )


def fit_and_test(
    timings: dict[OpKey, float],
    overhead_ms: float,
    calibration: tuple[CalibrationTiming, ...],
    shape: NetworkShape,
    model: str | None = None,
) -> tuple[LatencyPredictor, dict[str, float], PredictionError | None]:
    """Fit the predictor on the calibration networks not held out; its error on the rest
    (None when none is held out). ``model`` limits the choice as in :func:`fit_predictor`."""
    fitting = [timing for timing in calibration if not timing.held_out]
    held_out = [timing for timing in calibration if timing.held_out]
    predictor, scores = fit_predictor(
        timings,
        overhead_ms,
        [network_ops(timing.genotype, shape) for timing in fitting],
        [timing.median_ms for timing in fitting],
        model=model,
    )
    error = None
    if held_out:
        error = PredictionError.of(
            [predictor.predict_ops(network_ops(t.genotype, shape)) for t in held_out],
            [t.median_ms for t in held_out],
        )
    return predictor, scores, error


def _warn_of_spread(what: str, stats: list[tuple[str, LatencyStats]]) -> None:
    wide = [(label, s.spread) for label, s in stats if s.spread > SPREAD_WARNING]
    if wide:
        label, spread = max(wide, key=lambda item: item[1])
        logger.warning(
            "%d of %d %s ran with a spread above %.0f%% (p10 to p90 around the median; widest "
            "%s at %.0f%%): the machine was busy, and the profile is less certain",
            len(wide),
            len(stats),
            what,
            100 * SPREAD_WARNING,
            label,
            100 * spread,
        )
