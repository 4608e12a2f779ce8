"""Device profiles: what a target PC is and how fast it runs a few fixed reference networks.

A profile is a versioned JSON file written on the target by ``edgeevo profile-device`` and read
by the search wherever it runs. It holds the host's facts, the ONNX Runtime settings every
latency in it was measured under, and the FLOPs, parameters and latency (median and p90, in ms)
of the reference networks, each a fixed genotype at a stated size.

The latency predictor's inputs (per-op timings for every op and tensor shape the space can
produce), its fitted parameters with their error on held-out networks, and the signature of the
search space join this record when the predictor is built, as version 2 of the format.
"""

from __future__ import annotations

import json
import logging
import os
import platform
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgeevo.errors import GenotypeError, ProfileError
from edgeevo.files import write_atomically
from edgeevo.hardware.latency import RuntimeSettings
from edgeevo.space import Genotype

logger = logging.getLogger(__name__)

PROFILE_VERSION = 1

_MAKE_COMMAND = "`edgeevo profile-device` on the target PC"

# The reference networks, from cheap to costly per FLOP: data movement only, separable
# convolutions only, and a cell that uses every op of the space once or more.
REFERENCE_GENOTYPES: dict[str, Genotype] = {
    name: Genotype.from_json(doc)
    for name, doc in {
        "pool": {
            "normal": [
                [0, "identity", 1, "avg_pool_3x3"],
                [1, "max_pool_3x3", 1, "identity"],
                [0, "avg_pool_3x3", 2, "identity"],
                [1, "max_pool_3x3", 0, "avg_pool_3x3"],
                [3, "identity", 4, "max_pool_3x3"],
            ],
            "reduce": [
                [0, "max_pool_3x3", 1, "avg_pool_3x3"],
                [1, "identity", 0, "max_pool_3x3"],
                [2, "avg_pool_3x3", 1, "max_pool_3x3"],
                [3, "identity", 0, "avg_pool_3x3"],
                [2, "max_pool_3x3", 4, "identity"],
            ],
        },
        "sep_conv": {
            "normal": [
                [0, "sep_conv_3x3", 1, "sep_conv_3x3"],
                [1, "sep_conv_5x5", 0, "sep_conv_3x3"],
                [2, "sep_conv_3x3", 1, "sep_conv_5x5"],
                [0, "sep_conv_7x7", 3, "sep_conv_3x3"],
                [1, "sep_conv_3x3", 4, "sep_conv_5x5"],
            ],
            "reduce": [
                [0, "sep_conv_5x5", 1, "sep_conv_3x3"],
                [1, "sep_conv_7x7", 0, "sep_conv_5x5"],
                [2, "sep_conv_3x3", 1, "sep_conv_3x3"],
                [3, "sep_conv_3x3", 0, "sep_conv_7x7"],
                [2, "sep_conv_5x5", 4, "sep_conv_3x3"],
            ],
        },
        "mixed": {
            "normal": [
                [0, "sep_conv_3x3", 1, "identity"],
                [1, "avg_pool_3x3", 0, "dil_sep_conv_3x3"],
                [2, "conv_1x7_7x1", 1, "max_pool_3x3"],
                [0, "sep_conv_5x5", 2, "identity"],
                [1, "sep_conv_7x7", 3, "avg_pool_3x3"],
            ],
            "reduce": [
                [0, "max_pool_3x3", 1, "sep_conv_7x7"],
                [1, "conv_1x7_7x1", 0, "avg_pool_3x3"],
                [2, "identity", 1, "sep_conv_5x5"],
                [0, "dil_sep_conv_3x3", 3, "sep_conv_3x3"],
                [4, "identity", 2, "max_pool_3x3"],
            ],
        },
    }.items()
}


@dataclass(frozen=True)
class HostFacts:
    """The machine a profile was made on.

    ``cpu_mhz`` is the CPU's top frequency where the OS reports it, else its frequency when the
    profile was made; None where neither is known, as are core counts the OS does not report.
    """

    cpu_model: str
    physical_cores: int | None
    logical_cores: int | None
    cpu_mhz: float | None
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
class ReferenceTiming:
    """One reference network, the size it was built at, its cost and its latency in ms."""

    name: str
    genotype: Genotype
    cells: int
    filters: int
    resolution: int
    classes: int
    flops: int
    params: int
    median_ms: float
    p90_ms: float

    def to_json(self) -> dict[str, Any]:
        doc = {item.name: getattr(self, item.name) for item in fields(self)}
        return {**doc, "genotype": self.genotype.to_json()}


@dataclass(frozen=True)
class DeviceProfile:
    """A target PC: its facts, the runtime settings and the reference timings made on it.

    ``created`` is the UTC time the profile was made, in ISO 8601. FLOPs are fvcore's count (one
    multiply-add is one); latencies are in ms at batch 1, median and p90 over the runs.
    """

    name: str
    created: str
    host: HostFacts
    runtime: RuntimeSettings
    reference: tuple[ReferenceTiming, ...]
    version: int = PROFILE_VERSION

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "name": self.name,
            "created": self.created,
            "host": self.host.to_json(),
            "runtime": self.runtime.to_json(),
            "reference": [timing.to_json() for timing in self.reference],
        }


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
        memory_bytes=psutil.virtual_memory().total,
        os=os_name,
        kernel=platform.release(),
        machine=platform.machine(),
        python=platform.python_version(),
        onnxruntime=ort.__version__,
        providers=tuple(ort.get_available_providers()),
    )


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
    *,
    cells: int,
    filters: int,
    resolution: int,
    classes: int,
    repeats: int,
    warmup: int = 10,
) -> DeviceProfile:
    """Profile this machine: its facts and the reference networks timed under ``settings``.

    Each reference network is built with ``cells``, ``filters`` and ``classes``, exported at
    ``resolution`` and run ``warmup`` times untimed and ``repeats`` times timed.
    """
    # Torch, fvcore and onnx only when a profile is made: reading one needs none of them.
    from edgeevo.hardware.cost import count_cost
    from edgeevo.hardware.latency import measure_latency
    from edgeevo.hardware.onnx_export import export_onnx
    from edgeevo.nets import create_network

    host = collect_host_facts()
    reference = []
    for ref_name, genotype in REFERENCE_GENOTYPES.items():
        model = create_network(genotype, cells=cells, filters=filters, classes=classes)
        cost = count_cost(model, resolution)
        stats = measure_latency(
            export_onnx(model, resolution), resolution, settings, warmup=warmup, repeats=repeats
        )
        logger.info(
            "reference %s: %d FLOPs, %d params, median %.3f ms, p90 %.3f ms over %d runs",
            ref_name,
            cost.flops,
            cost.params,
            stats.median_ms,
            stats.p90_ms,
            stats.runs,
        )
        reference.append(
            ReferenceTiming(
                name=ref_name,
                genotype=genotype,
                cells=cells,
                filters=filters,
                resolution=resolution,
                classes=classes,
                flops=cost.flops,
                params=cost.params,
                median_ms=stats.median_ms,
                p90_ms=stats.p90_ms,
            )
        )

    return DeviceProfile(
        name=name,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        host=host,
        runtime=settings,
        reference=tuple(reference),
    )


def save_profile(profile: DeviceProfile, path: str | os.PathLike[str]) -> None:
    """Write ``profile`` as JSON to ``path``, atomically: readers see the old file or the new."""
    text = json.dumps(profile.to_json(), indent=2, allow_nan=False) + "\n"
    write_atomically(Path(path), text)


def load_profile(path: str | os.PathLike[str]) -> DeviceProfile:
    """Read a profile written by :func:`save_profile`.

    ProfileError, with a one-line message naming the file and what was expected, when the file is
    missing, is not JSON, is not a JSON object, lacks a field or holds one of the wrong type, or
    is of another format version.
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

    return _Reader(path).profile(doc)


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

        references = self.take(doc, "reference", (list,), "")
        return DeviceProfile(
            name=self.take(doc, "name", (str,), ""),
            created=self.take(doc, "created", (str,), ""),
            host=self.host(self.take(doc, "host", (dict,), "")),
            runtime=runtime,
            reference=tuple(
                self.timing(item, f"reference[{i}].") for i, item in enumerate(references)
            ),
            version=version,
        )

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
            memory_bytes=self.take(doc, "memory_bytes", (int,), where),
            os=self.take(doc, "os", (str,), where),
            kernel=self.take(doc, "kernel", (str,), where),
            machine=self.take(doc, "machine", (str,), where),
            python=self.take(doc, "python", (str,), where),
            onnxruntime=self.take(doc, "onnxruntime", (str,), where),
            providers=tuple(providers),
        )

    def timing(self, doc: Any, where: str) -> ReferenceTiming:
        if not isinstance(doc, dict):
            raise self.error(f"field {where[:-1]!r} must be an object")
        try:
            genotype = Genotype.from_json(self.take(doc, "genotype", (dict,), where))
        except GenotypeError as exc:
            raise self.error(f"field '{where}genotype': {exc}") from None
        return ReferenceTiming(
            name=self.take(doc, "name", (str,), where),
            genotype=genotype,
            cells=self.take(doc, "cells", (int,), where),
            filters=self.take(doc, "filters", (int,), where),
            resolution=self.take(doc, "resolution", (int,), where),
            classes=self.take(doc, "classes", (int,), where),
            flops=self.take(doc, "flops", (int,), where),
            params=self.take(doc, "params", (int,), where),
            median_ms=float(self.take(doc, "median_ms", (float,), where)),
            p90_ms=float(self.take(doc, "p90_ms", (float,), where)),
        )
