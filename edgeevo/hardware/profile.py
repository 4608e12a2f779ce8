"""Device profiles: what a target PC is, how fast it runs each op of a space, and a predictor.

A profile is a versioned JSON file written on the target by ``edgeevo profile-device`` and read
by the search wherever it runs. It holds the host's facts, the ONNX Runtime settings every
latency in it was measured under, the space and network it was made for (with their signature),
the time of every op instance that space can produce, each timed in tiny ONNX graphs of its
own, calibration networks of the space timed end to end, the latency predictor fitted on part
of them, and that predictor's error on the rest. Latencies are in ms at batch 1.

This module reads, checks and writes the format; :mod:`edgeevo.hardware.profiling` makes one.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeevo.errors import ConfigError, GenotypeError, ProfileError
from edgeevo.files import write_atomically
from edgeevo.hardware.latency import RuntimeSettings
from edgeevo.hardware.predictor import (
    MODELS,
    LatencyPredictor,
    NetworkShape,
    OpKey,
    PredictionError,
    network_ops,
    space_op_keys,
    space_signature,
)
from edgeevo.space import Genotype

if TYPE_CHECKING:
    from edgeevo.config import Config


PROFILE_VERSION = 2

_MAKE_COMMAND = "`edgeevo profile-device` on the target PC"


@dataclass(frozen=True)
class HostFacts:
    """The machine a profile was made on.

    ``cpu_mhz`` is the CPU's top frequency where the OS reports it, else its frequency when the
    profile was made; ``governor`` Linux's cpufreq governor of CPU 0. Each is None where the OS
    does not tell it, as are core counts the OS does not report.
    """

    cpu_model: str
    physical_cores: int | None
    logical_cores: int | None
    cpu_mhz: float | None
    governor: str | None
    memory_bytes: int
    os: str
    kernel: str
    machine: str
    python: str
    onnxruntime: str
    providers: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "providers": list(self.providers)}


@dataclass(frozen=True)
class SpaceDescription:
    """The space and network a profile was made for: what decides the op instances it times."""

    space: str
    blocks: int
    ops: tuple[str, ...]
    cells: int
    filters: int
    resolution: int
    classes: int

    @classmethod
    def from_config(cls, config: Config) -> SpaceDescription:
        if config.search.space != "nasnet":
            # Per-op timings are enumerated for the NASNet stack only; an NB201 search is timed
            # here (latency = "measure") or looked up in a table.
            raise ConfigError(
                f"{config.source}: [search] space = {config.search.space!r}: device profiles "
                'and latency prediction cover the "nasnet" space only; set [device] latency = '
                '"measure" with no profile, or evaluate by lookup in a [table]'
            )
        network = config.network
        return cls(
            space=config.search.space,
            blocks=config.space.blocks,
            ops=tuple(config.space.ops),
            cells=network.cells,
            filters=network.filters,
            resolution=network.resolution,
            classes=network.classes,
        )

    @property
    def shape(self) -> NetworkShape:
        return NetworkShape(self.cells, self.filters, self.resolution, self.classes)

    def signature(self) -> str:
        return space_signature(self.space, self.blocks, self.ops, self.shape)

    def __str__(self) -> str:
        return (
            f"{self.space} space with {self.blocks} blocks and ops {','.join(self.ops)}, "
            f"network of {self.cells} cells per stage, {self.filters} filters, "
            f"{self.resolution}px, {self.classes} classes"
        )

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ops": list(self.ops)}


@dataclass(frozen=True)
class Measurement:
    """How the timings were taken: ``warmup`` untimed runs, then ``op_repeats`` timed runs of
    each op graph and ``network_repeats`` of each calibration network, spread over ``rounds``
    interleaved passes; each timing is the median of its runs. An op is timed in a graph of
    one copy and a graph of ``copies`` copies."""

    warmup: int = 10
    op_repeats: int = 200
    network_repeats: int = 50
    rounds: int = 5
    copies: int = 8


@dataclass(frozen=True)
class OpTiming:
    """One op instance's timings in ms: the median run of a graph of one copy (``single_ms``)
    and of ``copies`` copies (``copies_ms``), and what one op adds to a run, ``op_ms`` =
    (copies_ms - single_ms) / (copies - 1), at least 0. ``spread`` is the wider of the two
    graphs' (p90 - p10) / median."""

    key: OpKey
    op_ms: float
    single_ms: float
    copies_ms: float
    spread: float

    def to_json(self) -> dict[str, Any]:
        return {
            **self.key.to_json(),
            "op_ms": self.op_ms,
            "single_ms": self.single_ms,
            "copies_ms": self.copies_ms,
            "spread": self.spread,
        }


@dataclass(frozen=True)
class CalibrationTiming:
    """One calibration network timed end to end (ms); ``held_out`` ones test the predictor."""

    genotype: Genotype
    median_ms: float
    p90_ms: float
    spread: float
    held_out: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "genotype": self.genotype.to_json(),
            "median_ms": self.median_ms,
            "p90_ms": self.p90_ms,
            "spread": self.spread,
            "held_out": self.held_out,
        }


@dataclass(frozen=True)
class DeviceProfile:
    """A target PC: its facts, the runtime settings, its timings and the predictor from them.

    ``created`` is the UTC time the profile was made, in ISO 8601; ``seconds`` how long making
    it took. ``overhead_ms`` is the median run of an empty graph. ``predictor`` holds the fitted
    coefficients (see :mod:`edgeevo.hardware.predictor`), ``cross_validation`` the
    cross-validated MAPE in percent of each model tried on the fitting networks, ``error`` the
    chosen predictor's error on the held-out calibration networks.
    """

    name: str
    created: str
    seconds: float
    host: HostFacts
    runtime: RuntimeSettings
    measurement: Measurement
    space: SpaceDescription
    signature: str
    overhead_ms: float
    ops: tuple[OpTiming, ...]
    calibration: tuple[CalibrationTiming, ...]
    predictor: dict[str, Any]
    cross_validation: dict[str, float]
    error: PredictionError | None
    version: int = PROFILE_VERSION

    def latency_predictor(self) -> LatencyPredictor:
        """The fitted predictor, built from the stored timings and coefficients."""
        return LatencyPredictor(
            model=self.predictor["model"],
            timings={timing.key: timing.op_ms for timing in self.ops},
            intercept_ms=self.predictor["intercept_ms"],
            per_op_ms=self.predictor["per_op_ms"],
            scales=dict(self.predictor["scales"]),
        )

    def predict(self, genotype: Genotype) -> float:
        """Predicted median latency in ms of ``genotype``'s network on this profile's PC."""
        return self.latency_predictor().predict_ops(network_ops(genotype, self.space.shape))

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "name": self.name,
            "created": self.created,
            "seconds": self.seconds,
            "host": self.host.to_json(),
            "runtime": self.runtime.to_json(),
            "measurement": asdict(self.measurement),
            "space": self.space.to_json(),
            "signature": self.signature,
            "overhead_ms": self.overhead_ms,
            "predictor": self.predictor,
            "cross_validation": self.cross_validation,
            "error": None if self.error is None else self.error.to_json(),
            "ops": [timing.to_json() for timing in self.ops],
            "calibration": [timing.to_json() for timing in self.calibration],
        }


def save_profile(profile: DeviceProfile, path: str | os.PathLike[str]) -> None:
    """Write ``profile`` as JSON to ``path``, atomically: readers see the old file or the new."""
    text = json.dumps(profile.to_json(), indent=2, allow_nan=False) + "\n"
    write_atomically(Path(path), text)


def load_profile(
    path: str | os.PathLike[str], space: SpaceDescription | None = None
) -> DeviceProfile:
    """Read a profile written by :func:`save_profile`, made for ``space`` when one is given.

    ProfileError, with a one-line message naming the file and what was expected, when the file is
    missing, is not JSON, is not a JSON object, lacks a field or holds one of the wrong type, is
    of another format version, or was made for another space or network than ``space``.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProfileError(
            f"device profile {path} does not exist; make one with {_MAKE_COMMAND}"
        ) from None
    except UnicodeDecodeError:
        raise ProfileError(f"device profile {path} is not JSON: not UTF-8 text") from None
    except OSError as exc:
        raise ProfileError(f"cannot read device profile {path}: {exc.strerror}") from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProfileError(
            f"device profile {path} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None

    profile = _Reader(path).profile(doc)
    if space is not None and profile.signature != space.signature():
        raise ProfileError(
            f"device profile {path} was made for another space: {profile.space} (signature "
            f"{profile.signature}), but the config has {space} (signature {space.signature()}); "
            f"make one for this config with {_MAKE_COMMAND}, passing it --config"
        )
    return profile


# JSON's names for the Python types that json.loads returns.
_JSON_TYPES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    type(None): "null",
}


class _Reader:
    """Checks a parsed profile document field by field; every error names the file and field."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def error(self, what: str) -> ProfileError:
        return ProfileError(f"device profile {self.path}: {what}")

    def take(self, doc: dict[str, Any], key: str, kinds: tuple[type, ...], where: str) -> Any:
        """``doc[key]`` when present and of one of ``kinds``; ``where`` prefixes the field name."""
        field = f"{where}{key}"
        expected = " or ".join(_JSON_TYPES[kind] for kind in kinds)
        if key not in doc:
            raise self.error(f"missing field {field!r} ({expected})")
        value = doc[key]
        # An integer is also a fine float; a bool is not an int here, though Python says so.
        matches = type(value) in kinds or (type(value) is int and float in kinds)
        if not matches:
            raise self.error(
                f"field {field!r} must be {expected}, got {_JSON_TYPES.get(type(value), 'other')}"
            )
        return value

    def take_float(self, doc: dict[str, Any], key: str, where: str) -> float:
        return float(self.take(doc, key, (float,), where))

    def profile(self, doc: Any) -> DeviceProfile:
        if not isinstance(doc, dict):
            raise ProfileError(
                f"device profile {self.path} must be a JSON object, "
                f"got {_JSON_TYPES.get(type(doc), 'other')}"
            )
        version = self.take(doc, "version", (int,), "")
        if version != PROFILE_VERSION:
            raise self.error(
                f"format version {version}, but this edgeevo reads version {PROFILE_VERSION}; "
                f"make a new one with {_MAKE_COMMAND}"
            )

        runtime_doc = self.take(doc, "runtime", (dict,), "")
        try:
            runtime = RuntimeSettings.from_json(runtime_doc)
        except (TypeError, ValueError) as exc:
            raise self.error(f"field 'runtime': {exc}") from None

        space = self.space(self.take(doc, "space", (dict,), ""))
        signature = self.take(doc, "signature", (str,), "")
        if signature != space.signature():
            raise self.error(
                f"field 'signature' is {signature!r}, but its 'space' gives "
                f"{space.signature()!r}: the file was changed after it was made"
            )
        error_doc = self.take(doc, "error", (dict, type(None)), "")
        ops = self.take(doc, "ops", (list,), "")
        calibration = self.take(doc, "calibration", (list,), "")
        profile = DeviceProfile(
            name=self.take(doc, "name", (str,), ""),
            created=self.take(doc, "created", (str,), ""),
            seconds=self.take_float(doc, "seconds", ""),
            host=self.host(self.take(doc, "host", (dict,), "")),
            runtime=runtime,
            measurement=self.measurement(self.take(doc, "measurement", (dict,), "")),
            space=space,
            signature=signature,
            overhead_ms=self.take_float(doc, "overhead_ms", ""),
            ops=tuple(self.op(item, f"ops[{i}].") for i, item in enumerate(ops)),
            calibration=tuple(
                self.calibration(item, f"calibration[{i}].") for i, item in enumerate(calibration)
            ),
            predictor=self.predictor(self.take(doc, "predictor", (dict,), "")),
            cross_validation=self.scores(self.take(doc, "cross_validation", (dict,), "")),
            error=None if error_doc is None else self.prediction_error(error_doc),
            version=version,
        )

        # Every op instance of the space needs its timing, or some candidates cannot be predicted.
        timed = {timing.key for timing in profile.ops}
        for key in space_op_keys(space.blocks, space.ops, space.shape):
            if key not in timed:
                raise self.error(f"field 'ops' lacks a timing of op {key.label()}")
        return profile

    def host(self, doc: dict[str, Any]) -> HostFacts:
        where = "host."
        providers = self.take(doc, "providers", (list,), where)
        if not all(isinstance(p, str) for p in providers):
            raise self.error("field 'host.providers' must be an array of strings")
        mhz = self.take(doc, "cpu_mhz", (float, type(None)), where)
        return HostFacts(
            cpu_model=self.take(doc, "cpu_model", (str,), where),
            physical_cores=self.take(doc, "physical_cores", (int, type(None)), where),
            logical_cores=self.take(doc, "logical_cores", (int, type(None)), where),
            cpu_mhz=None if mhz is None else float(mhz),
            governor=self.take(doc, "governor", (str, type(None)), where),
            memory_bytes=self.take(doc, "memory_bytes", (int,), where),
            os=self.take(doc, "os", (str,), where),
            kernel=self.take(doc, "kernel", (str,), where),
            machine=self.take(doc, "machine", (str,), where),
            python=self.take(doc, "python", (str,), where),
            onnxruntime=self.take(doc, "onnxruntime", (str,), where),
            providers=tuple(providers),
        )

    def space(self, doc: dict[str, Any]) -> SpaceDescription:
        where = "space."
        ops = self.take(doc, "ops", (list,), where)
        if not all(isinstance(op, str) for op in ops):
            raise self.error("field 'space.ops' must be an array of strings")
        name = self.take(doc, "space", (str,), where)
        if name != "nasnet":
            raise self.error(f"field 'space.space' is {name!r}; this edgeevo profiles 'nasnet'")
        return SpaceDescription(
            space=name,
            blocks=self.take(doc, "blocks", (int,), where),
            ops=tuple(ops),
            cells=self.take(doc, "cells", (int,), where),
            filters=self.take(doc, "filters", (int,), where),
            resolution=self.take(doc, "resolution", (int,), where),
            classes=self.take(doc, "classes", (int,), where),
        )

    def measurement(self, doc: dict[str, Any]) -> Measurement:
        where = "measurement."
        return Measurement(
            **{name: self.take(doc, name, (int,), where) for name in Measurement.__annotations__}
        )

    def op(self, doc: Any, where: str) -> OpTiming:
        if not isinstance(doc, dict):
            raise self.error(f"field {where[:-1]!r} must be an object")
        key = OpKey(
            kind=self.take(doc, "kind", (str,), where),
            c_in=self.take(doc, "c_in", (int,), where),
            c_out=self.take(doc, "c_out", (int,), where),
            size=self.take(doc, "size", (int,), where),
            stride=self.take(doc, "stride", (int,), where),
        )
        return OpTiming(
            key,
            **{
                name: self.take_float(doc, name, where)
                for name in ("op_ms", "single_ms", "copies_ms", "spread")
            },
        )

    def calibration(self, doc: Any, where: str) -> CalibrationTiming:
        if not isinstance(doc, dict):
            raise self.error(f"field {where[:-1]!r} must be an object")
        try:
            genotype = Genotype.from_json(self.take(doc, "genotype", (dict,), where))
        except GenotypeError as exc:
            raise self.error(f"field '{where}genotype': {exc}") from None
        return CalibrationTiming(
            genotype=genotype,
            median_ms=self.take_float(doc, "median_ms", where),
            p90_ms=self.take_float(doc, "p90_ms", where),
            spread=self.take_float(doc, "spread", where),
            held_out=self.take(doc, "held_out", (bool,), where),
        )

    def predictor(self, doc: dict[str, Any]) -> dict[str, Any]:
        where = "predictor."
        model = self.take(doc, "model", (str,), where)
        if model not in MODELS:
            raise self.error(
                f"field 'predictor.model' is {model!r}; expected one of {', '.join(MODELS)}"
            )
        scales = self.take(doc, "scales", (dict,), where)
        return {
            "model": model,
            "intercept_ms": self.take_float(doc, "intercept_ms", where),
            "per_op_ms": self.take_float(doc, "per_op_ms", where),
            "scales": {kind: self.take_float(scales, kind, where + "scales.") for kind in scales},
        }

    def scores(self, doc: dict[str, Any]) -> dict[str, float]:
        return {name: self.take_float(doc, name, "cross_validation.") for name in doc}

    def prediction_error(self, doc: dict[str, Any]) -> PredictionError:
        where = "error."
        return PredictionError(
            networks=self.take(doc, "networks", (int,), where),
            **{
                name: self.take_float(doc, name, where)
                for name in ("mape", "within_5", "within_10", "worst")
            },
        )
