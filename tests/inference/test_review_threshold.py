"""The project's review threshold: what counts as the model's answer, set by a manager, and the stored
rankings and outcomes worked out again from the predictions already in the database."""
import math

import pytest
from django.urls import reverse

from inference import rerank
from inference.execution import _write_batch
from inference.models import BoxOutcome, RerankRun
from inference.rerank import rerank_run_execute
from inference.services import project_settings_update, rerank_run_create
from project.jobs import JobStatus
from review.models import Image, Project, ReviewStatus
from review.services import BoxIn, image_boxes_save
from tests.factories import add_images, add_member, add_model_version, api_client, make_project
from tests.inference.test_ranking import _result

pytestmark = pytest.mark.django_db

RANK_FIELDS = ("uncertainty", "disagreement", "count_anomaly", "priority", "ranked_by")
BOX = [10, 10, 40, 40]
OTHER_BOX = [50, 50, 80, 80]


def _ranking(image: Image) -> tuple:
    return Image.objects.values_list(*RANK_FIELDS).get(pk=image.pk)


@pytest.fixture
def scene(django_capture_on_commit_callbacks):
    """v1 then v2 predicted a queue image and a reviewed one; v2's second box scores 0.4, between 0.3 and 0.5."""
    project = make_project()
    queued, reviewed, crowd = add_images(project, 3, size=96)
    circle = project.label_classes.get(index=0)
    label_map = {1: circle.pk}
    image_boxes_save(image=reviewed, user=add_member(project), version=reviewed.version,
                     boxes=[BoxIn(label_class_id=circle.pk, x=10, y=10, w=30, h=30)])
    first, second = add_model_version(project), add_model_version(project)
    _write_batch(first, [_result(queued, [BOX], [1], [0.45])], label_map, threshold=0.5)
    reviewed_counts = {1: 1}
    batch = [_result(queued, [BOX, OTHER_BOX], [1, 1], [0.95, 0.4]),
             _result(reviewed, [BOX, OTHER_BOX], [1, 1], [0.9, 0.4]),
             _result(crowd, [], [], [])]
    _write_batch(second, batch, label_map, reviewed_counts, threshold=0.5)
    return {"project": project, "queued": queued, "reviewed": reviewed, "crowd": crowd, "second": second,
            "batch": batch, "label_map": label_map, "reviewed_counts": reviewed_counts}


def test_a_new_threshold_ranks_the_queue_as_an_inference_run_at_it_would(scene, django_capture_on_commit_callbacks):
    project, queued = scene["project"], scene["queued"]
    at_half = _ranking(queued)
    assert at_half[1] == 1.0  # v1's 0.45 box was no answer at 0.5: v2's one confident box disagrees fully
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = project_settings_update(project=project, score_threshold=0.3)
    assert len(callbacks) == 1 and run.status == JobStatus.QUEUED  # the worker's rerank, once this commits
    run = rerank_run_execute(run_id=run.pk)
    assert (run.status, run.progress_done, run.progress_total, run.images_ranked, run.images_judged) == (
        JobStatus.SUCCEEDED, 3, 3, 2, 1)
    reranked, crowd = _ranking(queued), _ranking(scene["crowd"])
    assert reranked != at_half and reranked[-1] == 2  # still v2's ranking, at the new threshold
    # The same scores as v2 predicting the images again at the project's threshold, now 0.3.
    _write_batch(scene["second"], scene["batch"], scene["label_map"], scene["reviewed_counts"])
    assert _ranking(queued) == pytest.approx(reranked) and _ranking(scene["crowd"]) == pytest.approx(crowd)


def test_a_new_threshold_judges_the_reviewed_images_again(scene, django_capture_on_commit_callbacks):
    project, reviewed = scene["project"], scene["reviewed"]
    kinds = lambda: sorted(BoxOutcome.objects.filter(image=reviewed, model_version=scene["second"])  # noqa: E731
                           .values_list("kind", flat=True))
    assert kinds() == ["tp"]  # the 0.4 box was shown to nobody: not an error
    with django_capture_on_commit_callbacks(execute=False):
        run = project_settings_update(project=project, score_threshold=0.3)
    rerank_run_execute(run_id=run.pk)
    assert kinds() == ["fp", "tp"]  # a deployment keeping boxes from 0.3 would draw it


def test_an_unchanged_threshold_queues_nothing_and_a_review_meanwhile_is_kept(scene, django_capture_on_commit_callbacks):
    project, queued = scene["project"], scene["queued"]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert project_settings_update(project=project, score_threshold=0.5) is None
    assert callbacks == [] and not RerankRun.objects.exists()
    Image.objects.filter(pk=queued.pk).update(status=ReviewStatus.REVIEWED, priority=-1.0)
    with django_capture_on_commit_callbacks(execute=False):
        run = project_settings_update(project=project, score_threshold=0.3)
    assert rerank_run_execute(run_id=run.pk).status == JobStatus.SUCCEEDED
    assert Image.objects.get(pk=queued.pk).priority == -1.0  # out of the queue: left as it was
    assert rerank_run_execute(run_id=987654) is None  # deleted meanwhile, with its project


def test_a_new_change_supersedes_a_rerank_still_going(scene, django_capture_on_commit_callbacks):
    project, queued = scene["project"], scene["queued"]
    at_half = _ranking(queued)
    with django_capture_on_commit_callbacks(execute=False):
        first = project_settings_update(project=project, score_threshold=0.3)
        second = project_settings_update(project=project, score_threshold=0.4)
    first.refresh_from_db()
    assert first.status == JobStatus.CANCELLED  # still queued: cancelled at once, and its task does nothing
    assert rerank_run_execute(run_id=first.pk) is None and _ranking(queued) == at_half
    # A run that started before a change its transaction could not see: each chunk reads the
    # threshold with the project row held, and stops before writing anything at the old one.
    stale = RerankRun.objects.create(project=project, score_threshold=0.3)
    stale = rerank_run_execute(run_id=stale.pk)
    assert stale.status == JobStatus.CANCELLED and stale.error.startswith("Superseded: the review threshold was "
                                                                          "changed to 0.4")
    assert _ranking(queued) == at_half and stale.images_ranked == 0
    assert rerank_run_execute(run_id=second.pk).status == JobStatus.SUCCEEDED
    assert _ranking(queued) != at_half


def test_a_rerank_cancelled_between_chunks_stops_there(scene, django_capture_on_commit_callbacks, monkeypatch):
    project, queued, crowd = scene["project"], scene["queued"], scene["crowd"]
    before = _ranking(queued), _ranking(crowd)
    with django_capture_on_commit_callbacks(execute=False):
        run = project_settings_update(project=project, score_threshold=0.3)
    monkeypatch.setattr(rerank, "CHUNK", 1)
    real_chunk = rerank._chunk_rerank

    def chunk_then_cancel(run, image_ids, reviewed_counts):  # a manager presses Cancel after the first chunk
        ranked = real_chunk(run, image_ids, reviewed_counts)
        RerankRun.objects.filter(pk=run.pk).update(cancel_requested=True)
        return ranked
    monkeypatch.setattr(rerank, "_chunk_rerank", chunk_then_cancel)
    run = rerank_run_execute(run_id=run.pk, progress_interval=0)
    assert (run.status, run.progress_done, run.progress_total, run.images_ranked) == (JobStatus.CANCELLED, 1, 3, 1)
    assert _ranking(queued) != before[0] and _ranking(crowd) == before[1]  # the first image only (ids in order)


def test_the_project_page_shows_reranks_and_managers_stop_or_restart_them(client, scene,
                                                                         django_capture_on_commit_callbacks):
    project = scene["project"]
    manager = project.memberships.get(role="manager").user
    with django_capture_on_commit_callbacks(execute=False):
        run = project_settings_update(project=project, user=manager, score_threshold=0.35)
    client.force_login(manager)
    page = client.get(reverse("review:project_detail", args=[project.pk])).content.decode()
    assert f'data-rerank-id="{run.pk}" data-status="queued"' in page and "<td>≥ 0.35</td>" in page
    assert reverse("inference:rerank_cancel", args=[run.pk]) in page
    response = client.post(reverse("inference:rerank_cancel", args=[run.pk]), follow=True)
    assert "is stopping" in response.content.decode()
    assert RerankRun.objects.get(pk=run.pk).status == JobStatus.CANCELLED
    page = client.get(reverse("review:project_detail", args=[project.pk])).content.decode()
    assert "Rank the queue again" in page
    refused = client.post(reverse("inference:rerank_cancel", args=[run.pk]), follow=True)
    assert "already cancelled; there is nothing to cancel" in refused.content.decode()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        client.post(reverse("inference:rerank_start", args=[project.pk]))
    again = RerankRun.objects.latest("created_at")
    assert len(callbacks) == 1 and again.pk != run.pk and again.score_threshold == 0.35
    annotator = add_member(project)
    client.force_login(annotator)
    page = client.get(reverse("review:project_detail", args=[project.pk])).content.decode()
    assert f'data-rerank-id="{again.pk}"' in page and "rerank_cancel" not in page and "Cancel</button>" not in page


def test_the_api_lists_starts_and_cancels_reranks(scene, django_capture_on_commit_callbacks):
    project = scene["project"]
    manager = project.memberships.get(role="manager").user
    api = api_client(manager)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        started = api.post(f"/api/v1/projects/{project.pk}/rerank-runs/")
    assert started.status_code == 201 and len(callbacks) == 1
    body = started.json()
    assert (body["status"], body["score_threshold"], body["percent"]) == ("queued", 0.5, 0.0)
    rerank_run_execute(run_id=body["id"])
    done = api.get(f"/api/v1/rerank-runs/{body['id']}/").json()
    assert (done["status"], done["percent"], done["images_ranked"], done["images_judged"]) == ("succeeded", 100.0, 2, 1)
    refused = api.post(f"/api/v1/rerank-runs/{body['id']}/cancel/")
    assert refused.status_code == 400 and "already succeeded" in refused.content.decode()
    with django_capture_on_commit_callbacks(execute=False):
        queued = rerank_run_create(project=project, user=manager)
    assert api.post(f"/api/v1/rerank-runs/{queued.pk}/cancel/").json()["status"] == "cancelled"
    listed = api.get(f"/api/v1/projects/{project.pk}/rerank-runs/").json()["results"]
    assert [row["id"] for row in listed] == [queued.pk, body["id"]]


@pytest.mark.parametrize("value", [0, 1, -0.2, "nan", "inf", "half"])
def test_the_api_refuses_a_threshold_out_of_range_and_changes_nothing(value):
    project = make_project()
    manager = project.memberships.get().user
    response = api_client(manager).patch(f"/api/v1/projects/{project.pk}/",
                                         {"name": "Renamed", "score_threshold": value}, format="json")
    assert response.status_code == 400 and "score_threshold" in response.json()["fields"]
    assert Project.objects.values_list("name", "score_threshold").get(pk=project.pk) == ("Shapes", 0.5)


def test_the_api_sets_the_threshold_and_reranks(django_capture_on_commit_callbacks):
    project = make_project()
    manager = project.memberships.get().user
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api_client(manager).patch(f"/api/v1/projects/{project.pk}/", {"score_threshold": 0.35},
                                             format="json")
    assert response.status_code == 200 and response.json()["score_threshold"] == 0.35
    assert len(callbacks) == 1
    annotator = add_member(project)
    assert api_client(annotator).patch(f"/api/v1/projects/{project.pk}/", {"score_threshold": 0.6},
                                       format="json").status_code == 403
    assert Project.objects.get(pk=project.pk).score_threshold == 0.35


def test_the_settings_page_sets_the_threshold(client, django_capture_on_commit_callbacks):
    project = make_project()
    client.force_login(project.memberships.get().user)
    data = {"name": "Shapes", "description": "", "holdout_fraction": "0.2", "retrain_after_reviews": "0",
            "infer_on_upload": "on", "score_threshold": "0.25"}
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(reverse("review:project_settings", args=[project.pk]), data)
    assert response.status_code == 302 and len(callbacks) == 1
    assert Project.objects.get(pk=project.pk).score_threshold == 0.25
    refused = client.post(reverse("review:project_settings", args=[project.pk]), {**data, "score_threshold": "1"})
    assert refused.status_code == 400 and "less than or equal to 0.99" in refused.content.decode()


def test_the_thresholds_page_offers_its_chosen_threshold_to_managers(client, django_capture_on_commit_callbacks):
    project = make_project()
    version = add_model_version(project)
    [image] = add_images(project, 1, size=96)
    circle = project.label_classes.get(index=0)
    Image.objects.filter(pk=image.pk).update(split="holdout")
    image.refresh_from_db()
    image_boxes_save(image=image, user=None, version=image.version,
                     boxes=[BoxIn(label_class_id=circle.pk, x=10, y=10, w=30, h=30)])
    _write_batch(version, [_result(image, [BOX], [1], [0.3125])], {1: circle.pk})
    page_url = reverse("training:thresholds", args=[version.pk])
    client.force_login(project.memberships.get().user)
    page = client.get(page_url).content.decode()
    assert "is reviewed at <strong>≥ 0.5</strong>" in page and "Review at ≥ 0.3125 instead" in page
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(reverse("training:review_threshold_use", args=[version.pk]), {"threshold": "0.3125"},
                               follow=True)
    assert "Shapes is reviewed at ≥ 0.3125 now" in response.content.decode() and len(callbacks) == 1
    assert Project.objects.get(pk=project.pk).score_threshold == 0.3125
    assert "instead" not in client.get(page_url).content.decode()  # nothing left to offer
    for bad in ("0.995", "nan", ""):
        response = client.post(reverse("training:review_threshold_use", args=[version.pk]), {"threshold": bad},
                               follow=True)
        assert "The review threshold was not changed" in response.content.decode()
    assert Project.objects.get(pk=project.pk).score_threshold == 0.3125
    annotator = add_member(project)
    client.force_login(annotator)
    assert "instead" not in client.get(page_url).content.decode()
    assert math.isclose(Project.objects.get(pk=project.pk).score_threshold, 0.3125)


def test_the_queue_counts_the_predictions_the_editor_will_show(scene):
    project, queued = scene["project"], scene["queued"]  # v2, the active model: 0.95 and 0.4 on it
    manager = project.memberships.get(role="manager").user

    def counted() -> int:
        rows = api_client(manager).get(f"/api/v1/projects/{project.pk}/images/").json()["results"]
        return next(row["prediction_count"] for row in rows if row["id"] == queued.pk)
    assert counted() == 1
    Project.objects.filter(pk=project.pk).update(score_threshold=0.3)
    assert counted() == 2
