"""Shared fixtures: the CIFAR-10 data root and small configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def cifar10_root() -> Path:
    """EDGEEVO_DATA_ROOT, else the shared copy beside the checkout."""
    return Path(os.environ.get("EDGEEVO_DATA_ROOT") or REPO.parent / "shared/data/cifar10")


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = cifar10_root()
    if not (root / "cifar-10-batches-py").is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"CIFAR-10 not found under {root}; set EDGEEVO_DATA_ROOT")
        pytest.skip(f"CIFAR-10 not found under {root}; set EDGEEVO_DATA_ROOT")
    return root


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """One torch thread per test process: with two threads on a 2-core machine that is busy
    elsewhere, OpenMP's threads wait on each other and a tiny forward pass takes seconds."""
    import torch

    torch.set_num_threads(1)
