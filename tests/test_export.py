"""``edgeevo export`` on the small state of test_report: metadata, ONNX Runtime parity, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from report_state import assert_one_line_error, build_state, run

from edgeevo.config import DATA_ROOT_ENV
from edgeevo.report.export import METADATA_KEYS, export_candidate
from edgeevo.store import Store


@pytest.fixture
def state(tmp_path):
    return build_state(tmp_path / "state.db")


@pytest.mark.slow
def test_export_writes_a_trained_model_with_its_metadata(state, tmp_path, data_root, monkeypatch):
    import onnx
    import onnxruntime as ort
    import torch

    from edgeevo.data import CIFAR10_MEAN, CIFAR10_STD, load_cifar10_test

    monkeypatch.setenv(DATA_ROOT_ENV, str(data_root))
    out = tmp_path / "models" / "seven.onnx"
    exported = export_candidate(state, 7, out)

    # The metadata: the candidate's figures from the search, and the final training's.
    model = onnx.load(out)
    onnx.checker.check_model(model, full_check=True)
    props = {p.key: p.value for p in model.metadata_props}
    assert tuple(props) == METADATA_KEYS
    with Store.open(state, readonly=True) as store:
        candidate = store.candidate(7)
    assert props["edgeevo.candidate_id"] == "7"
    assert json.loads(props["edgeevo.genotype"]) == json.loads(candidate.genotype.dumps())
    assert props["edgeevo.latency_ms"] == "0.45"
    assert props["edgeevo.latency_source"] == "measured"
    assert props["edgeevo.profile"] == "local"
    assert props["edgeevo.flops"] == "3500000" and props["edgeevo.params"] == "95000"
    assert props["edgeevo.search_accuracy"] == "0.33"
    assert props["edgeevo.validation_images"] == "48"  # [final] valid
    assert props["edgeevo.test_images"] == "10000"  # the whole test split, once
    assert float(props["edgeevo.validation_accuracy"]) == exported.validation_accuracy
    assert float(props["edgeevo.test_accuracy"]) == exported.test_accuracy
    assert 0.0 <= exported.test_accuracy <= 1.0
    assert json.loads(props["edgeevo.final_training"])["train"] == 96
    assert json.loads(props["edgeevo.network"]) == {
        "cells": 1,
        "filters": 4,
        "resolution": 8,
        "classes": 10,
    }
    described = json.loads(props["edgeevo.input"])
    assert described["shape"] == [1, 3, 8, 8] and described["mean"] == list(CIFAR10_MEAN)

    # ONNX Runtime computes what the trained PyTorch network computes, on real test images.
    images, _ = load_cifar10_test(data_root, resolution=8)
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    batch = (images[:16].float() / 255.0 - mean) / std  # (16, 3, 8, 8)
    with torch.no_grad():
        expected = exported.model(batch).numpy()
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    # One image a run: the model is exported at batch 1.
    actual = np.concatenate(
        [session.run(None, {"image": batch[i : i + 1].numpy()})[0] for i in range(16)]
    )
    np.testing.assert_allclose(actual, expected, atol=1e-4)
    assert exported.parity_images == 64 and exported.parity_max_diff <= 1e-3


@pytest.mark.slow
def test_export_command_prints_where_the_model_went(state, tmp_path, data_root, monkeypatch):
    out = tmp_path / "one.onnx"
    monkeypatch.setenv(DATA_ROOT_ENV, str(data_root))
    code, stdout, err = run("export", "--state", str(state), "1", "--out", str(out))
    assert code == 0, err
    assert stdout.startswith(f"wrote {out}: candidate [1], validation accuracy ")
    assert "(48 images)" in stdout and "(10000 images)" in stdout
    assert "latency 0.400 ms (measured, profile local)" in stdout
    assert out.stat().st_size > 1000


@pytest.mark.parametrize(
    ("candidate", "needles"),
    [
        ("42", ["has no candidate [42]; its candidates are 1 to 9"]),
        ("5", ["candidate [5] failed in the search (TrainingDiverged: loss nan)"]),
        ("3", ["candidate [3] is infeasible (flops 5,500,000 > 5,000,000)"]),
        ("9", ["candidate [9] is running, not evaluated yet"]),
    ],
)
def test_export_refuses_candidates_that_were_not_trained(state, tmp_path, candidate, needles):
    out = tmp_path / "m.onnx"
    code, stdout, err = run("export", "--state", str(state), candidate, "--out", str(out))
    assert_one_line_error(code, err, *needles)
    assert stdout == "" and not out.exists()


def test_export_on_a_missing_state_and_over_the_state(tmp_path, state):
    code, _, err = run("export", "--state", str(tmp_path / "no.db"), "1", "--out", "m.onnx")
    assert_one_line_error(code, err, "no.db", "does not exist")
    code, _, err = run("export", "--state", str(state), "1", "--out", str(state))
    assert_one_line_error(code, err, "is the state file itself")


def test_export_with_a_config_of_another_network_is_refused(tmp_path, state):
    config = tmp_path / "other.toml"
    config.write_text("[network]\ncells = 2\nfilters = 4\nresolution = 8\n")
    code, _, err = run(
        "export", "--state", str(state), "1", "--out", str(tmp_path / "m.onnx"),
        "--config", str(config),
    )  # fmt: skip
    assert_one_line_error(code, err, "other.toml: [network]", "the shape it was timed at")
