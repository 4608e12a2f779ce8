"""Proxy training and evaluation of one network, on CPU or CUDA. Writes no files.

SGD with Nesterov momentum and a cosine learning-rate schedule stepped per batch, random crop and
flip, gradient clipping. Mixed precision (bfloat16 autocast) is used only on CUDA.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from edgeevo.config import TrainSection
from edgeevo.data import Split, augment, normalize


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite: the candidate is recorded as failed, not retried."""


@dataclass(frozen=True)
class TrainOutcome:
    accuracy: float  # fraction of validation images classified right, 0..1
    final_loss: float  # mean training loss over the last epoch
    seconds: float  # training and validation, wall clock
    steps: int


def select_device(preferred: str | None = None) -> torch.device:
    """CUDA when present (or the named device), else CPU."""
    if preferred:
        return torch.device(preferred)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def train_and_evaluate(
    model: nn.Module,
    split: Split,
    settings: TrainSection,
    *,
    device: torch.device,
    seed: int,
) -> TrainOutcome:
    """Train ``model`` on the split's training images, then return its validation accuracy."""
    start = time.perf_counter()
    generator = torch.Generator().manual_seed(seed)
    model = model.to(device)
    use_amp = device.type == "cuda"

    train_images = split.train_images.to(device)
    train_labels = split.train_labels.to(device)
    count = len(train_labels)
    batches_per_epoch = math.ceil(count / settings.batch_size)
    total_steps = settings.epochs * batches_per_epoch

    # Weight decay on weights only: decaying BN scales and biases only slows a short run.
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    optimizer = torch.optim.SGD(
        [
            {"params": decay, "weight_decay": settings.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=settings.learning_rate,
        momentum=settings.momentum,
        nesterov=settings.momentum > 0,
    )
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)

    step = 0
    epoch_loss = 0.0
    for epoch in range(settings.epochs):
        model.train()
        order = torch.randperm(count, generator=generator).to(device)
        loss_sum = torch.zeros((), device=device)
        for first in range(0, count, settings.batch_size):
            index = order[first : first + settings.batch_size]
            images = normalize(augment(train_images[index], generator), split)  # (B, 3, R, R)
            labels = train_labels[index]  # (B,)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
                loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
            optimizer.step()
            schedule.step()
            loss_sum += loss.detach() * len(index)
            step += 1
        # Checked once an epoch rather than each step: a check per step would wait for the GPU.
        epoch_loss = float(loss_sum) / count
        if not math.isfinite(epoch_loss):
            raise TrainingDiverged(f"training loss became {epoch_loss} in epoch {epoch + 1}")

    accuracy = evaluate_accuracy(model, split.valid_images, split.valid_labels, split, device)
    return TrainOutcome(
        accuracy=accuracy,
        final_loss=epoch_loss,
        seconds=time.perf_counter() - start,
        steps=step,
    )


@torch.no_grad()
def evaluate_accuracy(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    split: Split,
    device: torch.device,
    batch_size: int = 500,
) -> float:
    """Fraction of ``images`` (uint8, N x 3 x R x R) that ``model`` classifies right."""
    model.eval()
    correct = 0
    for first in range(0, len(labels), batch_size):
        batch = normalize(images[first : first + batch_size].to(device), split)
        with torch.autocast(
            device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"
        ):
            logits = model(batch)  # (B, classes)
        correct += int(
            (logits.argmax(dim=1) == labels[first : first + batch_size].to(device)).sum()
        )
    return correct / len(labels)
