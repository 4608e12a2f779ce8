from __future__ import annotations

import random

import pytest
import torch

from edgeevo.config import TrainSection
from edgeevo.data import load_cifar10_split
from edgeevo.nets import create_network
from edgeevo.space import NasnetSpace
from edgeevo.train import TrainingDiverged, select_device, train_and_evaluate

SETTINGS = TrainSection(epochs=1, batch_size=32, learning_rate=0.05)


@pytest.fixture(scope="module")
def split(data_root):
    return load_cifar10_split(data_root, train=128, valid=64, seed=0, resolution=8)


def _network(seed: int = 0):
    torch.manual_seed(seed)
    genotype = NasnetSpace(blocks=2).sample(random.Random(seed))
    return create_network(genotype, cells=1, filters=4, classes=10)


def test_training_is_seeded_and_reports_a_fraction(split):
    first = train_and_evaluate(_network(), split, SETTINGS, device=torch.device("cpu"), seed=5)
    again = train_and_evaluate(_network(), split, SETTINGS, device=torch.device("cpu"), seed=5)
    assert 0.0 <= first.accuracy <= 1.0
    assert first.steps == 4  # 128 images in batches of 32, one epoch
    assert (first.accuracy, first.final_loss) == (again.accuracy, again.final_loss)


def test_a_nan_loss_fails_the_candidate(split):
    model = _network()
    with torch.no_grad():
        model.classifier.weight.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match=r"training loss became nan in epoch 1"):
        train_and_evaluate(model, split, SETTINGS, device=torch.device("cpu"), seed=0)


def test_device_selection():
    assert select_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert select_device().type == expected
