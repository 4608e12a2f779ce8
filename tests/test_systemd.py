"""The systemd unit and its sample config: what they promise, and systemd's own check."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgeevo.config import load_config

SYSTEMD = Path(__file__).resolve().parent.parent / "systemd"


def unit_keys(path: Path) -> dict[str, dict[str, str]]:
    """The unit's sections and keys (each key set once in this unit)."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        assert key not in current, f"{key} set twice"
        current[key] = value
    return sections


def test_unit_is_a_notify_service_with_watchdog_restart_state_and_own_user():
    unit = unit_keys(SYSTEMD / "edgeevo.service")
    service = unit["Service"]
    assert service["Type"] == "notify"
    assert service["NotifyAccess"] == "main"
    assert service["ExecStart"].endswith("edgeevo serve --config /etc/edgeevo/search.toml")
    assert service["WatchdogSec"] == "2min"
    assert service["Restart"] == "on-failure"
    assert service["RestartPreventExitStatus"] == "2"  # a user's mistake is not retried
    assert service["StateDirectory"] == "edgeevo"
    assert (service["User"], service["Group"]) == ("edgeevo", "edgeevo")
    # SIGTERM to the daemon only, so that it can let its workers finish their candidates.
    assert (service["KillMode"], service["KillSignal"]) == ("mixed", "SIGTERM")
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "RestrictSUIDSGID"):
        assert service[key] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_sample_config_fits_the_unit():
    config = load_config(SYSTEMD / "search.toml")
    service = unit_keys(SYSTEMD / "edgeevo.service")["Service"]
    # The state lives in the StateDirectory; the grace period ends before systemd's SIGKILL.
    assert config.state_path.parent == Path("/var/lib") / service["StateDirectory"]
    assert service["TimeoutStopSec"] == "90s" and config.workers.grace == 60
    assert config.workers.count == "auto"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_analyze_verify_passes(tmp_path):
    # verify insists that ExecStart's program exists: point it at this environment's edgeevo.
    edgeevo = Path(sys.executable).parent / "edgeevo"
    text = (SYSTEMD / "edgeevo.service").read_text()
    unit = tmp_path / "edgeevo.service"
    unit.write_text(text.replace("/opt/edgeevo/.venv/bin/edgeevo", str(edgeevo)))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr  # no unknown key, no warning
