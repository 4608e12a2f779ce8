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

from edgeevo.errors import EdgeevoError, ProfileError
from edgeevo.hardware.latency import RuntimeSettings
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
from edgeevo.space import OPS, NasnetSpace


@pytest.fixture(scope="module")
def measured() -> DeviceProfile:
    return make_profile(
        "test-pc",
        RuntimeSettings(intra_op_threads=1),
        cells=1,
        filters=4,
        resolution=8,
        classes=10,
        repeats=3,
        warmup=1,
    )


def written_by_hand() -> DeviceProfile:
    """A profile with made-up numbers, for the cases that need no measuring."""
    host = HostFacts(
        cpu_model="Test CPU",
        physical_cores=4,
        logical_cores=8,
        cpu_mhz=None,
        memory_bytes=16 * 2**30,
        os="Test OS",
        kernel="1.0",
        machine="x86_64",
        python="3.11.0",
        onnxruntime="1.20.0",
        providers=("CPUExecutionProvider",),
    )
    timing = ReferenceTiming(
        name="pool",
        genotype=REFERENCE_GENOTYPES["pool"],
        cells=2,
        filters=16,
        resolution=32,
        classes=10,
        flops=1000,
        params=100,
        median_ms=1.5,
        p90_ms=2.0,
    )
    return DeviceProfile(
        name="hand",
        created="2025-01-01T00:00:00+00:00",
        host=host,
        runtime=RuntimeSettings(),
        reference=(timing,),
    )


def test_made_profile_describes_this_machine(measured: DeviceProfile) -> None:
    assert measured.version == PROFILE_VERSION == 1
    assert measured.name == "test-pc"
    created = datetime.fromisoformat(measured.created)
    assert created.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - created) < timedelta(minutes=10)
    assert measured.host.onnxruntime == ort.__version__
    assert "CPUExecutionProvider" in measured.host.providers
    assert measured.runtime == RuntimeSettings(intra_op_threads=1)

    assert [t.name for t in measured.reference] == list(REFERENCE_GENOTYPES)
    for timing in measured.reference:
        assert timing.genotype == REFERENCE_GENOTYPES[timing.name]
        assert (timing.cells, timing.filters, timing.resolution, timing.classes) == (1, 4, 8, 10)
        assert timing.flops > 0
        assert timing.params > 0
        assert 0 < timing.median_ms <= timing.p90_ms


def test_reference_networks_cost_in_order(measured: DeviceProfile) -> None:
    flops = {t.name: t.flops for t in measured.reference}
    assert flops["pool"] < flops["mixed"] < flops["sep_conv"]


def test_reference_genotypes_are_in_the_space_and_mixed_uses_every_op() -> None:
    space = NasnetSpace()
    for genotype in REFERENCE_GENOTYPES.values():
        space.validate(genotype)
    mixed = REFERENCE_GENOTYPES["mixed"]
    used = {op for cell in (mixed.normal, mixed.reduce) for block in cell for op in block.ops}
    assert used == set(OPS)


def test_host_facts() -> None:
    host = collect_host_facts()
    assert host.cpu_model
    assert host.logical_cores is None or host.logical_cores >= 1
    assert host.physical_cores is None or host.physical_cores >= 1
    assert host.cpu_mhz is None or host.cpu_mhz > 0
    assert host.memory_bytes > 0
    assert host.python.count(".") == 2
    assert host.onnxruntime == ort.__version__


def test_round_trip(measured: DeviceProfile, tmp_path: Path) -> None:
    path = tmp_path / "profiles" / "test-pc.json"
    save_profile(measured, path)
    assert load_profile(path) == measured
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
    doc["reference"][0]["median_ms"] = 2
    path = tmp_path / "pc.json"
    path.write_text(json.dumps(doc))

    profile = load_profile(path)
    assert profile.host.cpu_mhz == 3000.0
    assert isinstance(profile.host.cpu_mhz, float)
    assert isinstance(profile.reference[0].median_ms, float)


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
        lambda d: _drop(d, "reference"),
        "missing field 'reference' (an array)",
        id="missing-top-field",
    ),
    pytest.param(
        lambda d: _drop(d, "reference", 0, "p90_ms"),
        "missing field 'reference[0].p90_ms' (a number)",
        id="missing-timing-field",
    ),
    pytest.param(
        lambda d: _drop(d, "version"),
        "missing field 'version' (an integer)",
        id="missing-version",
    ),
    pytest.param(
        lambda d: _set(d, 2, "version"),
        "format version 2, but this edgeevo reads version 1; "
        "make a new one with `edgeevo profile-device` on the target PC",
        id="newer-version",
    ),
    pytest.param(
        lambda d: _set(d, "1", "version"),
        "field 'version' must be an integer, got a string",
        id="version-as-string",
    ),
    pytest.param(
        lambda d: _set(d, "four", "host", "physical_cores"),
        "field 'host.physical_cores' must be an integer or null, got a string",
        id="wrong-type",
    ),
    pytest.param(
        lambda d: _set(d, True, "reference", 0, "flops"),
        "field 'reference[0].flops' must be an integer, got true or false",
        id="bool-for-int",
    ),
    pytest.param(
        lambda d: _set(d, ["CPU", 1], "host", "providers"),
        "field 'host.providers' must be an array of strings",
        id="providers-not-strings",
    ),
    pytest.param(
        lambda d: _set(d, "pool", "reference", 0),
        "field 'reference[0]' must be an object",
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
        lambda d: _set(d, "conv_9x9", "reference", 0, "genotype", "normal", 0, 1),
        "field 'reference[0].genotype': unknown op 'conv_9x9' in normal block 0; known ops: ",
        id="genotype-op",
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
        (b'{"version": 1,', "is not JSON: Expecting property name enclosed in double quotes "),
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
