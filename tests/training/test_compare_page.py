"""The comparison page: two versions on the same holdout images, with the images fixed and broken."""
import pytest
from django.urls import reverse

from inference.models import Prediction
from review.models import Annotation, Image, Role
from tests.factories import add_images, add_member, add_model_version, make_project, review_with_truth

pytestmark = pytest.mark.django_db


def test_compare_page_lists_fixed_and_broken_images(client):
    project = make_project(holdout_fraction=0.9)
    images = add_images(project, 6, size=96)
    for seed, image in enumerate(images):
        review_with_truth(image, seed=seed, size=96)
    holdout = list(Image.objects.filter(project=project, split="holdout").order_by("id"))
    assert len(holdout) >= 2
    old, new = add_model_version(project), add_model_version(project)
    new.parent = old
    new.save()
    fixed_image, broken_image = holdout[0], holdout[1]
    for image in holdout:
        truth = list(Annotation.objects.filter(image=image))
        right = [Prediction(image=image, label_class_id=a.label_class_id, x=a.x, y=a.y, w=a.w, h=a.h, score=0.9)
                 for a in truth]
        for version, rows in ((old, [] if image == fixed_image else right), (new, [] if image == broken_image else right)):
            for row in rows:
                row.pk, row.model_version = None, version
            Prediction.objects.bulk_create(rows or [Prediction(image=image, model_version=version,
                                                               label_class_id=truth[0].label_class_id, x=0, y=0,
                                                               w=1, h=1, score=0.01)])
    client.force_login(add_member(project, Role.ANNOTATOR))
    default = client.get(reverse("training:compare", args=[project.pk])).content.decode()
    page = client.get(reverse("training:compare", args=[project.pk]), {"first": old.pk, "second": new.pk}).content.decode()
    # By default, the active version against the one it was trained from.
    assert default.split('id="compare-scores"')[1] == page.split('id="compare-scores"')[1]
    fixed, broke = page.split('id="fixed"')[1].split('id="broke"')
    assert fixed_image.original_name in fixed and broken_image.original_name not in fixed
    assert broken_image.original_name in broke
    assert f"same {len(holdout)} reviewed holdout images" in page
