"""What a network costs on hardware: FLOPs and parameters, ONNX export, latency, device profiles
and the latency predictor.

FLOPs are fvcore's count, where one multiply-add is one FLOP; latencies are in milliseconds at
batch 1 on ONNX Runtime's CPU provider. onnx, onnxruntime and fvcore are imported only by the
functions that use them.
"""

from edgeevo.hardware.cost import Cost, count_cost
from edgeevo.hardware.latency import LatencyStats, RuntimeSettings, create_session, measure_latency
from edgeevo.hardware.onnx_export import OnnxParityError, export_onnx
from edgeevo.hardware.predictor import LatencyPredictor, OpKey, PredictionError, network_ops
from edgeevo.hardware.profile import (
    PROFILE_VERSION,
    DeviceProfile,
    HostFacts,
    SpaceDescription,
    load_profile,
    save_profile,
)
from edgeevo.hardware.profiling import collect_host_facts, make_profile

__all__ = [
    "PROFILE_VERSION",
    "Cost",
    "DeviceProfile",
    "HostFacts",
    "LatencyPredictor",
    "LatencyStats",
    "OnnxParityError",
    "OpKey",
    "PredictionError",
    "RuntimeSettings",
    "SpaceDescription",
    "collect_host_facts",
    "count_cost",
    "create_session",
    "export_onnx",
    "load_profile",
    "make_profile",
    "measure_latency",
    "network_ops",
    "save_profile",
]
