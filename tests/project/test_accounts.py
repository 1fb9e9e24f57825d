"""Password change and reset: Django's views in our pages, and reset links that only SITE_URL decides."""
import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from review.models import PasswordResetRequest
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
OLD, NEW = "pw-for-tests-1", "a-new-Passphrase-77"


@pytest.fixture
def bea():
    return UserFactory(username="bea", email="bea@example.com")


def test_a_user_changes_their_password_and_stays_logged_in(client, bea):
    assert client.get(reverse("password_change")).status_code == 302  # to the login page
    client.force_login(bea)
    assert "Change your password" in client.get(reverse("review:account")).content.decode()
    wrong = client.post(reverse("password_change"), {"old_password": "nope", "new_password1": NEW,
                                                     "new_password2": NEW})
    assert wrong.status_code == 200 and "Your old password was entered incorrectly" in wrong.content.decode()
    weak = client.post(reverse("password_change"), {"old_password": OLD, "new_password1": "1234",
                                                    "new_password2": "1234"})
    assert "too short" in weak.content.decode()
    done = client.post(reverse("password_change"), {"old_password": OLD, "new_password1": NEW, "new_password2": NEW})
    assert done.status_code == 302 and done["Location"] == reverse("password_change_done")
    assert client.get(reverse("review:account")).status_code == 200  # the session survived the change
    bea.refresh_from_db()
    assert bea.check_password(NEW) and not bea.check_password(OLD)


def test_a_forgotten_password_is_reset_through_a_link_from_site_url(client, bea, settings):
    settings.EMAIL_NOTIFICATIONS, settings.SITE_URL = True, "https://labels.example"
    assert reverse("password_reset") in client.get(reverse("login")).content.decode()
    response = client.post(reverse("password_reset"), {"email": "bea@example.com"}, HTTP_HOST="localhost")
    assert response.status_code == 302 and response["Location"] == reverse("password_reset_done")
    [message] = mail.outbox
    assert message.to == ["bea@example.com"] and message.subject == "Choose a new password for Detector review"
    link = re.search(r"https://labels\.example(/accounts/password/reset/\S+/)", message.body)
    assert link, message.body  # the operator's address, not the request's Host
    form_page = client.get(link.group(1), follow=True)
    assert "Choose a new password" in form_page.content.decode()
    set_url = form_page.redirect_chain[-1][0]
    assert client.post(set_url, {"new_password1": NEW, "new_password2": NEW}).status_code == 302
    assert get_user_model().objects.get(pk=bea.pk).check_password(NEW)
    again = client.get(link.group(1), follow=True).content.decode()
    assert 'id="link-invalid"' in again  # a link works once


def test_a_reset_says_the_same_for_an_unknown_address_and_sends_nothing(client, bea, settings):
    settings.EMAIL_NOTIFICATIONS = True
    response = client.post(reverse("password_reset"), {"email": "nobody@example.com"})
    assert response.status_code == 302 and response["Location"] == reverse("password_reset_done")
    assert mail.outbox == []


def test_without_e_mail_the_reset_page_says_to_ask_an_administrator(client, bea, settings):
    settings.EMAIL_NOTIFICATIONS = False
    assert "ask an administrator" in client.get(reverse("password_reset")).content.decode()
    response = client.post(reverse("password_reset"), {"email": "bea@example.com"})
    assert response.status_code == 200 and "sends no e-mail" in response.content.decode() and mail.outbox == []


def test_one_address_gets_a_few_reset_e_mails_an_hour_and_the_page_says_the_same(client, bea, settings):
    settings.EMAIL_NOTIFICATIONS = True
    settings.PASSWORD_RESETS_PER_ADDRESS = 3
    for _ in range(4):
        response = client.post(reverse("password_reset"), {"email": "Bea@Example.com"})
        assert response.status_code == 302 and response["Location"] == reverse("password_reset_done")
    assert len(mail.outbox) == 3  # the fourth: the same answer, no e-mail
    stored = list(PasswordResetRequest.objects.values_list("address_digest", "sent"))
    assert len(stored) == 4 and [sent for _, sent in stored].count(True) == 3
    assert all("bea" not in digest for digest, _ in stored)  # nobody's typed address is kept
    PasswordResetRequest.objects.update(created_at=timezone.now() - timedelta(minutes=61))
    client.post(reverse("password_reset"), {"email": "bea@example.com"})
    assert len(mail.outbox) == 4 and PasswordResetRequest.objects.count() == 1  # an hour on: old rows gone


def test_one_client_asking_too_often_is_refused_with_429(client, bea, settings):
    settings.EMAIL_NOTIFICATIONS = True
    settings.PASSWORD_RESETS_PER_CLIENT = 5
    for number in range(5):
        assert client.post(reverse("password_reset"), {"email": f"user{number}@example.com"},
                           REMOTE_ADDR="203.0.113.7").status_code == 302
    refused = client.post(reverse("password_reset"), {"email": "bea@example.com"}, REMOTE_ADDR="203.0.113.7")
    assert refused.status_code == 429 and "Try again in 60 minutes" in refused.content.decode()
    assert mail.outbox == []
    elsewhere = client.post(reverse("password_reset"), {"email": "bea@example.com"}, REMOTE_ADDR="198.51.100.2")
    assert elsewhere.status_code == 302 and [message.to for message in mail.outbox] == [["bea@example.com"]]
