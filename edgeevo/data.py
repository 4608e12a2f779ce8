"""CIFAR-10 as in-memory tensors, the fixed train/validation split, and batch augmentation.

A search reads only the 50,000 training images. They are split once, by a seeded permutation,
into a training pool of 45,000 and a validation pool of 5,000 (as in Real et al., 2019); a smaller
run takes the first images of each pool, so a small run's images are always part of a larger
run's. The test split is read only by :func:`load_cifar10_test`, for a final evaluation.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from edgeevo.errors import DataError

logger = logging.getLogger(__name__)

CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_FILE = "test_batch"
CIFAR10_TRAIN_SIZE = 50000
CIFAR10_VALID_POOL = 5000
# Per-channel statistics of the CIFAR-10 training images, in 0..1 units.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


@dataclass(frozen=True)
class Split:
    """Images as uint8 (N, 3, R, R) and labels as int64 (N,), for training and validation."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    valid_images: torch.Tensor
    valid_labels: torch.Tensor
    classes: int
    mean: tuple[float, float, float] = CIFAR10_MEAN
    std: tuple[float, float, float] = CIFAR10_STD

    @property
    def resolution(self) -> int:
        return int(self.train_images.shape[-1])


def _cifar10_class(verify: bool) -> type:
    from torchvision.datasets import CIFAR10

    if verify:
        return CIFAR10

    class PresentCIFAR10(CIFAR10):
        """torchvision's reader with the MD5 check reduced to "the files are there".

        Rebuilt copies of CIFAR-10 hold the standard batch format with other bytes, so the
        official checksums reject them; downloads are still checked against the archive's MD5.
        """

        def _check_integrity(self) -> bool:
            folder = Path(self.root) / self.base_folder
            return all((folder / name).is_file() for name, _ in self.train_list + self.test_list)

    return PresentCIFAR10


def _read_cifar10(root: Path, *, train: bool, download: bool, verify: bool):
    folder = root / CIFAR10_FOLDER
    if not folder.is_dir() and not download:
        raise DataError(
            f"data root {str(root)!r} holds no CIFAR-10: expected torchvision's layout "
            f"{CIFAR10_FOLDER}/data_batch_1..5 and test_batch there; set [data] download = true "
            f"to fetch it, or point [data] root (or EDGEEVO_DATA_ROOT) at a folder that has it"
        )
    dataset_class = _cifar10_class(verify)
    fetch = download and not folder.is_dir()
    root_existed = root.exists()
    try:
        dataset = dataset_class(str(root), train=train, download=fetch)
    except RuntimeError as exc:
        # torchvision raises RuntimeError for missing files and for failed MD5 checks.
        what = "MD5 check failed or files missing" if verify else "files missing"
        raise DataError(f"data root {str(root)!r}: CIFAR-10 not usable ({what}): {exc}") from exc
    except OSError as exc:
        if fetch:
            # Leave no empty folders behind from a download that never started.
            if not root_existed:
                with contextlib.suppress(OSError):
                    root.rmdir()
            raise DataError(
                f"data root {str(root)!r} holds no CIFAR-10 and downloading it failed "
                f"({type(exc).__name__}: {exc}); point EDGEEVO_DATA_ROOT at a copy"
            ) from exc
        raise DataError(
            f"data root {str(root)!r}: CIFAR-10 batch files cannot be read ({exc})"
        ) from exc
    except (pickle.UnpicklingError, ValueError, EOFError, KeyError, TypeError) as exc:
        raise DataError(
            f"data root {str(root)!r}: CIFAR-10 batch files cannot be read "
            f"({type(exc).__name__}: {exc}); expected the python-pickle batch format"
        ) from exc
    images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()  # (N, 3, 32, 32)
    labels = torch.as_tensor(dataset.targets, dtype=torch.int64)
    expected = CIFAR10_TRAIN_SIZE if train else 10000
    if images.shape != (expected, 3, 32, 32) or labels.shape != (expected,):
        raise DataError(
            f"data root {str(root)!r}: CIFAR-10 {'training' if train else 'test'} images have "
            f"shape {tuple(images.shape)}, expected ({expected}, 3, 32, 32)"
        )
    if int(labels.min()) < 0 or int(labels.max()) > 9:
        raise DataError(f"data root {str(root)!r}: CIFAR-10 labels outside 0..9")
    return images, labels


def split_indices(train: int, valid: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices into the 50,000 training images: the first ``train`` and ``valid`` of the fixed
    pools of 45,000 and 5,000 that ``seed`` defines."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(CIFAR10_TRAIN_SIZE, generator=generator)
    train_pool = order[: CIFAR10_TRAIN_SIZE - CIFAR10_VALID_POOL]
    valid_pool = order[CIFAR10_TRAIN_SIZE - CIFAR10_VALID_POOL :]
    if train > len(train_pool) or valid > len(valid_pool):
        raise DataError(
            f"train = {train}, valid = {valid}; the split holds at most {len(train_pool)} "
            f"and {len(valid_pool)}"
        )
    return train_pool[:train], valid_pool[:valid]


def resize(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """uint8 (N, 3, H, W) to uint8 (N, 3, resolution, resolution), antialiased."""
    if images.shape[-1] == resolution:
        return images
    out = F.interpolate(
        images.float(), size=(resolution, resolution), mode="bilinear", antialias=True
    )
    return out.round().clamp(0, 255).to(torch.uint8)


def load_cifar10_split(
    root: Path,
    *,
    train: int,
    valid: int,
    seed: int,
    resolution: int = 32,
    download: bool = False,
    verify: bool = False,
) -> Split:
    """The search's training and validation images; never the test split."""
    images, labels = _read_cifar10(root, train=True, download=download, verify=verify)
    train_idx, valid_idx = split_indices(train, valid, seed)
    logger.info(
        "CIFAR-10 from %s: %d training and %d validation images at %dx%d",
        root,
        len(train_idx),
        len(valid_idx),
        resolution,
        resolution,
    )
    return Split(
        train_images=resize(images[train_idx], resolution),
        train_labels=labels[train_idx],
        valid_images=resize(images[valid_idx], resolution),
        valid_labels=labels[valid_idx],
        classes=10,
    )


def load_cifar10_test(
    root: Path, *, resolution: int = 32, download: bool = False, verify: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """The 10,000 test images, for one final evaluation of a chosen model only."""
    images, labels = _read_cifar10(root, train=False, download=download, verify=verify)
    return resize(images, resolution), labels


def normalize(images: torch.Tensor, split: Split) -> torch.Tensor:
    """uint8 (B, 3, R, R) to float (B, 3, R, R) with the data set's mean and std."""
    mean = torch.tensor(split.mean, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(split.std, device=images.device).view(1, 3, 1, 1)
    return (images.float() / 255.0 - mean) / std


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random crop after zero padding of 1/8 of the side, and random horizontal flip.

    Works on a whole batch at once on its device: (B, C, R, R) in, (B, C, R, R) out.
    """
    batch, _, side, _ = images.shape
    pad = max(1, side // 8)
    padded = F.pad(images, (pad, pad, pad, pad))  # (B, C, R + 2p, R + 2p)
    offsets = torch.randint(0, 2 * pad + 1, (2, batch), generator=generator)
    offsets = offsets.to(images.device)
    steps = torch.arange(side, device=images.device)
    rows = (offsets[0][:, None] + steps)[:, :, None]  # (B, R, 1)
    cols = (offsets[1][:, None] + steps)[:, None, :]  # (B, 1, R)
    flip = torch.rand(batch, generator=generator).to(images.device) < 0.5
    cols = torch.where(flip[:, None, None], cols.flip(-1), cols)
    index = torch.arange(batch, device=images.device)[:, None, None]
    cropped = padded.permute(0, 2, 3, 1)[index, rows, cols]  # (B, R, R, C)
    return cropped.permute(0, 3, 1, 2).contiguous()
