"""Throttling *Forgot your password?*: without it, anyone who knows an address could fill its inbox.

Within PASSWORD_RESET_WINDOW_MINUTES (60):
- one client address (as django-axes sees it for logins) may ask PASSWORD_RESETS_PER_CLIENT times
  (10); past that it is refused with 429 until the window has passed;
- one e-mail address gets at most PASSWORD_RESETS_PER_ADDRESS e-mails (3); past that the page says
  the same as always and sends nothing, so it tells nobody whether the address has an account.
Requests are rows (PasswordResetRequest), so every web process counts the same; rows older than the
window are deleted as new ones come.
"""
from __future__ import annotations

import enum
import hashlib
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from review.models import PasswordResetRequest


class ResetVerdict(enum.Enum):
    SEND = "send"
    QUIET = "quiet"  # the address had its e-mails for now: answer as if sent, send nothing
    REFUSED = "refused"  # the client asked too often: 429


def password_reset_request(*, email: str, client: str | None) -> ResetVerdict:
    """Record one request for a reset e-mail to `email` from `client` and say what to do with it."""
    now = timezone.now()
    since = now - timedelta(minutes=settings.PASSWORD_RESET_WINDOW_MINUTES)
    PasswordResetRequest.objects.filter(created_at__lt=since).delete()
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()
    recent = PasswordResetRequest.objects.filter(created_at__gte=since)
    if client is not None and recent.filter(client=client).count() >= settings.PASSWORD_RESETS_PER_CLIENT:
        verdict = ResetVerdict.REFUSED
    elif recent.filter(address_digest=digest, sent=True).count() >= settings.PASSWORD_RESETS_PER_ADDRESS:
        verdict = ResetVerdict.QUIET
    else:
        verdict = ResetVerdict.SEND
    PasswordResetRequest.objects.create(address_digest=digest, client=client, sent=verdict == ResetVerdict.SEND,
                                        created_at=now)
    return verdict
