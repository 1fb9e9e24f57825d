"""A training run's settings and how many steps it takes. No torch and no Django here.

The web tier sizes a run (its defaults, its progress total) from this module without importing torch;
training/trainer.py runs it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from inference.architectures import ARCHITECTURES


MAX_EPOCHS = 1000  # a typo of 10000 would hold a GPU worker for days


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 8
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    grad_clip: float = 10.0
    image_size: int = 320
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def default_config(architecture: str, **overrides) -> TrainConfig:
    """Sensible defaults per architecture; any field can be overridden."""
    spec = ARCHITECTURES[architecture]
    base = TrainConfig(image_size=spec.image_size,
                       batch_size=8 if spec.cpu_friendly else 4,
                       learning_rate=1e-3 if spec.cpu_friendly else 2e-4)
    known = {k: v for k, v in overrides.items() if k in TrainConfig.__dataclass_fields__ and v is not None}
    return replace(base, **known)


def batch_slices(count: int, batch_size: int) -> list[tuple[int, int]]:
    """Batches of one epoch; a lone last image joins the batch before it (BatchNorm cannot train on one)."""
    slices = [(start, min(start + batch_size, count)) for start in range(0, count, batch_size)]
    if len(slices) > 1 and slices[-1][1] - slices[-1][0] == 1:
        slices[-2:] = [(slices[-2][0], count)]
    return slices


def steps_per_epoch(count: int, batch_size: int) -> int:
    return len(batch_slices(count, batch_size))
