import numpy as np
import torch

from review.demo_images import CLASS_NAMES, generate_scene
from training.config import batch_slices, default_config
from training.trainer import Checkpoint, TrainSample, train


def samples(count: int, size: int = 96) -> list[TrainSample]:
    out = []
    for seed in range(count):
        scene = generate_scene(seed, width=size, height=size)
        boxes = np.array([[b.x, b.y, b.x + b.w, b.y + b.h] for b in scene.boxes], np.float32)
        labels = np.array([CLASS_NAMES.index(b.class_name) + 1 for b in scene.boxes])
        out.append(TrainSample(lambda scene=scene: scene.png_bytes(), boxes, labels))
    return out


def test_training_lowers_the_loss_within_a_few_steps():
    losses = []
    config = default_config("ssdlite320_mobilenet_v3_large", epochs=6, batch_size=4, warmup_steps=2)
    train(architecture="ssdlite320_mobilenet_v3_large", class_names=CLASS_NAMES, samples=samples(8), config=config,
          on_step=lambda report: losses.append(report.loss), device=torch.device("cpu"))
    assert len(losses) == 12
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3]), losses


def test_checkpoint_round_trips_with_safe_loading():
    checkpoints = []
    config = default_config("ssdlite320_mobilenet_v3_large", epochs=1, batch_size=4)
    train(architecture="ssdlite320_mobilenet_v3_large", class_names=CLASS_NAMES, samples=samples(4), config=config,
          on_epoch=lambda epoch, model, checkpoint: checkpoints.append(checkpoint), device=torch.device("cpu"))
    again = Checkpoint.from_bytes(checkpoints[0].to_bytes())  # torch.load(weights_only=True) inside
    assert again.epoch == 1 and again.model.keys() == checkpoints[0].model.keys()


def test_resume_continues_from_the_checkpoint():
    config = default_config("ssdlite320_mobilenet_v3_large", epochs=2, batch_size=4)
    data = samples(4)
    checkpoints, steps = [], []
    train(architecture="ssdlite320_mobilenet_v3_large", class_names=CLASS_NAMES, samples=data, config=config,
          on_epoch=lambda e, m, c: checkpoints.append(c), device=torch.device("cpu"))
    train(architecture="ssdlite320_mobilenet_v3_large", class_names=CLASS_NAMES, samples=data, config=config,
          resume=checkpoints[0], on_step=lambda r: steps.append((r.step, r.epoch)), device=torch.device("cpu"))
    assert steps == [(2, 1)]  # only the second epoch ran again


def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one():
    """A worker killed mid-run must not change the model the run gives: each epoch's random draws (shuffle,
    flips, colour jitter, the detector's box sampling) come from the seed and the epoch, not from the
    epochs before it, which a resumed run skips."""
    config = default_config("fasterrcnn_mobilenet_v3_large_320_fpn", epochs=2, batch_size=2, image_size=96)
    data = samples(4)
    cpu = torch.device("cpu")
    checkpoints = []
    whole = train(architecture="fasterrcnn_mobilenet_v3_large_320_fpn", class_names=CLASS_NAMES, samples=data,
                  config=config, on_epoch=lambda e, m, c: checkpoints.append(c.to_bytes()), device=cpu).state_dict()
    torch.manual_seed(12345)  # whatever the worker drew before the redelivery
    resumed = train(architecture="fasterrcnn_mobilenet_v3_large_320_fpn", class_names=CLASS_NAMES, samples=data,
                    config=config, resume=Checkpoint.from_bytes(checkpoints[0]), device=cpu).state_dict()
    assert not all(torch.equal(Checkpoint.from_bytes(checkpoints[0]).model[k], whole[k]) for k in whole)  # the second epoch did train
    differ = [k for k in whole if not torch.equal(whole[k], resumed[k])]
    assert not differ, differ[:5]


def test_a_lone_last_image_joins_the_batch_before_it():
    assert batch_slices(9, 4) == [(0, 4), (4, 9)]
    assert batch_slices(8, 4) == [(0, 4), (4, 8)]
    assert batch_slices(1, 4) == [(0, 1)]
