"""The error patches page and the editor's focus link."""
import pytest
from django.urls import reverse

from inference.models import BoxOutcome, Prediction
from review.models import LabelClass, Role
from review.services import BoxIn, image_boxes_save
from tests.factories import UserFactory, add_images, add_member, add_model_version, make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def judged():
    """One reviewed image with a correct box, a false positive and a miss for v1."""
    project = make_project(class_names=["car", "<img src=x onerror=alert(1)>"])
    [image] = add_images(project, 1, size=96)
    version = add_model_version(project)
    car, odd = LabelClass.objects.filter(project=project).order_by("index")
    Prediction.objects.bulk_create([
        Prediction(image=image, model_version=version, label_class=car, x=10, y=10, w=20, h=20, score=0.95),
        Prediction(image=image, model_version=version, label_class=odd, x=60, y=5, w=20, h=20, score=0.85),
    ])
    image_boxes_save(image=image, user=None, version=image.version,
                     boxes=[BoxIn(car.pk, 10, 10, 20, 20), BoxIn(car.pk, 50, 60, 30, 30)])
    from inference.outcomes import box_outcomes_refresh
    box_outcomes_refresh(image_ids=[image.pk])
    return project, image, version


def test_errors_page_shows_each_error_as_a_patch_linking_to_the_editor(client, judged):
    project, image, version = judged
    client.force_login(add_member(project, Role.ANNOTATOR))
    page = client.get(reverse("inference:model_version_errors", args=[version.pk])).content.decode()
    assert page.count('class="patch ') == 2  # the false positive and the miss; the correct box is not an error
    assert f"{reverse('review:image_editor', args=[image.pk])}?model_version={version.pk}&amp;focus=50.0,60.0,30.0,30.0" in page
    assert "<img src=x onerror" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    # Each tile loads its region (the miss at 50,60 30x30 with 16 pixels around it), not the whole image.
    assert f"{reverse('review:image_region', args=[image.pk])}?region=34,44,96,96" in page
    assert reverse("review:image_file", args=[image.pk]) not in page
    only_missed = client.get(reverse("inference:model_version_errors", args=[version.pk]), {"kind": "missed"})
    assert only_missed.content.decode().count('class="patch ') == 1


def test_errors_page_and_api_keep_to_one_tag_and_its_links_keep_every_filter(client, judged):
    from review.models import Image
    from review.tags import image_tags_add

    project, image, version = judged
    [other] = add_images(project, 1, size=96, first_seed=7)  # a second reviewed image, untagged: a miss and an fp
    car = LabelClass.objects.get(project=project, name="car")
    Prediction.objects.create(image=other, model_version=version, label_class=car, x=60, y=60, w=20, h=20, score=0.9)
    image_boxes_save(image=other, user=None, version=other.version, boxes=[BoxIn(car.pk, 5, 5, 30, 30)])
    from inference.outcomes import box_outcomes_refresh
    box_outcomes_refresh(image_ids=[other.pk])
    image_tags_add(project=project, images=Image.objects.filter(pk=image.pk), names=["gate cam"])
    client.force_login(add_member(project, Role.ANNOTATOR))
    url = reverse("inference:model_version_errors", args=[version.pk])
    assert client.get(url).content.decode().count('class="patch ') == 4
    page = client.get(url, {"tag": "gate cam", "kind": "missed"}).content.decode()
    assert page.count('class="patch ') == 1 and "focus=50.0,60.0" in page  # the tagged image's miss only
    assert 'href="?kind=fp&amp;tag=gate+cam"' in page  # another kind, the same tag
    assert 'href="?kind=missed"' in page  # every tag, the same kind
    assert client.get(url, {"tag": "nobody's"}).content.decode().count('class="patch ') == 4  # unknown: ignored
    api = client.get(f"/api/v1/model-versions/{version.pk}/outcomes/", {"tag": "gate cam"}).json()
    assert sorted(o["kind"] for o in api["results"]) == ["fp", "missed"]


def test_errors_page_and_api_need_membership(client, judged):
    project, image, version = judged
    client.force_login(UserFactory())
    assert client.get(reverse("inference:model_version_errors", args=[version.pk])).status_code == 404
    assert client.get(f"/api/v1/model-versions/{version.pk}/outcomes/").status_code == 404


def test_outcomes_api_filters_and_counts(client, judged):
    project, image, version = judged
    client.force_login(add_member(project, Role.ANNOTATOR))
    listed = client.get(f"/api/v1/model-versions/{version.pk}/outcomes/").json()
    assert sorted(o["kind"] for o in listed["results"]) == ["fp", "missed"]
    assert client.get(f"/api/v1/model-versions/{version.pk}/outcomes/", {"kind": "tp"}).json()["count"] == 1
    assert client.get(f"/api/v1/model-versions/{version.pk}/outcomes/", {"kind": "nope"}).status_code == 400
    counts = client.get(f"/api/v1/model-versions/{version.pk}/outcomes/counts/").json()
    assert counts["total"]["tp"] == 1 and counts["total"]["fp"] == 1 and counts["total"]["missed"] == 1
    assert BoxOutcome.objects.count() == 3


def test_editor_shows_the_chosen_version_and_why_the_image_is_ranked(client, judged):
    project, image, version = judged
    client.force_login(add_member(project, Role.ANNOTATOR))
    page = client.get(reverse("review:image_editor", args=[image.pk]), {"model_version": version.pk}).content.decode()
    assert f"predictions of {version}" in page
    image.uncertainty, image.disagreement, image.count_anomaly, image.priority = 0.8, 0.5, 0.0, 0.39
    image.save()
    page = client.get(reverse("review:image_editor", args=[image.pk])).content.decode()
    assert "Review priority 0.39" in page and "0.3 × uncertainty 0.80" in page and "0.3 × disagreement" in page
