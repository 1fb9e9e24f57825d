"""Actions on many images at once: predict, approve, send back and delete, by ids or by the queue's
filters, from the API and the queue page. A refused request changes nothing."""
import pytest
from django.core.files.storage import default_storage
from django.urls import reverse

from inference.models import InferenceRun
from review import bulk_actions
from review.models import Comment, Image, ReviewStatus, Role, StatusChange
from review.services import image_boxes_save, image_hold, image_status_set
from tests.factories import add_images, add_member, add_model_version, api_client, make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def queue():
    """Six images: two unreviewed, two reviewed by Ann, two approved (saved by Ann, approved by Rob)."""
    project = make_project()
    ann, rob = add_member(project, Role.ANNOTATOR), add_member(project, Role.REVIEWER)
    images = add_images(project, 6)
    for image in images[2:]:
        image_boxes_save(image=image, user=ann, boxes=[], version=1)
    for image in images[4:]:
        image_status_set(image=Image.objects.get(pk=image.pk), status=ReviewStatus.APPROVED, user=rob)
    return {"project": project, "ann": ann, "rob": rob, "ids": [image.pk for image in images]}


def _bulk(user, project, body):
    return api_client(user).post(reverse("api:image_bulk", args=[project.pk]), body, format="json")


def _statuses(ids) -> list[str]:
    return [Image.objects.get(pk=pk).status for pk in ids]


def test_approve_by_ids_approves_the_reviewed_and_leaves_the_rest(queue):
    ids, rob = queue["ids"], queue["rob"]
    before = {image.pk: image.version for image in Image.objects.filter(pk__in=ids)}
    image_hold(image=Image.objects.get(pk=ids[2]), user=queue["ann"])
    response = _bulk(rob, queue["project"], {"action": "approve", "images": ids[1:4], "comment": "Looks right."})
    assert response.status_code == 200, response.json()
    assert response.json() | {"detail": ""} == {"action": "approve", "matched": 3, "changed": 2, "skipped": 1,
                                               "inference_run": None, "export": None, "detail": ""}
    assert "Approved: 2 images; 1 image left as they were" in response.json()["detail"]
    assert _statuses(ids) == ["unreviewed", "unreviewed", "approved", "approved", "approved", "approved"]
    changed = Image.objects.filter(pk__in=ids[2:4])
    # Each change is one more version (an editor open on it now gets a 409), releases a hold and is recorded.
    assert all(image.version == before[image.pk] + 1 and image.held_by_id is None for image in changed)
    assert Image.objects.get(pk=ids[1]).version == before[ids[1]]
    verdicts = StatusChange.objects.filter(image_id__in=ids[2:4])
    assert {(v.user_id, v.status, v.reviewed_by_id) for v in verdicts} == {(rob.pk, "approved", queue["ann"].pk)}
    assert [c.text for c in Comment.objects.filter(image_id__in=ids[2:4])] == ["Looks right."] * 2
    assert all(image.comment_count == 1 for image in changed)


def test_send_back_by_filter_returns_the_approved_with_the_reason(queue):
    ids = queue["ids"]
    response = _bulk(queue["rob"], queue["project"],
                     {"action": "send_back", "filter": {"status": "approved"}, "comment": "Squares, not circles."})
    assert response.json()["changed"] == 2 and response.json()["skipped"] == 0
    assert _statuses(ids) == ["unreviewed"] * 2 + ["reviewed"] * 2 + ["unreviewed"] * 2
    assert Comment.objects.filter(image_id__in=ids[4:], text="Squares, not circles.").count() == 2
    assert StatusChange.objects.filter(image_id__in=ids[4:], status="unreviewed").count() == 2


def test_predict_queues_one_run_over_the_selection(queue):
    project, ids = queue["project"], queue["ids"]
    refused = _bulk(queue["rob"], project, {"action": "predict", "images": ids[:2]})
    assert refused.status_code == 400 and "no active model" in refused.json()["detail"]
    assert not InferenceRun.objects.exists()

    add_model_version(project)
    response = _bulk(queue["rob"], project, {"action": "predict", "filter": {"status": "reviewed"}})
    run = InferenceRun.objects.get()
    assert response.json()["inference_run"] == run.pk and response.json()["changed"] == 2
    assert (run.scope, sorted(run.image_ids), run.requested_by) == ("ids", ids[2:4], queue["rob"])


def test_only_managers_delete_and_a_delete_takes_files_with_it(queue, django_capture_on_commit_callbacks):
    project, ids = queue["project"], queue["ids"]
    files = list(Image.objects.filter(pk__in=ids[:2]).values_list("file", flat=True))
    assert _bulk(queue["rob"], project, {"action": "delete", "images": ids[:2]}).status_code == 403
    assert Image.objects.filter(project=project).count() == 6

    with django_capture_on_commit_callbacks(execute=True):  # the files go once the delete is committed
        response = _bulk(project.memberships.get(role=Role.MANAGER).user, project,
                         {"action": "delete", "images": ids[:2]})
    assert response.json()["changed"] == 2
    assert sorted(Image.objects.filter(project=project).values_list("pk", flat=True)) == ids[2:]
    assert not any(default_storage.exists(name) for name in files)


@pytest.mark.parametrize("body, field", [
    ({"action": "approve"}, "images"),                                             # no selection
    ({"action": "approve", "images": [], "filter": {}}, "images"),                 # both
    ({"action": "approve", "images": []}, "images"),                               # an empty one
    ({"action": "approve", "images": ["seven"]}, "images"),
    ({"action": "approve", "images": [10**20]}, "images"),                          # larger than any id
    ({"action": "approve", "filter": {"colour": "red"}}, "filter"),                 # unknown filter
    ({"action": "approve", "filter": {"status": "maybe"}}, "filter"),
    ({"action": "approve", "filter": {"name": "no such image"}}, "images"),         # matches nothing
    ({"action": "archive", "images": [1]}, "action"),
    ({"action": "send_back", "filter": {}, "comment": "x" * 2001}, "comment"),
])
def test_bad_requests_name_the_field_and_change_nothing(queue, body, field):
    response = _bulk(queue["rob"], queue["project"], body)
    assert response.status_code == 400, response.json()
    assert field in response.json()["fields"], response.json()
    assert _statuses(queue["ids"]) == ["unreviewed"] * 2 + ["reviewed"] * 2 + ["approved"] * 2
    assert not Comment.objects.exists()


def test_other_projects_images_are_refused_whole(queue):
    other = add_images(make_project(owner=queue["rob"]), 1)[0]
    response = _bulk(queue["rob"], queue["project"], {"action": "approve", "images": [queue["ids"][2], other.pk]})
    assert response.status_code == 400 and str(other.pk) in response.json()["detail"]
    assert _statuses(queue["ids"])[2] == "reviewed" and other.status == "unreviewed"


def test_a_selection_over_the_limit_is_refused_whole(queue, monkeypatch):
    monkeypatch.setattr(bulk_actions, "MAX_IMAGES", 3)
    response = _bulk(queue["rob"], queue["project"], {"action": "send_back", "filter": {"split": ""}})
    assert response.status_code == 400 and "6 images match; at most 3" in response.json()["detail"]
    assert _statuses(queue["ids"])[4:] == ["approved", "approved"]


def test_annotators_and_outsiders_cannot_act(queue):
    assert _bulk(queue["ann"], queue["project"], {"action": "approve", "images": queue["ids"]}).status_code == 403
    stranger = make_project().memberships.get().user
    assert _bulk(stranger, queue["project"], {"action": "approve", "images": queue["ids"]}).status_code == 404
    assert not StatusChange.objects.exclude(user=queue["rob"]).exists()


# --- The queue page -------------------------------------------------------------------------------

def _queue_page(client, project, query=""):
    return client.get(reverse("review:project_queue", args=[project.pk]) + query).content.decode()


def test_the_queue_offers_bulk_actions_by_role(client, queue):
    project = queue["project"]
    client.force_login(queue["ann"])
    page = _queue_page(client, project)
    assert 'id="bulk"' not in page and 'name="image"' not in page
    client.force_login(queue["rob"])
    page = _queue_page(client, project, "?status=reviewed&ordering=newest")
    assert page.count('name="image"') == 2 and 'value="approve"' in page and 'value="delete"' not in page
    # "Every image matching" carries the filters, not the ordering.
    assert '<input type="hidden" name="status" value="reviewed">' in page and 'name="ordering" value' not in page
    client.force_login(project.memberships.get(role=Role.MANAGER).user)
    assert 'value="delete"' in _queue_page(client, project)


def test_ticked_images_are_approved_from_the_page(client, queue):
    client.force_login(queue["rob"])
    url = reverse("review:queue_bulk", args=[queue["project"].pk])
    response = client.post(url, {"action": "approve", "scope": "selected", "image": queue["ids"][:3],
                                 "status": "reviewed"}, follow=True)
    assert response.redirect_chain[-1][0].endswith("/queue/?status=reviewed")
    assert "Approved: 1 image; 2 images left as they were" in response.content.decode()
    assert _statuses(queue["ids"])[:4] == ["unreviewed", "unreviewed", "approved", "reviewed"]

    nothing = client.post(url, {"action": "approve", "scope": "selected"}, follow=True)
    assert "Select at least one image" in nothing.content.decode()


def test_a_delete_or_a_whole_match_asks_again_first(client, queue):
    project, ids = queue["project"], queue["ids"]
    client.force_login(project.memberships.get(role=Role.MANAGER).user)
    url = reverse("review:queue_bulk", args=[project.pk])
    page = client.post(url, {"action": "delete", "scope": "selected", "image": ids[:2]}).content.decode()
    assert "Delete 2 images?" in page and "scene-0.png" in page
    assert Image.objects.filter(project=project).count() == 6
    client.post(url, {"action": "delete", "scope": "selected", "image": ids[:2], "confirmed": "yes"})
    assert Image.objects.filter(project=project).count() == 4

    page = client.post(url, {"action": "send_back", "scope": "matching", "status": "approved",
                             "comment": "Recheck"}).content.decode()
    assert "Send back 2 images?" in page and 'name="comment" value="Recheck"' in page
    assert _statuses(ids[4:]) == ["approved", "approved"]
    client.post(url, {"action": "send_back", "scope": "matching", "status": "approved", "comment": "Recheck",
                      "confirmed": "yes"})
    assert _statuses(ids[4:]) == ["unreviewed", "unreviewed"]


def test_annotators_and_reviewers_deleting_are_refused_on_the_page(client, queue):
    url = reverse("review:queue_bulk", args=[queue["project"].pk])
    client.force_login(queue["ann"])
    assert client.post(url, {"action": "approve", "scope": "selected", "image": queue["ids"]}).status_code == 403
    client.force_login(queue["rob"])
    assert client.post(url, {"action": "delete", "scope": "selected", "image": queue["ids"],
                             "confirmed": "yes"}).status_code == 403
    assert Image.objects.filter(project=queue["project"]).count() == 6
    assert _statuses(queue["ids"])[2:4] == ["reviewed", "reviewed"]


def test_a_manager_exports_the_reviewed_images_of_a_selection(queue, client):
    """The export job holds the chosen reviewed and approved images only, with their labels."""
    import zipfile

    from datasets.execution import dataset_export_execute
    from datasets.models import DatasetExport

    project, ids = queue["project"], queue["ids"]
    manager = project.memberships.get(role=Role.MANAGER).user
    assert _bulk(queue["rob"], project, {"action": "export", "images": ids}).status_code == 403  # managers export
    response = _bulk(manager, project, {"action": "export", "images": ids[1:4], "format": "yolo"})
    assert (response.json()["changed"], response.json()["skipped"]) == (2, 1), response.json()
    job = DatasetExport.objects.get(pk=response.json()["export"])
    assert (job.format, job.source, job.image_ids) == ("yolo", "reviewed", ids[2:4])
    job = dataset_export_execute(job_id=job.pk)
    with zipfile.ZipFile(job.file.open("rb")) as archive:
        images = sorted(name for name in archive.namelist() if name.startswith("images/"))
    assert sorted(name.rsplit("/", 1)[-1] for name in images) == ["scene-2.png", "scene-3.png"], images
    assert job.image_count == 2

    refused = _bulk(manager, project, {"action": "export", "images": ids[:2]})  # unreviewed only: nothing to export
    assert refused.status_code == 400 and "no labels to export" in refused.json()["detail"]
    assert DatasetExport.objects.count() == 1

    client.force_login(manager)  # from the page: the export's progress and download are on the data page
    page = client.post(reverse("review:queue_bulk", args=[project.pk]),
                       {"action": "export", "scope": "selected", "image": ids[4:], "format": "coco"}, follow=True)
    assert page.redirect_chain[-1][0] == reverse("datasets:project_data", args=[project.pk])
    assert "2 chosen images as COCO" in page.content.decode()
