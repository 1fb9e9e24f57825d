"""What a fine-tune has of each class: human boxes on reviewed images, training and held out."""
import pytest
from django.urls import reverse

from review.models import Image, LabelClass, Split
from review.selectors import label_class_counts
from review.services import BoxIn, image_boxes_save
from tests.factories import add_images, add_member, api_client, make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def project():
    """Circles on two training images (3 boxes) and one held-out image (1 box), a square on one training
    image, a triangle only on an image sent back to the queue (not in the next fine-tune's snapshot)."""
    project = make_project(class_names=("circle", "square", "triangle"))
    images = add_images(project, 4)
    classes = {c.name: c.pk for c in LabelClass.objects.filter(project=project)}
    splits = [Split.TRAIN, Split.TRAIN, Split.HOLDOUT, Split.HOLDOUT]
    for image, split in zip(images, splits):
        Image.objects.filter(pk=image.pk).update(split=split)
        image.refresh_from_db()

    def save(image, *boxes):
        image_boxes_save(image=image, user=None, boxes=[BoxIn(classes[name], 1, 1, 5, 5) for name in boxes],
                         version=image.version)

    save(images[0], "circle", "circle", "square")
    save(images[1], "circle")
    save(images[2], "circle")
    save(images[3], "triangle")
    Image.objects.filter(pk=images[3].pk).update(status="unreviewed")  # sent back: not in the next snapshot
    return project


def test_counts_split_reviewed_boxes_into_training_and_holdout(project):
    rows = {row.label_class.name: row for row in label_class_counts(project=project)}
    assert [row.label_class.name for row in label_class_counts(project=project)] == ["circle", "square", "triangle"]
    circle, square, triangle = rows["circle"], rows["square"], rows["triangle"]
    assert (circle.boxes_training, circle.images_training, circle.boxes_holdout, circle.images_holdout) == (3, 2, 1, 1)
    assert circle.judged
    assert (square.boxes_training, square.boxes_holdout, square.judged) == (1, 0, False)
    assert (triangle.boxes_training, triangle.boxes_holdout, triangle.judged) == (0, 0, False)


def test_the_api_gives_the_counts_to_any_member(project):
    annotator = add_member(project)
    response = api_client(annotator).get(reverse("api:label_class_counts", args=[project.pk]))
    assert response.status_code == 200
    circle, square, triangle = response.json()
    assert circle == {"id": circle["id"], "name": "circle", "colour": circle["colour"], "boxes_training": 3,
                      "boxes_holdout": 1, "images_training": 2, "images_holdout": 1, "judged": True}
    assert (square["boxes_training"], square["judged"]) == (1, False)
    assert (triangle["boxes_training"], triangle["boxes_holdout"]) == (0, 0)


def test_the_project_page_asks_the_api_for_the_counts(client, project):
    """The page itself does not count (on a large project that takes longer than the page): its script asks
    the API (tests/browser/test_review.py checks the table it fills)."""
    client.force_login(add_member(project))
    page = client.get(reverse("review:project_detail", args=[project.pk])).content.decode()
    assert f'data-url="{reverse("api:label_class_counts", args=[project.pk])}"' in page
    assert "review/class_counts.js" in page

