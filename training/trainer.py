"""Fine-tune a torchvision detector on human boxes. No Django here: samples in, state dicts out.

Box-aware augmentation with torchvision.transforms.v2; AdamW with linear warmup and cosine decay;
gradient clipping; bf16 autocast on CUDA; a checkpoint after each epoch so a redelivered task
resumes from the last finished epoch.
"""
from __future__ import annotations

import io
import math
import os
import random
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torchvision import tv_tensors
from torchvision.transforms import v2

from inference.detector import build_model, default_device, state_for_classes
from inference.pipeline import decode_to_tensor
from training.config import TrainConfig, batch_slices


@dataclass(frozen=True)
class TrainSample:
    read: Callable[[], bytes]   # the image bytes (from storage)
    boxes_xyxy: np.ndarray      # (n, 4) float32, image pixels
    labels: np.ndarray          # (n,) int64, model class ids 1..N


@dataclass
class Checkpoint:
    """What a resumed run needs: weights, optimiser and schedule state after `epoch` epochs.

    On the CPU its tensors are the live model's and optimiser's, which the next step changes: `on_epoch`
    writes it out (to_bytes) before it returns.
    """

    epoch: int
    model: dict
    optimizer: dict
    scheduler: dict
    losses: list = field(default_factory=list)

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        torch.save({"epoch": self.epoch, "model": self.model, "optimizer": self.optimizer,
                    "scheduler": self.scheduler, "losses": self.losses}, buffer)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Checkpoint:
        raw = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        return cls(raw["epoch"], raw["model"], raw["optimizer"], raw["scheduler"], raw.get("losses", []))


@dataclass(frozen=True)
class StepReport:
    step: int          # steps done so far in the whole run
    total_steps: int
    epoch: int         # epoch in progress (0-based)
    loss: float
    images: int        # images in this step's batch


class Stop(Exception):
    """Raised by a callback to stop training early (for example, the run was cancelled)."""


def train_transform() -> v2.Compose:
    return v2.Compose([
        v2.RandomHorizontalFlip(p=0.5),
        v2.RandomPhotometricDistort(p=0.5),
        v2.ToDtype(torch.float32, scale=True),
        v2.SanitizeBoundingBoxes(min_size=1.0),
    ])


def decode_all(samples: Sequence[TrainSample], *, workers: int = 8) -> list[torch.Tensor]:
    """Decode every training image once, in parallel threads, before the first step.

    Reviewed datasets are small enough to hold as uint8 (a 640x480 image is 0.9 MB), and decoding
    inside the loop made the GPU wait on Pillow.
    """
    with ThreadPoolExecutor(max_workers=max(1, min(workers, os.cpu_count() or 2))) as pool:
        return list(pool.map(lambda sample: decode_to_tensor(sample.read(), pin=False), samples))


def _initial_weights(model: nn.Module, state: dict | None, *, architecture: str, class_names: Sequence[str],
                     state_class_names: Sequence[str] | None) -> int:
    """Start from `state` wherever it fits; returns how many tensors were loaded.

    With the class names it was trained for, the class heads keep what it knew of each class both
    lists name (a class added or deleted since); without them, only tensors of the same shape load.
    """
    if not state:
        return 0
    own = model.state_dict()
    if state_class_names is None:
        fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    else:
        fitting = state_for_classes(state, state_class_names, own=own, class_names=class_names,
                                    architecture=architecture)
    model.load_state_dict(fitting, strict=False)
    return len(fitting)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's random draws: the shuffle, the flips and colour jitter, the detector's own
    sampling of anchors and proposals. From the run's seed and the epoch alone, so a run resumed from a
    checkpoint after a killed worker draws what the uninterrupted run would have, and ends with the same model."""
    return (seed * 1_000_003 + epoch) % 2**63


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)  # every device's generator, CUDA's included


def train(
    *,
    architecture: str,
    class_names: Sequence[str],
    samples: Sequence[TrainSample],
    config: TrainConfig,
    initial_state: dict | None = None,
    initial_class_names: Sequence[str] | None = None,
    resume: Checkpoint | None = None,
    on_step: Callable[[StepReport], None] | None = None,
    on_epoch: Callable[[int, nn.Module, Checkpoint], None] | None = None,
    device: torch.device | None = None,
) -> nn.Module:
    """Train and return the model (in eval mode). Callbacks may raise Stop to end early."""
    if not samples:
        raise ValueError("Nothing to train on: no reviewed training images.")
    device = device or default_device()
    _seed_everything(config.seed)  # the new class heads' initial weights
    model = build_model(architecture, len(class_names), image_size=config.image_size).to(device)
    _initial_weights(model, initial_state, architecture=architecture, class_names=class_names,
                     state_class_names=initial_class_names)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    slices = batch_slices(len(samples), config.batch_size)
    total_steps = len(slices) * config.epochs
    warmup = max(1, min(config.warmup_steps, total_steps // 5 or 1))

    def schedule(step: int) -> float:  # linear warmup, then cosine down to 5%
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    start_epoch = 0
    if resume is not None:
        model.load_state_dict(resume.model)
        optimizer.load_state_dict(resume.optimizer)
        scheduler.load_state_dict(resume.scheduler)
        start_epoch = resume.epoch
    images = decode_all(samples)
    transform = train_transform()
    use_autocast = device.type == "cuda"
    step = start_epoch * len(slices)
    for epoch in range(start_epoch, config.epochs):
        model.train()
        _seed_everything(epoch_seed(config.seed, epoch))
        order = torch.randperm(len(samples)).tolist()
        for first, last in slices:
            batch_images, targets = [], []
            for index in order[first:last]:
                sample = samples[index]
                image = images[index].to(device, non_blocking=True)  # augment on the device, not the CPU
                boxes = tv_tensors.BoundingBoxes(
                    torch.as_tensor(sample.boxes_xyxy, dtype=torch.float32).reshape(-1, 4).to(device),
                    format="XYXY", canvas_size=tuple(image.shape[1:]))
                labels = torch.as_tensor(sample.labels, dtype=torch.int64).to(device)
                image, target = transform(tv_tensors.Image(image), {"boxes": boxes, "labels": labels})
                batch_images.append(image.as_subclass(torch.Tensor))
                targets.append({"boxes": target["boxes"].as_subclass(torch.Tensor), "labels": target["labels"]})
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_autocast):
                losses = model(batch_images, targets)
                loss = sum(losses.values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(params, config.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            if on_step:
                on_step(StepReport(step, total_steps, epoch, float(loss.detach()), len(batch_images)))
        if on_epoch:
            checkpoint = Checkpoint(epoch + 1, {k: v.detach().cpu() for k, v in model.state_dict().items()},
                                    optimizer.state_dict(), scheduler.state_dict())
            model.eval()
            on_epoch(epoch + 1, model, checkpoint)
    return model.eval()
