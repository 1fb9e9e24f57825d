"""The comparison page: two versions on the same holdout images, with the images fixed and broken."""
import pytest
from django.urls import reverse

from inference.models import Prediction
from review.models import Annotation, Image, Role
from review.services import label_class_create
from review.tags import image_tags_add
from tests.factories import add_images, add_member, add_model_version, api_client, make_project, review_with_truth

pytestmark = pytest.mark.django_db


def _two_versions():
    """Two versions on the holdout: the newer fixes one image and breaks another; right on the rest."""
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
    return project, holdout, old, new, fixed_image, broken_image


def test_compare_page_lists_fixed_and_broken_images(client):
    project, holdout, old, new, fixed_image, broken_image = _two_versions()
    client.force_login(add_member(project, Role.ANNOTATOR))
    default = client.get(reverse("training:compare", args=[project.pk])).content.decode()
    page = client.get(reverse("training:compare", args=[project.pk]), {"first": old.pk, "second": new.pk}).content.decode()
    # By default, the active version against the one it was trained from.
    assert default.split('id="compare-scores"')[1] == page.split('id="compare-scores"')[1]
    fixed, broke = page.split('id="fixed"')[1].split('id="broke"')
    assert fixed_image.original_name in fixed and broken_image.original_name not in fixed
    assert broken_image.original_name in broke
    assert f"same {len(holdout)} reviewed holdout images" in page
    assert 'id="compare-unjudged"' not in page  # every class has held-out boxes here
    label_class_create(project=project, name="bicycle")
    page = client.get(reverse("training:compare", args=[project.pk]), {"first": old.pk, "second": new.pk}).content.decode()
    assert "Not judged on bicycle: no human box of it on these images." in page


def test_a_comparison_is_broken_down_by_tag_and_limited_to_one(client):
    """The newer version is better at the gate and worse in the yard: the tags say so, and each slice alone."""
    project, holdout, old, new, fixed_image, broken_image = _two_versions()
    others = [image for image in holdout if image not in (fixed_image, broken_image)]
    image_tags_add(project=project, images=Image.objects.filter(pk__in=[fixed_image.pk, *[i.pk for i in others]]),
                   names=["gate"])
    image_tags_add(project=project, images=Image.objects.filter(pk=broken_image.pk), names=["yard"])
    reader = add_member(project, Role.ANNOTATOR)
    url = reverse("api:model_version_compare", args=[project.pk])
    body = api_client(reader).get(url, {"first": old.pk, "second": new.pk}).json()
    slices = {row["tag"]: row for row in body["tags"]}
    assert [row["tag"] for row in body["tags"]] == ["gate", "yard"]  # most images first
    assert (slices["gate"]["images"], slices["yard"]["images"]) == (len(holdout) - 1, 1)
    gate_old, gate_new = slices["gate"]["versions"]
    yard_old, yard_new = slices["yard"]["versions"]
    assert gate_new["map"] > gate_old["map"] and gate_new["errors"] < gate_old["errors"]
    assert yard_new["map"] < yard_old["map"] and yard_new["errors"] > yard_old["errors"]

    yard = api_client(reader).get(url, {"first": old.pk, "second": new.pk, "tag": "yard"}).json()
    assert yard["images"] == 1 and yard["tag"] == "yard"
    assert [row["image"] for row in yard["broke"]] == [broken_image.pk] and yard["fixed"] == []
    assert [v["map"] for v in yard["versions"]] == [yard_old["map"], yard_new["map"]]
    missing = api_client(reader).get(url, {"first": old.pk, "second": new.pk, "tag": "dock"})
    assert missing.status_code == 400 and "no tag 'dock'" in str(missing.json())

    client.force_login(reader)
    page = client.get(reverse("training:compare", args=[project.pk]), {"first": old.pk, "second": new.pk}).content.decode()
    assert 'data-tag="gate"' in page and 'data-tag="yard"' in page
    one = client.get(reverse("training:compare", args=[project.pk]),
                     {"first": old.pk, "second": new.pk, "tag": "yard"}).content.decode()
    assert "same 1 reviewed holdout image" in one and "tagged <strong>yard</strong>" in one
    assert broken_image.original_name in one.split('id="broke"')[1]


def test_an_image_a_version_predicted_with_no_box_counts_with_its_misses():
    """A daylight model finds nothing at night: no prediction rows, yet it predicted those images, and a
    comparison (or the thresholds page) that left them out would hide exactly where it fails."""
    from inference.models import InferenceChunk, InferenceRun
    from training.selectors import model_version_operating_points, model_versions_compare

    project, holdout, old, new, fixed_image, broken_image = _two_versions()
    blind = holdout[2]
    Prediction.objects.filter(model_version=old, image=blind).delete()  # the old one found nothing there
    never = holdout[3]
    Prediction.objects.filter(model_version=old, image=never).delete()  # ... and never predicted this one
    run = InferenceRun.objects.create(project=project, model_version=old, scope="ids")
    InferenceChunk.objects.create(run=run, number=0, image_ids=[blind.pk], finished=True)
    InferenceChunk.objects.create(run=run, number=1, image_ids=[never.pk], finished=False)  # not read yet
    result = model_versions_compare(first=old, second=new, score_threshold=0.5)
    assert result["images"] == len(holdout) - 1  # `never` is out; `blind` is in
    assert blind.pk in [row["image"] for row in result["fixed"]]  # the new one finds its boxes
    points = model_version_operating_points(version=old)
    assert points["images"] == len(holdout) - 1
    Image.objects.filter(pk=blind.pk).update(inference_error="cannot identify image file")
    assert model_versions_compare(first=old, second=new, score_threshold=0.5)["images"] == len(holdout) - 2


def test_a_tag_the_second_version_is_blind_on_is_called_clearly_lower(client):
    """Right everywhere before; after, blind on the yard camera's images: its loss is clear, the gate's nil."""
    project = make_project(holdout_fraction=0.9)
    images = add_images(project, 26, size=96)
    for seed, image in enumerate(images):
        review_with_truth(image, seed=seed, size=96)
    holdout = list(Image.objects.filter(project=project, split="holdout").order_by("id"))
    gate, yard = holdout[:len(holdout) // 2], holdout[len(holdout) // 2:]
    assert len(gate) >= 10 and len(yard) >= 10
    old, new = add_model_version(project), add_model_version(project)
    for version, blind_on in ((old, []), (new, yard)):
        for image in holdout:
            truth = Annotation.objects.filter(image=image)
            Prediction.objects.bulk_create(
                [Prediction(image=image, model_version=version, label_class_id=truth[0].label_class_id, x=0, y=0,
                            w=1, h=1, score=0.01)] if image in blind_on else
                [Prediction(image=image, model_version=version, label_class_id=a.label_class_id, x=a.x, y=a.y,
                            w=a.w, h=a.h, score=0.9) for a in truth])
    image_tags_add(project=project, images=Image.objects.filter(pk__in=[i.pk for i in gate]), names=["gate"])
    image_tags_add(project=project, images=Image.objects.filter(pk__in=[i.pk for i in yard]), names=["yard"])
    image_tags_add(project=project, images=Image.objects.filter(pk__in=[i.pk for i in yard[:3]]), names=["dusk"])
    waiting = add_images(project, 12, first_seed=100, size=96)  # more dusk images, not reviewed yet: the held-out ones would judge it
    image_tags_add(project=project, images=Image.objects.filter(pk__in=[i.pk for i in waiting]), names=["dusk"])
    held_out = Image.objects.filter(pk__in=[i.pk for i in waiting], split="holdout").count()
    assert 0 < held_out < 12  # the training ones would not count
    reader = add_member(project, Role.ANNOTATOR)
    body = api_client(reader).get(reverse("api:model_version_compare", args=[project.pk]),
                                  {"first": old.pk, "second": new.pk}).json()
    slices = {row["tag"]: row for row in body["tags"]}
    assert slices["yard"]["clear_loss"] and slices["yard"]["change_interval"][1] < 0
    assert not slices["gate"]["clear_loss"] and slices["gate"]["change_interval"] == [0.0, 0.0]
    assert slices["dusk"]["change_interval"] is None and not slices["dusk"]["clear_loss"]  # 3 images: not judged
    assert (slices["dusk"]["holdout_waiting"], slices["yard"]["holdout_waiting"]) == (held_out, None)
    client.force_login(reader)
    page = client.get(reverse("training:compare", args=[project.pk]), {"first": old.pk, "second": new.pk}).content.decode()
    yard_row = page.split('<tr data-tag="yard">')[1].split("</tr>")[0]
    low, high = slices["yard"]["change_interval"]
    assert f"{low:.3f} to {high:.3f} <strong class=\"clear-loss\">clearly lower</strong>" in yard_row
    assert f"too few images; {held_out} held-out image" in page.split('<tr data-tag="dusk">')[1].split("</tr>")[0]
