import html
import re
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils import timezone

from review.models import ReviewStatus, Role
from tests.factories import UserFactory, add_images, add_member, make_project
from workers.models import Worker
from workers.services import worker_seen

pytestmark = pytest.mark.django_db


@pytest.fixture
def project():
    project = make_project(name="Visible <b>project</b>")
    add_images(project, 3)
    return project


def test_pages_need_login(client, project):
    image = project.images.first()
    for url in [reverse("review:project_list"), reverse("review:project_detail", args=[project.pk]),
                reverse("review:image_file", args=[image.pk])]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_login_page_renders(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200 and b"Log in" in response.content


def test_member_sees_project_and_its_images(client, project):
    client.force_login(add_member(project, Role.ANNOTATOR))
    listing = client.get(reverse("review:project_list"))
    assert listing.status_code == 200
    assert b"Visible &lt;b&gt;project&lt;/b&gt;" in listing.content  # escaped, never raw HTML
    page = client.get(reverse("review:project_detail", args=[project.pk]))
    assert page.status_code == 200
    assert page.content.count(b'class="thumb"') == 3


def test_the_project_page_says_which_queues_have_a_worker(client, project):
    client.force_login(add_member(project, Role.ANNOTATOR))

    def workers_line() -> dict[str, str]:
        page = client.get(reverse("review:project_detail", args=[project.pk])).content.decode()
        line = re.search(r'<p class="workers muted" id="workers">(.*?)</p>', page, re.S).group(1)
        return {queue: re.sub(r"\s+", " ", html.unescape(text)) for queue, text in
                re.findall(r'<span data-queue="(\w+)"[^>]*>(.*?)</span>', line, re.S)}

    assert workers_line() == {"inference": "predicting (inference) none running",
                              "training": "fine-tuning (training) none running",
                              "default": "imports, exports and the rest (default) none running"}
    start = timezone.now() - timedelta(hours=1)
    task = {"id": "t", "name": "training.tasks.training_run_execute", "args": [1], "since": None}
    worker_seen(name="cpu@a", queues=["default", "inference"], concurrency=2, pid=1, tasks=[task], started_at=start)
    worker_seen(name="gpu@b", queues=["training"], concurrency=1, pid=2, tasks=[task], started_at=start)
    Worker.objects.create(name="gpu@c", queues=["inference"], seen_at=timezone.now() - timedelta(minutes=30))
    assert workers_line() == {"inference": "predicting (inference) 1 free",
                              "training": "fine-tuning (training) 1 busy",
                              "default": "imports, exports and the rest (default) 1 free"}
    Worker.objects.filter(name="gpu@b").update(seen_at=timezone.now() - timedelta(minutes=12))
    assert workers_line()["training"] == "fine-tuning (training) none running, one last seen 12 minutes ago"
    assert "gpu@" not in client.get(reverse("review:project_detail", args=[project.pk])).content.decode()


def test_non_member_gets_404_for_project_and_its_media(client, project):
    client.force_login(UserFactory())
    assert b"Visible" not in client.get(reverse("review:project_list")).content
    assert client.get(reverse("review:project_detail", args=[project.pk])).status_code == 404
    assert client.get(reverse("review:image_file", args=[project.images.first().pk])).status_code == 404


def test_media_served_to_members_with_type_and_nosniff(client, project):
    client.force_login(add_member(project))
    response = client.get(reverse("review:image_file", args=[project.images.first().pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert b"".join(response.streaming_content).startswith(b"\x89PNG")


def test_status_filter(client, project):
    client.force_login(add_member(project))
    page = client.get(reverse("review:project_detail", args=[project.pk]), {"status": "reviewed"})
    assert page.content.count(b'class="thumb"') == 0


def upload(client, project, *files):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post(reverse("review:image_upload", args=[project.pk]),
                       {"files": [SimpleUploadedFile(name, data) for name, data in files]})


def test_upload_stores_good_files_and_reports_bad_ones(client, project):
    from review.demo_images import generate_scene

    client.force_login(add_member(project))
    response = upload(client, project, ("new.png", generate_scene(77).png_bytes()), ("evil.svg", b"<svg></svg>"))
    assert response.status_code == 302
    assert project.images.count() == 4
    shown = [str(m) for m in response.wsgi_request._messages]
    assert "evil.svg: The file is not an image in an accepted format (JPEG, PNG, WebP, BMP, TIFF)." in shown
    assert any("Added 1 image" in m for m in shown)


@pytest.mark.django_db(transaction=True)
def test_upload_starts_inference_when_a_model_is_active(client, project, django_capture_on_commit_callbacks):
    from inference.models import InferenceRun
    from review.demo_images import generate_scene
    from tests.factories import add_model_version

    add_model_version(project)
    client.force_login(add_member(project))
    with django_capture_on_commit_callbacks(execute=False):
        upload(client, project, ("new.png", generate_scene(78).png_bytes()))
    run = InferenceRun.objects.get()
    assert run.scope == "new_uploads" and run.progress_total == 1


def test_upload_refused_to_non_members(client, project):
    from review.demo_images import generate_scene

    client.force_login(UserFactory())
    assert upload(client, project, ("x.png", generate_scene(5).png_bytes())).status_code == 404
    assert project.images.count() == 3


def test_inference_start_needs_reviewer_role(client, project, django_capture_on_commit_callbacks):
    from inference.models import InferenceRun
    from tests.factories import add_model_version

    add_model_version(project)
    url = reverse("review:inference_start", args=[project.pk])
    client.force_login(add_member(project, Role.ANNOTATOR))
    assert client.post(url).status_code == 403
    client.force_login(add_member(project, Role.REVIEWER))
    with django_capture_on_commit_callbacks(execute=False):
        assert client.post(url, {"scope": "all"}).status_code == 302
    assert InferenceRun.objects.get().progress_total == 3


def test_queue_page_filters_sorts_and_pages(client, project):
    from review.models import Image

    images = list(project.images.order_by("id"))
    for priority, image in zip([0.2, 0.9, 0.5], images):
        Image.objects.filter(pk=image.pk).update(priority=priority)
    client.force_login(add_member(project))
    url = reverse("review:project_queue", args=[project.pk])
    page = client.get(url)
    order = [int(i) for i in re.findall(rb'data-image-id="(\d+)"', page.content)]
    assert order == [images[1].pk, images[2].pk, images[0].pk]
    newest = client.get(url, {"ordering": "newest"})
    assert [int(i) for i in re.findall(rb'data-image-id="(\d+)"', newest.content)][0] == images[2].pk
    assert client.get(url, {"status": "reviewed"}).content.count(b'class="thumb"') == 0
    bad = client.get(url, {"ordering": "file"}, follow=True)
    assert b"Unknown ordering" in bad.content and bad.content.count(b'class="thumb"') == 3


def test_the_review_queue_button_opens_the_images_waiting_for_review(client, project):
    """A reviewed image keeps its priority: the button and a bare queue URL (a breadcrumb) leave it
    out; the status filter's "any" (the form sends it empty) shows it again, first."""
    from review.models import Image

    reviewed, *waiting = project.images.order_by("id")
    Image.objects.filter(pk=reviewed.pk).update(status=ReviewStatus.REVIEWED, priority=9.0)
    client.force_login(add_member(project, Role.REVIEWER))
    page = client.get(reverse("review:project_detail", args=[project.pk])).content.decode()
    href = html.unescape(re.search(r'id="review-queue" href="([^"]+)"', page).group(1))
    queue = reverse("review:project_queue", args=[project.pk])

    def shown(url: str) -> list[int]:
        return [int(i) for i in re.findall(rb'data-image-id="(\d+)"', client.get(url).content)]

    assert sorted(shown(href)) == sorted(shown(queue)) == sorted(image.pk for image in waiting)
    assert sorted(shown(queue + "?ordering=newest")) == sorted(image.pk for image in waiting)
    assert shown(queue + "?status=")[0] == reviewed.pk
    assert shown(queue + "?status=&name=")[0] == reviewed.pk
    bare = client.get(queue).content.decode()
    assert '<option value="unreviewed" selected>' in bare  # the form says which view this is
    assert '<input type="hidden" name="status" value="unreviewed">' in bare  # "every image matching" means these


def test_a_queue_with_nothing_left_to_review_says_so(client, project):
    from review.models import Image

    Image.objects.filter(project=project).update(status=ReviewStatus.REVIEWED)
    client.force_login(add_member(project))
    queue = reverse("review:project_queue", args=[project.pk])
    assert "Nothing left to review" in client.get(queue).content.decode()
    filtered = client.get(queue + "?status=unreviewed").content.decode()
    assert "No images match." in filtered and "Nothing left" not in filtered


def test_queue_cards_say_what_the_thumbnail_shows(client, project):
    from review.models import Image, ReviewEvent

    first, second, third = project.images.order_by("id")
    Image.objects.filter(pk=first.pk).update(priority=0.9, uncertainty=0.456, disagreement=0.5, count_anomaly=0.25)
    Image.objects.filter(pk=second.pk).update(priority=0.5, uncertainty=None)
    circle = project.label_classes.get(name="circle")
    first.annotations.create(label_class=circle, x=1, y=1, w=5, h=5)
    second.annotations.create(label_class=circle, x=1, y=1, w=5, h=5)
    second.annotations.create(label_class=circle, x=9, y=9, w=5, h=5)
    ReviewEvent.objects.create(image=first, added=1)
    Image.objects.filter(pk=first.pk).update(correction_count=1)  # as a save keeps it
    client.force_login(add_member(project))
    page = client.get(reverse("review:project_queue", args=[project.pk])).content.decode()
    cards = re.findall(r'<li class="thumb" data-image-id="(\d+)">\s*<a href="([^"]+)"><img src="([^"]+)"[^>]*></a>'
                       r'.*?<span class="meta">([^<]*)</span>\s*<span class="meta">([^<]*)</span>', page, re.S)
    assert cards[0] == (str(first.pk), reverse("review:image_editor", args=[first.pk]),
                        reverse("review:image_thumbnail", args=[first.pk]), "Unreviewed · 1 box · 0 predicted",
                        "priority 0.90 · uncertainty 0.46 · disagreement 0.50 · unusual count 0.25 · 1 correction")
    assert cards[1][3:] == ("Unreviewed · 2 boxes · 0 predicted", "priority 0.50")
    assert cards[2][0] == str(third.pk)
    Image.objects.filter(pk=third.pk).update(original_name='"><script>alert(1)</script>.png')
    page = client.get(reverse("review:project_queue", args=[project.pk])).content.decode()
    assert "<script>alert(1)" not in page  # the cards are written in Python: still escaped
    assert 'alt="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;.png"' in page


def test_queue_page_query_count_does_not_grow_with_the_images_shown(client, project):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from inference.models import Prediction
    from tests.factories import add_model_version

    version = add_model_version(project)
    client.force_login(add_member(project))
    url = reverse("review:project_queue", args=[project.pk])
    counts = []
    for extra in (0, 10):
        for image in add_images(project, extra, first_seed=100):
            circle = project.label_classes.get(name="circle")
            image.annotations.create(label_class=circle, x=1, y=1, w=5, h=5)
            Prediction.objects.create(image=image, model_version=version, label_class=circle, x=1, y=1, w=5, h=5,
                                      score=0.5)
        with CaptureQueriesContext(connection) as queries:
            page = client.get(url, {"status": "unreviewed"})
        assert page.content.count(b'class="thumb"') == 3 + extra
        counts.append(len(queries))
    assert counts[0] == counts[1], counts


def test_a_score_range_finds_images_with_a_box_scored_within_it(client, project):
    """"Score from 0.4 to 0.6" on the page and min_score/max_score in the API: one box within both bounds."""
    from inference.models import Prediction
    from tests.factories import add_model_version

    sure_and_empty, borderline, unpredicted = project.images.order_by("id")
    old = add_model_version(project)
    active = add_model_version(project)
    circle = project.label_classes.get(name="circle")
    for image, version, score in [(sure_and_empty, active, 0.9), (sure_and_empty, active, 0.1),
                                  (sure_and_empty, old, 0.5), (borderline, active, 0.45)]:
        Prediction.objects.create(image=image, model_version=version, label_class=circle, x=1, y=1, w=5, h=5,
                                  score=score)
    client.force_login(add_member(project))
    page = reverse("review:project_queue", args=[project.pk])
    api = reverse("api:image_list", args=[project.pk])

    def found(query: dict) -> set[int]:
        shown = {int(i) for i in re.findall(rb'data-image-id="(\d+)"', client.get(page, query).content)}
        listed = {row["id"] for row in client.get(api, query).json()["results"]}
        assert shown == listed, query
        return shown

    assert found({"min_score": 0.4, "max_score": 0.6}) == {borderline.pk}
    assert found({"min_score": 0.4}) == {sure_and_empty.pk, borderline.pk}
    assert found({"max_score": 0.2}) == {sure_and_empty.pk}
    assert found({"min_score": 0.95}) == set()
    assert unpredicted.pk in found({"status": ""})


def test_the_class_filter_counts_the_predictions_the_editor_shows(client, project):
    """Predictions are stored down to 0.05: a faint one does not put an image under its class."""
    from inference.models import Prediction
    from review.models import Project
    from tests.factories import add_model_version

    drawn, confident, faint = project.images.order_by("id")
    version = add_model_version(project)
    circle, square = project.label_classes.get(name="circle"), project.label_classes.get(name="square")
    drawn.annotations.create(label_class=circle, x=1, y=1, w=5, h=5)
    for image, label_class, score in [(confident, circle, 0.7), (faint, circle, 0.08), (faint, square, 0.9)]:
        Prediction.objects.create(image=image, model_version=version, label_class=label_class, x=1, y=1, w=5, h=5,
                                  score=score)
    client.force_login(add_member(project))
    api = reverse("api:image_list", args=[project.pk])

    def found(label_class) -> set[int]:
        return {row["id"] for row in client.get(api, {"label_class": label_class.pk}).json()["results"]}

    assert found(circle) == {drawn.pk, confident.pk}
    assert found(square) == {faint.pk}
    Project.objects.filter(pk=project.pk).update(score_threshold=0.05)  # reviewing at 0.05: the faint one counts
    assert found(circle) == {drawn.pk, confident.pk, faint.pk}


def test_queue_next_opens_the_most_urgent_unreviewed_image(client, project):
    from review.models import Image

    images = list(project.images.order_by("id"))
    Image.objects.filter(pk=images[2].pk).update(priority=0.9)
    client.force_login(add_member(project))
    url = reverse("review:queue_next", args=[project.pk])
    assert client.get(url)["Location"] == reverse("review:image_editor", args=[images[2].pk])
    assert client.get(url, {"after": images[2].pk})["Location"] == reverse("review:image_editor", args=[images[0].pk])
    Image.objects.filter(project=project).update(status="reviewed")
    assert client.get(url)["Location"] == reverse("review:project_queue", args=[project.pk])


def test_editor_page_embeds_the_image_and_escapes_names(client, project):
    project.label_classes.create(name="<img src=x onerror=alert(1)>", index=9)
    image = project.images.first()
    client.force_login(add_member(project))
    page = client.get(reverse("review:image_editor", args=[image.pk]))
    assert page.status_code == 200
    assert b'id="editor-data"' in page.content and b"<img src=x onerror" not in page.content
    outsider = UserFactory()
    client.force_login(outsider)
    assert client.get(reverse("review:image_editor", args=[image.pk])).status_code == 404
    assert client.get(reverse("review:project_queue", args=[project.pk])).status_code == 404


def test_the_editor_s_score_slider_marks_the_model_s_deployment_threshold(client, project):
    from inference.models import ModelVersion
    from tests.factories import add_model_version

    version = add_model_version(project)
    image = project.images.first()
    client.force_login(add_member(project))
    plain = client.get(reverse("review:image_editor", args=[image.pk])).content.decode()
    assert "<datalist" not in plain and 'list="deploy-threshold"' not in plain  # uploaded: never measured
    ModelVersion.objects.filter(pk=version.pk).update(metrics={"operating_point": {"threshold": 0.4362, "f1": 0.8}})
    page = client.get(reverse("review:image_editor", args=[image.pk])).content.decode()
    assert 'list="deploy-threshold"' in page and '<option value="0.44">' in page
    assert "deployment threshold, 0.44" in page


def test_drift_monitor_plots_corrections_per_day_and_version(client, project):
    from review.models import ReviewEvent
    from tests.factories import add_model_version

    version = add_model_version(project)
    image = project.images.first()
    ReviewEvent.objects.create(image=image, model_version_id=version.pk, accepted=3, deleted=1, added=2,
                               seconds_spent=30)
    ReviewEvent.objects.create(image=image, model_version_id=version.pk, accepted=4, seconds_spent=10)
    client.force_login(add_member(project))
    page = client.get(reverse("review:project_detail", args=[project.pk]))
    [row] = page.context["drift"]
    assert row["label"] == "v1" and row["reviews"] == 2 and row["corrections_per_image"] == 1.5
    assert row["acceptance_rate"] == 7 / 8 and row["seconds_per_image"] == 20
    assert b'id="drift-corrections"' in page.content


def test_a_manager_deletes_an_image_from_the_editor_and_gets_the_next_one(client, project,
                                                                          django_capture_on_commit_callbacks):
    first, second, third = project.images.order_by("pk")
    annotator = add_member(project, Role.ANNOTATOR)
    client.force_login(annotator)
    assert reverse("review:image_remove", args=[first.pk]).encode() not in client.get(
        reverse("review:image_editor", args=[first.pk])).content
    client.force_login(project.memberships.get(role=Role.MANAGER).user)
    editor = client.get(reverse("review:image_editor", args=[first.pk]))
    assert reverse("review:image_remove", args=[first.pk]).encode() in editor.content
    stored = first.file.name
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("review:image_remove", args=[first.pk]), follow=True)
    assert response.redirect_chain[-1][0] in {reverse("review:image_editor", args=[image.pk])
                                              for image in (second, third)}
    assert not project.images.filter(pk=first.pk).exists() and not default_storage.exists(stored)
    assert project.images.count() == 2


def test_the_project_list_says_what_waits_for_you_in_each_project(client, django_assert_max_num_queries):
    from review import services
    from review.models import Image, ReviewStatus
    from tests.factories import review_with_truth

    bea, lead = UserFactory(username="bea"), UserFactory(username="lead")
    busy, quiet = make_project(name="Busy", owner=lead), make_project(name="Quiet", owner=lead)
    for project in (busy, quiet):
        add_member(project, Role.ANNOTATOR, bea)
    images = add_images(busy, 4, size=64)
    add_images(quiet, 1, size=64)
    services.images_assign(project=busy, images=Image.objects.filter(pk__in=[images[0].pk, images[1].pk]),
                           assignee=bea, by=lead)
    services.comment_add(image=images[2], author=lead, text="@bea what is this?")
    review_with_truth(images[3], seed=3, user=bea, size=64)
    services.image_status_set(image=Image.objects.get(pk=images[3].pk), status=ReviewStatus.UNREVIEWED, user=lead)
    services.comment_add(image=images[2], author=bea, text="@lead a van")  # for lead, not bea
    client.force_login(bea)
    with django_assert_max_num_queries(8):
        page = client.get(reverse("review:project_list")).content.decode()
    busy_row = page.split(f'href="/projects/{busy.pk}/"')[1].split("</tr>")[0]
    quiet_row = page.split(f'href="/projects/{quiet.pk}/"')[1].split("</tr>")[0]
    assert f"assigned_to={bea.pk}\">2 assigned</a>" in busy_row
    assert f"mentioned={bea.pk}\">1 mention</a>" in busy_row and f"sent_back_to={bea.pk}\">1 sent back</a>" in busy_row
    assert '<td class="waiting">' in quiet_row and "assigned" not in quiet_row and "–" in quiet_row
    client.force_login(lead)
    lead_page = client.get(reverse("review:project_list")).content.decode()
    assert "1 mention</a>" in lead_page and "assigned</a>" not in lead_page


def test_every_page_of_a_project_leads_back_to_it_the_same_way(client, project):
    """Each page inside a project starts with the same trail: the project's name, linked, then where you are."""
    from tests.factories import add_model_version

    older, newer = add_model_version(project, activate=False), add_model_version(project)
    client.force_login(add_member(project, Role.MANAGER))
    image = project.images.first()
    pages = [reverse(name, args=[project.pk]) for name in (
        "review:project_queue", "review:project_team", "review:project_settings", "training:project_models",
        "inference:second_look", "datasets:project_data", "webhooks:webhook_list")]
    pages += [reverse("training:compare", args=[project.pk]) + f"?first={older.pk}&second={newer.pk}",
              reverse("training:thresholds", args=[newer.pk]), reverse("inference:model_version_errors", args=[newer.pk]),
              reverse("review:image_editor", args=[image.pk])]
    project_link = f'<p class="crumbs"><a href="{reverse("review:project_detail", args=[project.pk])}">{html.escape(project.name)}</a> ›'
    for url in pages:
        page = client.get(url)
        assert page.status_code == 200, url
        assert project_link in page.content.decode(), url
