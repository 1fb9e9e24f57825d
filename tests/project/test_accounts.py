"""Password change and reset: Django's views in our pages, and reset links that only SITE_URL decides."""
import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.urls import reverse

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
