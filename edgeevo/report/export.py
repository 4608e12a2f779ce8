"""``edgeevo export``: one candidate of a search as a trained ONNX model, ready for the target.

    state -> candidate (trained in the search, within the limits) -> network of the searched
        shape, seeded as in the search -> final training ([final]: longer, whole training pool)
        -> validation accuracy -> test accuracy, the one time the test split is read
        -> ONNX (checked, with metadata) -> ONNX Runtime against PyTorch on test images -> file

The network keeps the shape it was searched and timed at (cells, filters, resolution), so the
latency written into the model is the one the search obtained for it. The metadata keys are
listed in :data:`METADATA_KEYS`; every value is a string, as ONNX stores them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgeevo import __version__
from edgeevo.config import Config, FinalSection, NetworkSection, parse_config
from edgeevo.errors import EdgeevoError, StateError
from edgeevo.result import Result
from edgeevo.store import Store

logger = logging.getLogger(__name__)

CIFAR10_LABELS = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

METADATA_KEYS = (
    "edgeevo.version",
    "edgeevo.candidate_id",
    "edgeevo.genotype",
    "edgeevo.network",
    "edgeevo.input",
    "edgeevo.labels",
    "edgeevo.validation_accuracy",
    "edgeevo.validation_images",
    "edgeevo.test_accuracy",
    "edgeevo.test_images",
    "edgeevo.search_accuracy",
    "edgeevo.latency_ms",
    "edgeevo.latency_p90_ms",
    "edgeevo.latency_source",
    "edgeevo.profile",
    "edgeevo.flops",
    "edgeevo.params",
    "edgeevo.final_training",
)

# How many test images ONNX Runtime's logits are compared on, one image at a time (batch 1,
# as the model is exported), and the largest difference to PyTorch's logits allowed.
PARITY_IMAGES = 64
PARITY_ATOL = 1e-3


@dataclass(frozen=True)
class Exported:
    """What :func:`export_candidate` made: the file, its figures and the trained network."""

    path: Path
    candidate: Result
    validation_accuracy: float
    validation_images: int
    test_accuracy: float
    test_images: int
    parity_max_diff: float  # largest |ONNX Runtime - PyTorch| over the compared logits
    parity_images: int
    metadata: dict[str, str]
    model: Any  # the trained torch module, on the CPU, in eval mode


def read_candidate(state_path: Path, candidate_id: int) -> tuple[Result, Config]:
    """The candidate and the search's config, checked: StateError unless the candidate was
    trained in the search (an unknown id, a failed or infeasible or unfinished one)."""
    with Store.open(state_path, readonly=True) as store, store.snapshot():
        stored = store.meta("config")
        candidate = store.candidate(candidate_id)
        last = store.next_id() - 1
    where = f"state file {str(state_path)!r}"
    if candidate is None:
        known = f"its candidates are 1 to {last}" if last else "it holds no candidate yet"
        raise StateError(f"{where} has no candidate [{candidate_id}]; {known}")
    if candidate.status == "failed":
        raise StateError(
            f"candidate [{candidate_id}] failed in the search ({candidate.error}); "
            "expected a trained candidate (status ok)"
        )
    if candidate.status == "infeasible":
        raise StateError(
            f"candidate [{candidate_id}] is infeasible ({'; '.join(candidate.violations)}) and "
            "was never trained; expected a candidate within the hard limits"
        )
    if candidate.status != "ok":
        raise StateError(
            f"candidate [{candidate_id}] is {candidate.status}, not evaluated yet; expected a "
            "trained candidate (status ok)"
        )
    if not isinstance(stored, dict):
        raise StateError(f"{where} holds no search config")
    try:
        config = parse_config(stored, source=f"{where} (stored config)")
    except EdgeevoError as exc:
        raise StateError(str(exc)) from None
    return candidate, config


def export_candidate(
    state_path: Path,
    candidate_id: int,
    out: Path,
    *,
    config: Config | None = None,
) -> Exported:
    """Train candidate ``candidate_id`` of the search in ``state_path`` with the final training
    settings and write it to ``out`` as ONNX with metadata.

    ``config`` replaces the stored config's [final] section and data location (a [final]
    section chosen after the search); its network must be the stored one, since the latency
    belongs to that shape.
    """
    from edgeevo.files import check_output_path, write_atomically

    # Every refusal comes before torch is imported and the data is loaded.
    check_output_path(out, protect=(state_path,))
    candidate, stored = read_candidate(state_path, candidate_id)
    if config is not None and config.network != stored.network:
        raise EdgeevoError(
            f"{config.source}: [network] {asdict(config.network)} differs from the search's "
            f"{asdict(stored.network)}; the candidate is built at the shape it was timed at"
        )

    import torch

    from edgeevo.data import load_cifar10_split, load_cifar10_test
    from edgeevo.hardware.onnx_export import export_onnx
    from edgeevo.nets import create_network
    from edgeevo.train import evaluate_accuracy, select_device, train_and_evaluate

    config = config or stored
    final, shape, data = config.final, stored.network, config.data

    split = load_cifar10_split(
        config.data_root,
        train=final.train,
        valid=final.valid,
        seed=stored.data.split_seed,
        resolution=shape.resolution,
        download=data.download,
        verify=data.verify,
    )
    test_images, test_labels = load_cifar10_test(
        config.data_root, resolution=shape.resolution, download=data.download, verify=data.verify
    )

    # The same initial weights as in the search: the seed is the candidate's.
    torch.manual_seed(candidate.seed)
    model = create_network(
        candidate.genotype, cells=shape.cells, filters=shape.filters, classes=shape.classes
    )
    device = select_device()
    logger.info(
        "[%d] final training: %d epochs on %d images at %dx%d on %s",
        candidate_id,
        final.epochs,
        final.train,
        shape.resolution,
        shape.resolution,
        device,
    )
    outcome = train_and_evaluate(model, split, final, device=device, seed=candidate.seed)
    test_accuracy = evaluate_accuracy(model, test_images, test_labels, split, device)
    logger.info(
        "[%d] validation accuracy %.2f%% on %d images, test accuracy %.2f%% on %d, %.0f s",
        candidate_id,
        100 * outcome.accuracy,
        len(split.valid_labels),
        100 * test_accuracy,
        len(test_labels),
        outcome.seconds,
    )

    model = model.cpu().eval()
    metadata = _metadata(
        candidate,
        shape,
        final,
        validation=(outcome.accuracy, len(split.valid_labels)),
        test=(test_accuracy, len(test_labels)),
    )
    onnx_bytes = _with_metadata(export_onnx(model, shape.resolution), metadata)
    parity_images = test_images[:PARITY_IMAGES]
    diff = _parity(model, onnx_bytes, parity_images, split)
    write_atomically(out, onnx_bytes)
    return Exported(
        path=out,
        candidate=candidate,
        validation_accuracy=outcome.accuracy,
        validation_images=len(split.valid_labels),
        test_accuracy=test_accuracy,
        test_images=len(test_labels),
        parity_max_diff=diff,
        parity_images=len(parity_images),
        metadata=metadata,
        model=model,
    )


def _metadata(
    candidate: Result,
    shape: NetworkSection,
    final: FinalSection,
    *,
    validation: tuple[float, int],
    test: tuple[float, int],
) -> dict[str, str]:
    """The model's metadata_props, under :data:`METADATA_KEYS`; numbers as Python writes them,
    an empty string for a figure the search did not obtain."""
    from edgeevo.data import CIFAR10_MEAN, CIFAR10_STD

    def number(value: float | int | None) -> str:
        return "" if value is None else repr(value)

    return {
        "edgeevo.version": __version__,
        "edgeevo.candidate_id": str(candidate.candidate_id),
        "edgeevo.genotype": candidate.genotype.dumps(),
        "edgeevo.network": json.dumps(asdict(shape)),
        "edgeevo.input": json.dumps(
            {
                "name": "image",
                "shape": [1, 3, shape.resolution, shape.resolution],
                "dtype": "float32",
                "layout": "RGB, values scaled to 0..1, then (x - mean) / std per channel",
                "mean": list(CIFAR10_MEAN),
                "std": list(CIFAR10_STD),
            }
        ),
        "edgeevo.labels": json.dumps(list(CIFAR10_LABELS)),
        "edgeevo.validation_accuracy": number(validation[0]),
        "edgeevo.validation_images": str(validation[1]),
        "edgeevo.test_accuracy": number(test[0]),
        "edgeevo.test_images": str(test[1]),
        "edgeevo.search_accuracy": number(candidate.accuracy),
        "edgeevo.latency_ms": number(candidate.latency_ms),
        "edgeevo.latency_p90_ms": number(candidate.latency_p90_ms),
        "edgeevo.latency_source": candidate.latency_source or "",
        "edgeevo.profile": candidate.profile or "",
        "edgeevo.flops": number(candidate.flops),
        "edgeevo.params": number(candidate.params),
        "edgeevo.final_training": json.dumps(asdict(final)),
    }


def _with_metadata(onnx_bytes: bytes, metadata: dict[str, str]) -> bytes:
    import onnx

    model = onnx.load_from_string(onnx_bytes)
    onnx.helper.set_model_props(model, metadata)
    model.doc_string = (
        "Image classifier found by edgeevo. Accuracies are fractions 0..1; latency_ms is the "
        "median at batch 1 in ms, obtained as latency_source says; flops is fvcore's count at "
        "batch 1, one multiply-add counting as one."
    )
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def _parity(model: Any, onnx_bytes: bytes, images: Any, split: Any) -> float:
    """The largest |ONNX Runtime - PyTorch| over the logits of ``images``, one at a time;
    OnnxParityError above :data:`PARITY_ATOL`."""
    import numpy as np
    import torch

    from edgeevo.data import normalize
    from edgeevo.hardware.latency import RuntimeSettings, create_session
    from edgeevo.hardware.onnx_export import INPUT_NAME, OUTPUT_NAME, OnnxParityError

    session = create_session(onnx_bytes, RuntimeSettings())
    largest = 0.0
    with torch.no_grad():
        batch = normalize(images, split)  # (B, 3, R, R) float
        expected = model(batch).numpy()  # (B, classes)
    for index in range(len(batch)):
        image = batch[index : index + 1].numpy()  # (1, 3, R, R)
        (logits,) = session.run([OUTPUT_NAME], {INPUT_NAME: image})
        diff = float(np.max(np.abs(logits - expected[index : index + 1])))
        if not diff <= PARITY_ATOL:  # also catches NaN
            raise OnnxParityError(
                f"ONNX Runtime's logits differ from PyTorch's by {diff:.3g} on test image "
                f"{index} (allowed: {PARITY_ATOL:g})"
            )
        largest = max(largest, diff)
    return largest
