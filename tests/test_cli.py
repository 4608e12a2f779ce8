"""The command line's own promises: a quick --help, a version, heavy imports kept lazy."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "torchvision", "onnx", "onnxruntime", "fvcore", "matplotlib", "jinja2")


def test_importing_the_cli_loads_no_heavy_module():
    code = (
        "import sys, edgeevo.cli\n"
        f"loaded = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_help_lists_the_commands_and_version_prints():
    out = subprocess.run(
        [sys.executable, "-m", "edgeevo.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in ("serve", "pareto", "export", "status", "profile-device"):
        assert command in out
    version = subprocess.run(
        [sys.executable, "-m", "edgeevo.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert version.startswith("edgeevo 0.1.0")
