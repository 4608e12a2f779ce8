"""What a network costs on hardware: FLOPs and parameters, ONNX export, latency, device profiles.

FLOPs are fvcore's count, where one multiply-add is one FLOP; latencies are in milliseconds at
batch 1 on ONNX Runtime's CPU provider. onnx, onnxruntime and fvcore are imported only by the
functions that use them.
"""

from edgeevo.hardware.cost import Cost, count_cost
from edgeevo.hardware.latency import LatencyStats, RuntimeSettings, create_session, measure_latency
from edgeevo.hardware.onnx_export import OnnxParityError, export_onnx
from edgeevo.hardware.profile import (
    PROFILE_VERSION,
    REFERENCE_GENOTYPES,
    DeviceProfile,
    HostFacts,
    ReferenceTiming,
    collect_host_facts,
    load_profile,
    make_profile,
    save_profile,
)

__all__ = [
    "PROFILE_VERSION",
    "REFERENCE_GENOTYPES",
    "Cost",
    "DeviceProfile",
    "HostFacts",
    "LatencyStats",
    "OnnxParityError",
    "ReferenceTiming",
    "RuntimeSettings",
    "collect_host_facts",
    "count_cost",
    "create_session",
    "export_onnx",
    "load_profile",
    "make_profile",
    "measure_latency",
    "save_profile",
]
