"""What a worker does with one candidate: cheap costs first, then training if within limits.

    genotype -> network -> params and FLOPs (fvcore) -> latency -> limits met?
        -> proxy training -> Result

Latency is predicted from the device profile (``[device] latency = "predict"``, no ONNX needed)
or measured here: ONNX export, checked against PyTorch, timed in ONNX Runtime with the profile's
settings (``"measure"``).

A candidate that breaks a hard limit is recorded as infeasible without being trained. Any error
while evaluating a candidate makes it ``failed`` with the error text; it never stops the search.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch

from edgeevo.config import Config, NetworkSection, TrainSection
from edgeevo.data import Split
from edgeevo.errors import ConfigError
from edgeevo.fitness import Limits
from edgeevo.hardware.cost import count_cost
from edgeevo.hardware.latency import SPREAD_WARNING, RuntimeSettings, measure_latency
from edgeevo.hardware.onnx_export import export_onnx
from edgeevo.hardware.predictor import LatencyPredictor, NetworkShape, network_ops
from edgeevo.nets import create_network
from edgeevo.result import Proposal, Result
from edgeevo.tabular import TabularEvaluator
from edgeevo.train import train_and_evaluate

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LatencySettings:
    """How a candidate's latency is obtained: predicted by ``predictor`` when there is one, else
    measured here under ``runtime``."""

    runtime: RuntimeSettings
    profile: str  # the device profile's name, or "local" when timed with the config's settings
    warmup: int = 10
    repeats: int = 50
    predictor: LatencyPredictor | None = None


class Evaluator:
    """Evaluates candidates in this process. Holds the data split, so build it once per worker."""

    def __init__(
        self,
        split: Split,
        shape: NetworkSection,
        train: TrainSection,
        latency: LatencySettings,
        limits: Limits,
        device: torch.device,
    ) -> None:
        self.split = split
        self.shape = shape
        self.train = train
        self.latency = latency
        self.limits = limits
        self.device = device

    def evaluate(self, candidate_id: int, proposal: Proposal, seed: int) -> Result:
        start = time.perf_counter()
        result = Result.of(candidate_id, proposal, seed, "failed")
        try:
            self._evaluate(result)
        except Exception as exc:  # any error fails this candidate, not the search
            logger.debug("[%d] evaluation failed\n%s", candidate_id, traceback.format_exc())
            result.status = "failed"
            result.error = f"{type(exc).__name__}: {exc}"
        result.total_seconds = time.perf_counter() - start
        return result

    def _evaluate(self, result: Result) -> None:
        shape = self.shape
        torch.manual_seed(result.seed)
        model = create_network(
            result.genotype, cells=shape.cells, filters=shape.filters, classes=shape.classes
        )

        # Costs of the untrained network: they do not depend on the weights.
        cost = count_cost(model, shape.resolution)
        result.flops = cost.flops
        result.params = cost.params
        result.uncounted_ops = dict(cost.uncounted_ops)
        self._latency(result, model)

        result.violations = self.limits.violations(
            latency_ms=result.latency_ms, flops=result.flops, params=result.params
        )
        if result.violations:
            result.status = "infeasible"
            return

        outcome = train_and_evaluate(
            model, self.split, self.train, device=self.device, seed=result.seed
        )
        result.accuracy = outcome.accuracy
        result.train_seconds = outcome.seconds
        result.status = "ok"

    def _latency(self, result: Result, model: torch.nn.Module) -> None:
        shape = self.shape
        result.profile = self.latency.profile
        predictor = self.latency.predictor
        if predictor is not None:
            network = NetworkShape(shape.cells, shape.filters, shape.resolution, shape.classes)
            result.latency_ms = predictor.predict_ops(network_ops(result.genotype, network))
            result.latency_source = "predicted"
            return

        onnx_bytes = export_onnx(model, shape.resolution)
        stats = measure_latency(
            onnx_bytes,
            shape.resolution,
            self.latency.runtime,
            warmup=self.latency.warmup,
            repeats=self.latency.repeats,
        )
        if stats.spread > SPREAD_WARNING:
            logger.warning(
                "[%d] latency runs spread %.0f%% around their median (p10 to p90): the machine "
                "may be busy, and this candidate's latency is less certain",
                result.candidate_id,
                100 * stats.spread,
            )
        result.latency_ms = stats.median_ms
        result.latency_p90_ms = stats.p90_ms
        result.latency_source = "measured"


def create_evaluator(config: Config, limits: Limits) -> Evaluator | TabularEvaluator:
    """The evaluator a worker uses, with everything it needs loaded and checked (profile, data,
    table), so that a daemon calls it before it writes any state.

    With ``[table] path`` set, candidates are looked up in that table instead of being trained.
    """
    if config.table.path:
        from edgeevo.tabular import load_table

        table = config.table
        path = Path(table.path).expanduser()
        loaded = load_table(
            path,
            architecture=table.architecture,
            accuracy=table.accuracy,
            latency=table.latency,
            accuracy_unit=table.accuracy_unit,
        )
        logger.info(
            "candidates looked up in table %s (%d rows; latency column %s)",
            path,
            len(loaded.rows),
            table.latency,
        )
        return TabularEvaluator(loaded, limits)

    from edgeevo.data import load_cifar10_split
    from edgeevo.train import select_device

    device_config = config.device
    if device_config.latency == "predict" and not device_config.profile.strip():
        raise ConfigError(
            f'{config.source}: [device] latency = "predict" needs a device profile in [device] '
            "profile (make one on the target with `edgeevo profile-device`), or set "
            'latency = "measure" to time each candidate on this machine'
        )
    predictor = None
    if device_config.profile:
        from edgeevo.hardware.profile import SpaceDescription, load_profile

        # The space is checked in both modes: a profile's settings belong to the space it timed.
        space = SpaceDescription.from_config(config)
        profile = load_profile(Path(device_config.profile).expanduser(), space)
        runtime = profile.runtime
        profile_name = profile.name
        if device_config.latency == "predict":
            predictor = profile.latency_predictor()
    else:
        runtime = RuntimeSettings(
            intra_op_threads=device_config.intra_op_threads,
            inter_op_threads=device_config.inter_op_threads,
        )
        profile_name = "local"
    latency = LatencySettings(
        runtime=runtime,
        profile=profile_name,
        warmup=device_config.warmup,
        repeats=device_config.repeats,
        predictor=predictor,
    )

    data = config.data
    split = load_cifar10_split(
        config.data_root,
        train=data.train,
        valid=data.valid,
        seed=data.split_seed,
        resolution=config.network.resolution,
        download=data.download,
        verify=data.verify,
    )
    device = select_device()
    if device.type == "cpu":
        torch.set_num_threads(config.workers.threads)
    if predictor is not None:
        logger.info("training on %s; latency predicted from profile %s", device, profile_name)
    else:
        logger.info("training on %s; latency timed with %s settings", device, profile_name)
    return Evaluator(split, config.network, config.train, latency, limits, device)
