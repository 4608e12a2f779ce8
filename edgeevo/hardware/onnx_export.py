"""Export a network to ONNX and check that ONNX Runtime computes what PyTorch computes."""

from __future__ import annotations

import io
import logging
import warnings

import numpy as np
import torch
from torch import nn

logger = logging.getLogger(__name__)

# Opset of the exported graphs, fixed so that a model file does not change with the torch release.
ONNX_OPSET = 17

INPUT_NAME = "image"
OUTPUT_NAME = "logits"


class OnnxParityError(RuntimeError):
    """ONNX Runtime's output of an exported network differs from PyTorch's by more than allowed."""


def export_onnx(model: nn.Module, resolution: int, *, atol: float = 1e-4) -> bytes:
    """The ONNX model of ``model`` at batch 1, checked and compared with PyTorch.

    The graph takes ``image`` of shape ``(1, 3, resolution, resolution)`` and gives ``logits``.
    It is exported in eval mode (batch norm with its running statistics, folded into the
    convolutions), passes ``onnx.checker``, and ONNX Runtime's logits on a seeded random image
    lie within ``atol`` of PyTorch's, else :class:`OnnxParityError`. The model is put back in
    the mode it was in.
    """
    import onnx

    image = torch.randn(1, 3, resolution, resolution, generator=torch.Generator().manual_seed(0))

    was_training = model.training
    model.eval()
    try:
        onnx_bytes = export_graph(model, (image,), input_names=[INPUT_NAME])
        with torch.no_grad():
            expected = model(image).numpy()
    finally:
        model.train(was_training)

    onnx.checker.check_model(onnx.load_from_string(onnx_bytes), full_check=True)

    # Parity: a wrong export (an op exported with other semantics) shows as different logits.
    actual = _run_onnx(onnx_bytes, image.numpy())
    diff = float(np.max(np.abs(actual - expected)))
    if not diff <= atol:  # also catches NaN
        raise OnnxParityError(
            f"ONNX Runtime's logits differ from PyTorch's by up to {diff:.3g} (allowed: {atol:g})"
            f" at resolution {resolution}"
        )
    logger.debug(
        "exported %d bytes of ONNX; largest difference to PyTorch %.3g", len(onnx_bytes), diff
    )
    return onnx_bytes


def export_graph(
    model: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    *,
    input_names: list[str] | None = None,
) -> bytes:
    """``model`` on ``inputs`` as ONNX bytes, unchecked; inputs are named ``input0``, ... unless
    ``input_names`` says otherwise, the output ``logits``."""
    # The TorchScript-based exporter takes a few tenths of a second here, the torch.export-based
    # one (dynamo=True) several seconds, and both export every op of the space. Torch marks the
    # first deprecated with two warnings that say nothing about the model. Other warnings pass.
    # When torch drops it, dynamo=True takes its place.
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message="You are using the legacy TorchScript-based ONNX export",
            category=DeprecationWarning,
        )
        warnings.filterwarnings(
            "ignore",
            message="The feature will be removed",
            category=DeprecationWarning,
            module=r"torch\.onnx\.",
        )
        # Torch lowers a constant pad (the factorized reduction's shift) to Pad fed by a small
        # constant subgraph that its folding pass leaves, saying so once per pass. ONNX Runtime
        # folds that subgraph at every optimization level but "disable".
        warnings.filterwarnings(
            "ignore",
            message="Constant folding - Only steps=1 can be constant folded",
            category=UserWarning,
        )
        torch.onnx.export(
            model,
            inputs,
            buffer,
            dynamo=False,
            opset_version=ONNX_OPSET,
            input_names=input_names or [f"input{i}" for i in range(len(inputs))],
            output_names=[OUTPUT_NAME],
        )
    return buffer.getvalue()


def _run_onnx(onnx_bytes: bytes, image: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    (logits,) = session.run([OUTPUT_NAME], {INPUT_NAME: image})
    return np.asarray(logits)
