from __future__ import annotations

import pickle
import shutil

import pytest
import torch

from edgeevo.data import (
    augment,
    load_cifar10_split,
    load_cifar10_test,
    resize,
    split_indices,
)
from edgeevo.errors import DataError


def test_split_is_fixed_disjoint_and_nested():
    train, valid = split_indices(45000, 5000, seed=0)
    assert len(train) == 45000 and len(valid) == 5000
    assert len(set(train.tolist()) | set(valid.tolist())) == 50000
    small_train, small_valid = split_indices(1000, 200, seed=0)
    assert torch.equal(small_train, train[:1000])
    assert torch.equal(small_valid, valid[:200])
    again, _ = split_indices(1000, 200, seed=0)
    assert torch.equal(again, small_train)
    other, _ = split_indices(1000, 200, seed=1)
    assert not torch.equal(other, small_train)


def test_split_too_large():
    with pytest.raises(DataError, match=r"valid = 5001; the split holds at most 45000 and 5000"):
        split_indices(10, 5001, seed=0)


def test_loads_real_cifar10_without_the_md5_check(data_root):
    split = load_cifar10_split(data_root, train=300, valid=100, seed=0, resolution=16)
    assert split.train_images.shape == (300, 3, 16, 16)
    assert split.train_images.dtype == torch.uint8
    assert split.valid_images.shape == (100, 3, 16, 16)
    assert split.train_labels.dtype == torch.int64
    assert set(split.train_labels.tolist()) == set(range(10))
    # The first labels of data_batch_1 are fixed by the data set: 6 9 9 4 1.
    _, labels = load_cifar10_test(data_root, resolution=32)
    assert labels[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]


def test_md5_check_stays_available_and_rejects_a_rebuilt_copy(data_root):
    with pytest.raises(
        DataError,
        match=r"not usable \(MD5 check failed or files missing\): Dataset not found or corrupted",
    ):
        load_cifar10_split(data_root, train=10, valid=10, seed=0, verify=True)


def test_root_without_cifar10(tmp_path):
    with pytest.raises(DataError) as info:
        load_cifar10_split(tmp_path, train=10, valid=10, seed=0)
    message = str(info.value)
    assert str(tmp_path) in message and "cifar-10-batches-py" in message
    assert "download = true" in message and "\n" not in message


def test_damaged_batch_file(tmp_path, data_root):
    folder = tmp_path / "cifar-10-batches-py"
    shutil.copytree(data_root / "cifar-10-batches-py", folder)
    (folder / "data_batch_3").write_bytes(pickle.dumps({"nothing": 1}))
    with pytest.raises(DataError, match=r"batch files cannot be read \(KeyError"):
        load_cifar10_split(tmp_path, train=10, valid=10, seed=0)


def test_resize_keeps_uint8_and_constant_images():
    images = torch.full((2, 3, 32, 32), 77, dtype=torch.uint8)
    out = resize(images, 16)
    assert out.dtype == torch.uint8 and out.shape == (2, 3, 16, 16)
    assert bool((out == 77).all())


def test_augment_is_a_shifted_or_flipped_crop():
    images = torch.arange(2 * 1 * 8 * 8, dtype=torch.float32).view(2, 1, 8, 8) + 1
    out = augment(images, torch.Generator().manual_seed(3))
    assert out.shape == images.shape
    for original, crop in zip(images, out, strict=True):
        # Every nonzero pixel of the crop comes from the image, in order along a row or reversed.
        values = crop[crop > 0]
        assert set(values.tolist()) <= set(original.flatten().tolist())
        row = crop[0, 4][crop[0, 4] > 0]
        steps = (row[1:] - row[:-1]).unique().tolist()
        assert steps in ([1.0], [-1.0])


def test_truncated_batch_file(tmp_path, data_root):
    folder = tmp_path / "cifar-10-batches-py"
    shutil.copytree(data_root / "cifar-10-batches-py", folder)
    batch = folder / "data_batch_2"
    batch.write_bytes(batch.read_bytes()[:1_000_000])
    with pytest.raises(DataError, match=r"batch files cannot be read \((Unpickling|EOF)Error"):
        load_cifar10_split(tmp_path, train=10, valid=10, seed=0)


def test_failed_download_names_the_root_and_leaves_no_folder(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as cifar

    def unreachable(*args, **kwargs):
        raise OSError("host unreachable")

    monkeypatch.setattr(cifar, "download_and_extract_archive", unreachable)
    root = tmp_path / "new-root"
    with pytest.raises(DataError) as info:
        load_cifar10_split(root, train=10, valid=10, seed=0, download=True)
    assert "holds no CIFAR-10 and downloading it failed (OSError: host unreachable)" in str(
        info.value
    )
    assert not root.exists()
