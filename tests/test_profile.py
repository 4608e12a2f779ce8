"""Device profiles: made, saved atomically, read back; every malformed file gets a clear error."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import onnxruntime as ort
import pytest
from typer.testing import CliRunner

from edgeevo.cli import app
from edgeevo.errors import EdgeevoError, ProfileError
from edgeevo.hardware.latency import RuntimeSettings
from edgeevo.hardware.predictor import PredictionError, network_ops, space_op_keys
from edgeevo.hardware.profile import (
    PROFILE_VERSION,
    CalibrationTiming,
    DeviceProfile,
    HostFacts,
    Measurement,
    OpTiming,
    SpaceDescription,
    load_profile,
    save_profile,
)
from edgeevo.hardware.profiling import collect_host_facts, make_profile
from edgeevo.space import Genotype

SPACE = SpaceDescription(
    space="nasnet",
    blocks=2,
    ops=("identity", "max_pool_3x3", "sep_conv_3x3"),
    cells=1,
    filters=4,
    resolution=8,
    classes=10,
)

GENOTYPE = Genotype.from_json(
    {
        "normal": [[0, "sep_conv_3x3", 1, "identity"], [2, "max_pool_3x3", 1, "identity"]],
        "reduce": [[0, "max_pool_3x3", 1, "sep_conv_3x3"], [2, "identity", 0, "identity"]],
    }
)


@pytest.fixture(scope="module")
def measured() -> DeviceProfile:
    return make_profile(
        "test-pc",
        RuntimeSettings(intra_op_threads=1),
        SPACE,
        calibration=6,
        measurement=Measurement(warmup=1, op_repeats=4, network_repeats=4, rounds=2, copies=2),
    )


def written_by_hand() -> DeviceProfile:
    """A profile with made-up numbers, for the cases that need no measuring: every op takes
    0.01 ms, a run 0.02 ms, and the predictor is the plain sum."""
    host = HostFacts(
        cpu_model="Test CPU",
        physical_cores=4,
        logical_cores=8,
        cpu_mhz=None,
        governor="performance",
        memory_bytes=16 * 2**30,
        os="Test OS",
        kernel="1.0",
        machine="x86_64",
        python="3.11.0",
        onnxruntime="1.20.0",
        providers=("CPUExecutionProvider",),
    )
    keys = space_op_keys(SPACE.blocks, SPACE.ops, SPACE.shape)
    return DeviceProfile(
        name="hand",
        created="2025-01-01T00:00:00+00:00",
        seconds=12.5,
        host=host,
        runtime=RuntimeSettings(),
        measurement=Measurement(),
        space=SPACE,
        signature=SPACE.signature(),
        overhead_ms=0.02,
        ops=tuple(OpTiming(key, 0.01, 0.03, 0.1, 0.1) for key in keys),
        calibration=(CalibrationTiming(GENOTYPE, 1.5, 2.0, 0.2, held_out=True),),
        predictor={"model": "sum", "intercept_ms": 0.02, "per_op_ms": 0.0, "scales": {}},
        cross_validation={},
        error=PredictionError(1, 10.0, 0.0, 100.0, 10.0),
    )


def test_made_profile_describes_this_machine_and_space(measured: DeviceProfile) -> None:
    assert measured.version == PROFILE_VERSION == 2
    assert measured.name == "test-pc"
    created = datetime.fromisoformat(measured.created)
    assert created.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - created) < timedelta(minutes=10)
    assert 0 < measured.seconds < 600
    assert measured.host.onnxruntime == ort.__version__
    assert "CPUExecutionProvider" in measured.host.providers
    assert measured.runtime == RuntimeSettings(intra_op_threads=1)
    assert measured.space == SPACE
    assert measured.signature == SPACE.signature()
    assert measured.overhead_ms > 0

    # Every op instance of the space, timed; an op adds what its copies add.
    assert [t.key for t in measured.ops] == space_op_keys(2, SPACE.ops, SPACE.shape)
    for timing in measured.ops:
        assert timing.op_ms == max(timing.copies_ms - timing.single_ms, 0.0)
        assert timing.single_ms > 0

    # Six distinct calibration networks, every third held out and counted in the error.
    assert len({t.genotype.key() for t in measured.calibration}) == 6
    assert [t.held_out for t in measured.calibration] == [False, False, True] * 2
    assert all(0 < t.median_ms <= t.p90_ms for t in measured.calibration)
    assert measured.error is not None and measured.error.networks == 2
    assert measured.predictor["model"] in ("sum", "scaled", "per_kind")


def test_the_profile_predicts_from_its_timings(measured: DeviceProfile) -> None:
    hand = written_by_hand()
    ops = network_ops(GENOTYPE, SPACE.shape)
    assert hand.predict(GENOTYPE) == pytest.approx(0.02 + 0.01 * sum(ops.values()))
    assert measured.predict(GENOTYPE) == measured.latency_predictor().predict_ops(ops)


def test_host_facts() -> None:
    host = collect_host_facts()
    assert host.cpu_model
    assert host.logical_cores is None or host.logical_cores >= 1
    assert host.physical_cores is None or host.physical_cores >= 1
    assert host.cpu_mhz is None or host.cpu_mhz > 0
    assert host.governor is None or host.governor.isprintable()
    assert host.memory_bytes > 0
    assert host.python.count(".") == 2
    assert host.onnxruntime == ort.__version__


def test_round_trip(measured: DeviceProfile, tmp_path: Path) -> None:
    path = tmp_path / "profiles" / "test-pc.json"
    save_profile(measured, path)
    assert load_profile(path, SPACE) == measured
    assert os.listdir(path.parent) == ["test-pc.json"]
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_save_replaces_an_existing_profile(tmp_path: Path) -> None:
    path = tmp_path / "pc.json"
    path.write_text("old")
    save_profile(written_by_hand(), path)
    assert load_profile(path) == written_by_hand()


def test_failed_save_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "pc.json"
    path.write_text("old")

    def refuse(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(EdgeevoError, match=r"cannot write '.*pc.json': disk full"):
        save_profile(written_by_hand(), path)
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["pc.json"]


def test_integer_frequency_and_latency_read_as_floats(tmp_path: Path) -> None:
    doc = written_by_hand().to_json()
    doc["host"]["cpu_mhz"] = 3000
    doc["calibration"][0]["median_ms"] = 2
    path = tmp_path / "pc.json"
    path.write_text(json.dumps(doc))

    profile = load_profile(path)
    assert profile.host.cpu_mhz == 3000.0
    assert isinstance(profile.host.cpu_mhz, float)
    assert isinstance(profile.calibration[0].median_ms, float)


def test_a_profile_of_another_space_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pc.json"
    save_profile(written_by_hand(), path)
    other = SpaceDescription("nasnet", 2, SPACE.ops, 1, 8, 8, 10)

    with pytest.raises(ProfileError) as caught:
        load_profile(path, other)
    assert str(caught.value) == (
        f"device profile {path} was made for another space: nasnet space with 2 blocks and ops "
        "identity,max_pool_3x3,sep_conv_3x3, network of 1 cells per stage, 4 filters, 8px, 10 "
        f"classes (signature {SPACE.signature()}), but the config has nasnet space with 2 blocks "
        "and ops identity,max_pool_3x3,sep_conv_3x3, network of 1 cells per stage, 8 filters, "
        f"8px, 10 classes (signature {other.signature()}); make one for this config with "
        "`edgeevo profile-device` on the target PC, passing it --config"
    )


def _drop(doc: dict[str, Any], *keys: str | int) -> None:
    for key in keys[:-1]:
        doc = doc[key]
    del doc[keys[-1]]


def _set(doc: dict[str, Any], value: Any, *keys: str | int) -> None:
    for key in keys[:-1]:
        doc = doc[key]
    doc[keys[-1]] = value


MALFORMED_DOCS = [
    pytest.param(
        lambda d: _drop(d, "host", "cpu_model"),
        "missing field 'host.cpu_model' (a string)",
        id="missing-host-field",
    ),
    pytest.param(
        lambda d: _drop(d, "calibration"),
        "missing field 'calibration' (an array)",
        id="missing-top-field",
    ),
    pytest.param(
        lambda d: _drop(d, "calibration", 0, "p90_ms"),
        "missing field 'calibration[0].p90_ms' (a number)",
        id="missing-timing-field",
    ),
    pytest.param(
        lambda d: _drop(d, "ops", 3, "op_ms"),
        "missing field 'ops[3].op_ms' (a number)",
        id="missing-op-field",
    ),
    pytest.param(
        lambda d: _drop(d, "space", "blocks"),
        "missing field 'space.blocks' (an integer)",
        id="missing-space-field",
    ),
    pytest.param(
        lambda d: _drop(d, "version"),
        "missing field 'version' (an integer)",
        id="missing-version",
    ),
    pytest.param(
        lambda d: _set(d, 1, "version"),
        "format version 1, but this edgeevo reads version 2; "
        "make a new one with `edgeevo profile-device` on the target PC",
        id="older-version",
    ),
    pytest.param(
        lambda d: _set(d, "2", "version"),
        "field 'version' must be an integer, got a string",
        id="version-as-string",
    ),
    pytest.param(
        lambda d: _set(d, "four", "host", "physical_cores"),
        "field 'host.physical_cores' must be an integer or null, got a string",
        id="wrong-type",
    ),
    pytest.param(
        lambda d: _set(d, 1, "calibration", 0, "held_out"),
        "field 'calibration[0].held_out' must be true or false, got an integer",
        id="int-for-bool",
    ),
    pytest.param(
        lambda d: _set(d, True, "ops", 0, "c_in"),
        "field 'ops[0].c_in' must be an integer, got true or false",
        id="bool-for-int",
    ),
    pytest.param(
        lambda d: _set(d, ["CPU", 1], "host", "providers"),
        "field 'host.providers' must be an array of strings",
        id="providers-not-strings",
    ),
    pytest.param(
        lambda d: _set(d, "pool", "calibration", 0),
        "field 'calibration[0]' must be an object",
        id="timing-not-object",
    ),
    pytest.param(
        lambda d: _set(d, 0, "runtime", "intra_op_threads"),
        "field 'runtime': intra_op_threads must be a whole number of threads >= 1, got 0",
        id="runtime-value",
    ),
    pytest.param(
        lambda d: _set(d, 1, "runtime", "threads"),
        "field 'runtime': runtime settings need exactly the keys",
        id="runtime-unknown-key",
    ),
    pytest.param(
        lambda d: _set(d, "conv_9x9", "calibration", 0, "genotype", "normal", 0, 1),
        "field 'calibration[0].genotype': unknown op 'conv_9x9' in normal block 0; known ops: ",
        id="genotype-op",
    ),
    pytest.param(
        lambda d: _set(d, 3, "space", "blocks"),
        "field 'signature' is ",
        id="space-changed-after-signing",
    ),
    pytest.param(
        lambda d: d["ops"].pop(0),
        "field 'ops' lacks a timing of op add/4->4/8px/s1",
        id="op-missing",
    ),
    pytest.param(
        lambda d: _set(d, "forest", "predictor", "model"),
        "field 'predictor.model' is 'forest'; expected one of sum, scaled, per_kind",
        id="unknown-model",
    ),
]


@pytest.mark.parametrize(("damage", "message"), MALFORMED_DOCS)
def test_malformed_profile(tmp_path: Path, damage: Any, message: str) -> None:
    doc = written_by_hand().to_json()
    damage(doc)
    path = tmp_path / "pc.json"
    path.write_text(json.dumps(doc))

    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith(f"device profile {path}: {message}")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"version": 2,', "is not JSON: Expecting property name enclosed in double quotes "),
        (b"", "is not JSON: Expecting value at line 1 column 1"),
        (b"\xff\xfe{}", "is not JSON: not UTF-8 text"),
        (b"[1, 2]", "must be a JSON object, got an array"),
        (b'"profile"', "must be a JSON object, got a string"),
    ],
)
def test_unreadable_profile(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "pc.json"
    path.write_bytes(content)

    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith(f"device profile {path} {message}")


def test_missing_profile_names_the_command(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.json"
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    assert str(caught.value) == (
        f"device profile {path} does not exist; "
        "make one with `edgeevo profile-device` on the target PC"
    )


def test_profile_path_that_is_a_folder(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"^cannot read device profile .*: Is a directory$"):
        load_profile(tmp_path)


# One config and one damage per kind of mistake the search can meet in a profile it is given.
CLI_CASES = [
    pytest.param(lambda d: _drop(d, "ops"), "missing field 'ops'", id="missing-field"),
    pytest.param(lambda d: _set(d, 1, "version"), "format version 1", id="wrong-version"),
    pytest.param(
        lambda d: _set(d, 8, "space", "filters"), "field 'signature' is", id="tampered-space"
    ),
    pytest.param(None, "was made for another space", id="signature-mismatch"),
    pytest.param("not json", "is not JSON", id="not-json"),
]


@pytest.mark.parametrize(("damage", "message"), CLI_CASES)
def test_serve_refuses_a_bad_profile_on_one_line_with_exit_code_2(
    tmp_path: Path, damage: Any, message: str
) -> None:
    path = tmp_path / "pc.json"
    doc = written_by_hand().to_json()
    if isinstance(damage, str):
        path.write_text(damage)
    else:
        if damage is not None:
            damage(doc)
        path.write_text(json.dumps(doc))
    filters = 4 if damage is not None else 8  # the profile was made for 4 filters
    config = tmp_path / "search.toml"
    config.write_text(
        f"[space]\nblocks = 2\nops = {json.dumps(list(SPACE.ops))}\n"
        f"[network]\ncells = 1\nfilters = {filters}\nresolution = 8\n"
        f'[data]\nroot = "{tmp_path}"\ndownload = false\n'
        f'[device]\nprofile = "{path}"\n'
        f'[state]\npath = "{tmp_path / "state.db"}"\n'
    )

    result = CliRunner().invoke(app, ["serve", "--config", str(config)])

    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"edgeevo: error: device profile {path}")
    assert message in lines[0]
    assert not (tmp_path / "state.db").exists()


def test_predicting_without_a_profile_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "search.toml"
    config.write_text(f'[state]\npath = "{tmp_path / "state.db"}"\n')

    result = CliRunner().invoke(app, ["serve", "--config", str(config)])

    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f'edgeevo: error: {config}: [device] latency = "predict" needs a device profile in '
        "[device] profile (make one on the target with `edgeevo profile-device`), or set "
        'latency = "measure" to time each candidate on this machine'
    )


def test_a_profile_for_the_nb201_space_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "search.toml"
    config.write_text('[search]\nspace = "nb201"\n')

    result = CliRunner().invoke(
        app, ["profile-device", "--config", str(config), "--out", str(tmp_path / "p.json")]
    )

    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"edgeevo: error: {config}: [search] space = 'nb201': device profiles and latency "
        'prediction cover the "nasnet" space only; set [device] latency = "measure" with no '
        "profile, or evaluate by lookup in a [table]"
    )
    assert not (tmp_path / "p.json").exists()
