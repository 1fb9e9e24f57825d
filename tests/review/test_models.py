"""Database constraints hold even when code forgets to validate, with a clear message."""
import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from review.models import Annotation, Image, LabelClass
from review.services import DuplicateImage, image_create, label_class_create
from review.demo_images import generate_scene
from tests.factories import add_images, make_project

pytestmark = pytest.mark.django_db


def test_duplicate_image_hash_refused_by_service_and_database():
    project = make_project()
    data = generate_scene(1).png_bytes()
    first = image_create(project=project, data=data, filename="a.png")
    with pytest.raises(DuplicateImage, match="already in the project"):
        image_create(project=project, data=data, filename="again.png")
    with pytest.raises(IntegrityError), transaction.atomic():
        Image.objects.create(project=project, original_name="x", width=1, height=1,
                             content_hash=first.content_hash, split="train")
    assert Image.objects.filter(project=project).count() == 1


def test_same_image_allowed_in_another_project():
    data = generate_scene(1).png_bytes()
    image_create(project=make_project(), data=data, filename="a.png")
    image_create(project=make_project(), data=data, filename="a.png")
    assert Image.objects.count() == 2


def test_bad_box_refused_by_database():
    project = make_project()
    image = add_images(project, 1)[0]
    label_class = project.label_classes.first()
    for w, h in [(0, 10), (10, -1)]:
        with pytest.raises(IntegrityError), transaction.atomic():
            Annotation.objects.create(image=image, label_class=label_class, x=1, y=1, w=w, h=h)
    assert not Annotation.objects.exists()


def test_duplicate_label_name_refused_with_a_clear_message():
    project = make_project(class_names=["cat"])
    with pytest.raises(ValidationError, match="already exists"):
        label_class_create(project=project, name="cat")
    with pytest.raises(IntegrityError), transaction.atomic():
        LabelClass.objects.create(project=project, name="cat", index=5)
    assert project.label_classes.count() == 1


def test_label_indices_follow_the_last_class():
    project = make_project(class_names=["a", "b"])
    project.label_classes.get(name="a").delete()
    assert label_class_create(project=project, name="c").index == 2


def test_one_active_model_per_project():
    from inference.models import ModelVersion
    from tests.factories import add_model_version

    project = make_project()
    first = add_model_version(project)
    second = add_model_version(project)
    first.refresh_from_db()
    assert second.is_active and not first.is_active
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.filter(pk=first.pk).update(is_active=True)
