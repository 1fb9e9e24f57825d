"""E-mail to members: what each action queues once it commits, and what the worker's task sends to whom."""
import re
from functools import partial

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.urls import reverse

from review import notifications, services
from review.models import Image, NotificationSettings, ReviewStatus, Role
from review.notifications import SEND_TASK, notification_email_send, notify_later
from tests.factories import UserFactory, add_images, add_member, make_project, review_with_truth

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def email_on(settings):
    settings.EMAIL_NOTIFICATIONS = True
    settings.SITE_URL = "https://labels.example"


@pytest.fixture
def team():
    project = make_project(name="Night cameras")
    lead = add_member(project, Role.MANAGER, UserFactory(username="lead", email="lead@example.com"))
    bea = add_member(project, Role.ANNOTATOR, UserFactory(username="bea", email="bea@example.com"))
    cai = add_member(project, Role.ANNOTATOR, UserFactory(username="cai", email="cai@example.com"))
    images = add_images(project, 4, size=64)
    return project, lead, bea, cai, images


def queued(callbacks) -> list[dict]:
    """The notification tasks an action queued for after its commit."""
    return [c.keywords["kwargs"] for c in callbacks if isinstance(c, partial) and c.args == (SEND_TASK,)]


def sent_after(callbacks) -> list:
    """Run the queued tasks as a worker would; the e-mails they sent."""
    for kwargs in queued(callbacks):
        notification_email_send(**kwargs)
    return mail.outbox


def test_a_mention_e_mails_the_member_named_with_the_comment_and_a_link(team, django_capture_on_commit_callbacks):
    project, lead, bea, cai, images = team
    with django_capture_on_commit_callbacks() as callbacks:
        services.comment_add(image=images[0], author=lead, text="@bea is this a truck?\nOr a van?")
    [message] = sent_after(callbacks)
    assert message.to == ["bea@example.com"] and message.subject == "lead mentioned you in Night cameras"
    assert "> @bea is this a truck?\n> Or a van?\n" in message.body
    assert f"https://labels.example/images/{images[0].pk}/edit" in message.body
    assert "https://labels.example/account/" in message.body


def test_a_bulk_send_back_e_mails_each_reviewer_once_about_their_own_images(team, django_capture_on_commit_callbacks):
    project, lead, bea, cai, images = team
    for seed, (image, reviewer) in enumerate(zip(images, [bea, bea, cai, lead])):
        review_with_truth(image, seed=seed, user=reviewer, size=64)
    with django_capture_on_commit_callbacks() as callbacks:
        services.images_status_set(images=Image.objects.filter(project=project), status=ReviewStatus.UNREVIEWED,
                                   user=lead, comment="Boxes too loose")
    messages = {m.to[0]: m for m in sent_after(callbacks)}
    assert set(messages) == {"bea@example.com", "cai@example.com"}  # not the lead, who sent back their own
    assert messages["bea@example.com"].subject == "lead sent back 2 images you reviewed in Night cameras"
    assert f"/projects/{project.pk}/queue/?sent_back_to={bea.pk}" in messages["bea@example.com"].body
    assert "> Boxes too loose" in messages["cai@example.com"].body
    assert f"/images/{images[2].pk}/edit" in messages["cai@example.com"].body  # one image: straight to it


def test_one_send_back_from_the_editor(team, django_capture_on_commit_callbacks):
    project, lead, bea, cai, images = team
    review_with_truth(images[0], seed=0, user=bea, size=64)
    with django_capture_on_commit_callbacks() as callbacks:
        services.image_status_set(image=Image.objects.get(pk=images[0].pk), status=ReviewStatus.UNREVIEWED, user=lead)
    [message] = sent_after(callbacks)
    assert message.to == ["bea@example.com"] and "to be reviewed again." in message.body


def test_an_assignment_e_mails_the_assignee_unless_they_took_the_images_themselves(
        team, django_capture_on_commit_callbacks):
    project, lead, bea, cai, images = team
    with django_capture_on_commit_callbacks() as callbacks:
        services.images_assign(project=project, images=Image.objects.filter(project=project), assignee=cai, by=lead)
    [message] = sent_after(callbacks)
    assert message.to == ["cai@example.com"] and message.subject == "lead assigned 4 images to you in Night cameras"
    assert f"?assigned_to={cai.pk}" in message.body
    with django_capture_on_commit_callbacks() as callbacks:
        services.images_assign(project=project, images=Image.objects.filter(project=project), assignee=bea, by=bea)
        services.images_assign(project=project, images=Image.objects.filter(project=project), assignee=None, by=lead)
    assert queued(callbacks) == []


def test_nobody_is_e_mailed_who_left_has_no_address_or_said_no(team):
    project, lead, bea, cai, images = team
    nobody = add_member(project, Role.ANNOTATOR, UserFactory(username="dee", email=""))
    NotificationSettings.objects.create(user=cai, email_mentions=False)
    outsider = UserFactory(username="eve", email="eve@example.com")  # never a member
    sent = notification_email_send(kind="mention", project_id=project.pk, author_id=lead.pk, image_ids=[images[0].pk],
                                   user_ids=[bea.pk, cai.pk, nobody.pk, outsider.pk], text="@bea @cai @dee @eve")
    assert sent == 1 and [m.to for m in mail.outbox] == [["bea@example.com"]]
    # cai still hears of assignments: the setting is per kind.
    assert notification_email_send(kind="assignment", project_id=project.pk, author_id=lead.pk,
                                   image_ids=[images[0].pk], user_ids=[cai.pk]) == 1
    project.memberships.filter(user=bea).delete()
    assert notification_email_send(kind="mention", project_id=project.pk, author_id=lead.pk,
                                   image_ids=[images[0].pk], user_ids=[bea.pk], text="@bea") == 0


def test_nothing_is_queued_when_e_mail_is_off_or_nothing_happened(team, settings, django_capture_on_commit_callbacks):
    project, lead, bea, cai, images = team
    with django_capture_on_commit_callbacks() as callbacks:
        notify_later(kind="mention", project_id=project.pk, user_ids=[lead.pk], author_id=lead.pk,
                     image_ids=[images[0].pk])  # only the author
        notify_later(kind="assignment", project_id=project.pk, user_ids=[bea.pk], author_id=lead.pk, image_ids=[])
        settings.EMAIL_NOTIFICATIONS = False
        services.comment_add(image=images[0], author=lead, text="@bea look")
    assert queued(callbacks) == []
    with pytest.raises(ValueError, match="unknown notification kind"):
        notify_later(kind="party", project_id=project.pk, user_ids=[bea.pk], author_id=None, image_ids=[1])


def test_a_rolled_back_change_tells_nobody(team, django_capture_on_commit_callbacks):
    project, lead, bea, cai, images = team
    from django.db import transaction

    with django_capture_on_commit_callbacks() as callbacks:
        try:
            with transaction.atomic():
                services.comment_add(image=images[0], author=lead, text="@bea look")
                raise RuntimeError("the request failed after the comment")
        except RuntimeError:
            pass
    assert queued(callbacks) == []


def test_the_account_page_changes_the_address_and_the_kinds(team, client, settings):
    project, lead, bea, cai, images = team
    client.force_login(bea)
    page = client.get(reverse("review:account")).content.decode()
    assert 'value="bea@example.com"' in page and page.count("checked") == 4 and 'id="email-off"' not in page
    assert "When an image I reviewed is sent back" in page
    response = client.post(reverse("review:account"), {"email": "bea@night.example", "email_assignments": "on"},
                           follow=True)
    assert "A link to confirm bea@night.example was e-mailed there" in response.content.decode()
    bea.refresh_from_db()
    wanted = NotificationSettings.objects.get(user=bea)
    assert bea.email == "bea@example.com"  # until the link is opened
    assert (wanted.email_mentions, wanted.email_send_backs, wanted.email_assignments, wanted.email_jobs) == (
        False, False, True, False)
    [message] = mail.outbox
    link = re.search(r"https?://[^/\s]+(/account/email/\S+/)", message.body).group(1)
    assert message.to == ["bea@night.example"]
    assert client.get(link).status_code == 302
    bea.refresh_from_db()
    assert bea.email == "bea@night.example"
    refused = client.post(reverse("review:account"), {"email": "not an address", "email_mentions": "on"})
    assert refused.status_code == 200 and "Enter a valid email address" in refused.content.decode()
    bea.refresh_from_db()
    assert bea.email == "bea@night.example" and not NotificationSettings.objects.get(user=bea).email_mentions
    settings.EMAIL_NOTIFICATIONS = False
    assert 'id="email-off"' in client.get(reverse("review:account")).content.decode()
    client.logout()
    assert client.get(reverse("review:account")).status_code == 302  # to the login page


def test_whoever_started_a_fine_tune_hears_how_it_ended_and_of_any_job_that_failed(
        team, django_capture_on_commit_callbacks):
    from datasets.models import DatasetImport
    from project.jobs import JobStatus, job_finish
    from training.models import DatasetSnapshot, TrainingRun

    project, lead, bea, cai, images = team
    snapshot = DatasetSnapshot.objects.create(project=project, content_hash="a" * 64)
    run = TrainingRun.objects.create(project=project, snapshot=snapshot, requested_by=lead, status=JobStatus.RUNNING,
                                     comparison={"new": {"version": 3}, "promoted": True,
                                                 "reason": "holdout mAP 0.8380 > active 0.6900"})
    ok_import = DatasetImport.objects.create(project=project, requested_by=bea, status=JobStatus.RUNNING)
    bad_import = DatasetImport.objects.create(project=project, requested_by=cai, status=JobStatus.RUNNING)
    with django_capture_on_commit_callbacks() as callbacks:
        job_finish(run, status=JobStatus.SUCCEEDED)
        job_finish(ok_import, status=JobStatus.SUCCEEDED)  # an ordinary import that worked: no e-mail
        job_finish(bad_import, status=JobStatus.FAILED, error="3 files were refused, so nothing was imported")
    messages = {m.to[0]: m for m in sent_after(callbacks)}
    assert set(messages) == {"lead@example.com", "cai@example.com"}
    assert messages["lead@example.com"].subject == (
        f"Night cameras: Training #{run.pk} succeeded: v3 promoted: it is the active model now "
        "(holdout mAP 0.8380 > active 0.6900).")
    assert f"https://labels.example/projects/{project.pk}/" in messages["lead@example.com"].body
    assert "failed: 3 files were refused" in messages["cai@example.com"].subject


def test_a_long_or_many_lined_error_keeps_the_subject_to_one_line_and_the_body_whole(
        team, django_capture_on_commit_callbacks):
    from datasets.models import DatasetImport
    from project.jobs import JobStatus, job_finish

    project, lead, bea, cai, images = team
    job = DatasetImport.objects.create(project=project, requested_by=bea, status=JobStatus.RUNNING)
    error = "The import failed (OSError: the bucket went away)\nTraceback:\n" + "  line\n" * 100
    with django_capture_on_commit_callbacks() as callbacks:
        job_finish(job, status=JobStatus.FAILED, error=error)
    [message] = sent_after(callbacks)
    assert "\n" not in message.subject and len(message.subject) <= 150 and message.subject.endswith("…")
    assert error.strip() in message.body


def test_a_new_address_counts_only_once_its_owner_opens_the_link_sent_to_it(team, client, settings, monkeypatch):
    project, lead, bea, cai, images = team
    client.force_login(bea)
    account = reverse("review:account")
    client.post(account, {"email": "someone.else@example.org", "email_mentions": "on"})
    client.post(account, {"email": "someone.else@example.org", "email_jobs": "on"})  # saved again: no second e-mail
    [first] = mail.outbox
    page = client.get(account).content.decode()
    assert 'id="email-pending"' in page and 'value="someone.else@example.org"' in page
    stale = re.search(r"(/account/email/\S+/)", first.body).group(1)
    client.post(account, {"email": "bea@night.example", "email_mentions": "on"})
    link = re.search(r"(/account/email/\S+/)", mail.outbox[-1].body).group(1)
    assert len(mail.outbox) == 2
    # The first address's link no longer works: another one was asked for since.
    answer = client.get(stale)
    assert answer.status_code == 400 and "another address was asked for since" in answer.content.decode()
    client.force_login(cai)  # someone else's link, from their own account
    assert "for another account" in client.get(link).content.decode()
    client.force_login(bea)
    assert "not valid" in client.get(link[:-3] + "xx/").content.decode()
    monkeypatch.setattr(notifications, "EMAIL_CONFIRM_DAYS", -1)  # as if opened 3 days late
    assert "This link has expired" in client.get(link).content.decode()
    monkeypatch.undo()
    assert get_user_model().objects.get(pk=bea.pk).email == "bea@example.com"
    assert client.get(link).status_code == 302
    assert get_user_model().objects.get(pk=bea.pk).email == "bea@night.example"
    assert "used already" in client.get(link).content.decode()  # once
    assert 'id="email-pending"' not in client.get(account).content.decode()
    client.post(account, {"email": "", "email_mentions": "on"})  # none: at once, nothing to confirm
    assert get_user_model().objects.get(pk=bea.pk).email == "" and len(mail.outbox) == 2
    settings.EMAIL_NOTIFICATIONS = False  # nothing could confirm it, and nothing is sent there
    client.post(account, {"email": "bea@example.com"})
    assert get_user_model().objects.get(pk=bea.pk).email == "bea@example.com" and len(mail.outbox) == 2


def test_an_address_whose_confirmation_cannot_be_sent_is_not_saved(team, client, settings):
    project, lead, bea, cai, images = team
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2  # nothing listens there
    client.force_login(bea)
    response = client.post(reverse("review:account"), {"email": "bea@night.example", "email_jobs": "on"})
    assert response.status_code == 200 and "could not be sent" in response.content.decode()
    assert NotificationSettings.objects.filter(user=bea, pending_email="bea@night.example").count() == 0
    assert get_user_model().objects.get(pk=bea.pk).email == "bea@example.com"
