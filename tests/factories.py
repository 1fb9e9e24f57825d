"""Test data in one place. Images are generated scenes; models are tiny randomly initialised ones."""
from __future__ import annotations

import functools

import factory
from django.contrib.auth import get_user_model

from inference import detector
from inference.services import model_version_create
from review.demo_images import CLASS_NAMES, generate_scene
from review.models import Project, Role
from review.services import image_create, membership_set, project_create

TINY_ARCHITECTURE = "ssdlite320_mobilenet_v3_large"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", "pw-for-tests-1")

    @classmethod
    def _after_postgeneration(cls, instance, create, results=None):
        if create:
            instance.save()


def make_project(*, owner=None, class_names=CLASS_NAMES, holdout_fraction: float = 0.2, name: str = "Shapes") -> Project:
    return project_create(name=name, owner=owner or UserFactory(), class_names=class_names,
                          holdout_fraction=holdout_fraction)


def add_member(project: Project, role: str = Role.ANNOTATOR, user=None):
    user = user or UserFactory()
    membership_set(project=project, user=user, role=role)
    return user


def add_images(project: Project, count: int, *, first_seed: int = 0, size: int = 128):
    return [
        image_create(project=project, data=generate_scene(seed, width=size, height=size).png_bytes(),
                     filename=f"scene-{seed}.png")
        for seed in range(first_seed, first_seed + count)
    ]


def tiny_weights(class_names=CLASS_NAMES, architecture: str = TINY_ARCHITECTURE, seed: int = 0) -> bytes:
    return _tiny_weights(tuple(class_names), architecture, seed)


@functools.lru_cache(maxsize=32)
def _tiny_weights(class_names: tuple[str, ...], architecture: str, seed: int) -> bytes:
    """The same bytes for the same arguments (seeded), built once: 0.15 s each, in about a hundred tests."""
    import torch

    torch.manual_seed(seed)
    model = detector.build_model(architecture, len(class_names))
    return detector.weights_to_bytes(model, architecture=architecture, class_names=list(class_names))


def add_model_version(project: Project, *, activate: bool = True, architecture: str = TINY_ARCHITECTURE):
    names = list(project.label_classes.order_by("index").values_list("name", flat=True))
    return model_version_create(project=project, architecture=architecture, weights=tiny_weights(names, architecture),
                                class_names=names, user=None, activate=activate)


def api_client(user=None):
    """A DRF test client, logged in as `user` when given."""
    from rest_framework.test import APIClient

    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def review_with_truth(image, *, seed: int, user=None, size: int = 128):
    """Save the generated scene's true boxes as the image's review (the scene must match add_images' seed)."""
    from review.models import LabelClass
    from review.services import BoxIn, image_boxes_save

    classes = {c.name: c.pk for c in LabelClass.objects.filter(project_id=image.project_id)}
    scene = generate_scene(seed, width=size, height=size)
    boxes = [BoxIn(classes[b.class_name], b.x, b.y, b.w, b.h) for b in scene.boxes]
    return image_boxes_save(image=image, user=user, boxes=boxes, version=image.version)


def outcome_case(image, version, circle, square) -> list[dict]:
    """Predictions of `version` on `image` and the boxes a reviewer saves against them, which judge to
    one true positive, one wrong class and two misses (the 0.3 prediction is below the editor's
    threshold: never shown, not an error). Returns the boxes as the save API takes them."""
    from inference.models import Prediction

    Prediction.objects.filter(image=image).delete()
    Prediction.objects.bulk_create([
        Prediction(image=image, model_version=version, label_class=circle, x=10, y=10, w=20, h=20, score=0.9),
        Prediction(image=image, model_version=version, label_class=circle, x=60, y=60, w=20, h=20, score=0.8),
        Prediction(image=image, model_version=version, label_class=circle, x=0, y=70, w=10, h=10, score=0.3),
    ])
    return [{"label_class": circle.pk, "x": 10, "y": 10, "w": 20, "h": 20},
            {"label_class": square.pk, "x": 60, "y": 60, "w": 20, "h": 20},
            {"label_class": square.pk, "x": 40, "y": 0, "w": 10, "h": 10}]


@functools.lru_cache(maxsize=8)
def calibrated_weights(class_names: tuple[str, ...] = tuple(CLASS_NAMES),
                       architecture: str = "fasterrcnn_mobilenet_v3_large_320_fpn", seed: int = 0) -> bytes:
    """Random weights whose scores depend on the image and differ from box to box: tiny_weights' batch norms
    keep torchvision's initial statistics, which flatten every image to the same features, so all their
    boxes tie. Here each batch norm's statistics are measured on a few scenes first (no training step)."""
    import numpy as np
    import torch

    torch.manual_seed(seed)
    model = detector.build_model(architecture, len(class_names), image_size=160)
    norms = [module for module in model.modules() if isinstance(module, torch.nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a plain average over the scenes
    model.train()
    with torch.no_grad():
        scenes = [torch.from_numpy(np.asarray(generate_scene(s, width=160, height=128).image).copy())
                  .permute(2, 0, 1).float() / 255 for s in range(8)]
        model.backbone(model.transform(scenes)[0].tensors)
    return detector.weights_to_bytes(model.eval(), architecture=architecture, class_names=list(class_names))
