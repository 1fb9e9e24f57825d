"""API tokens for scripts (`Authorization: Token <key>`): made, replaced and revoked here, checked by
ApiTokenAuthentication. Only a key's SHA-256 digest is stored (ApiToken in review/models.py)."""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from rest_framework import authentication, exceptions

from review.models import ApiToken

# last_used_at is written at most this often per token, not on every request.
LAST_USED_RESOLUTION = timedelta(minutes=5)


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@transaction.atomic
def api_token_create(*, user: AbstractBaseUser) -> str:
    """Give `user` a new key, replacing any old one (which stops working at once). Returns the key:
    the only time it exists outside the caller's hands."""
    key = secrets.token_urlsafe(30)  # 240 random bits, 40 characters
    while key.startswith("-"):  # one key in 64 would: a command line takes it for an option (--token -x...)
        key = secrets.token_urlsafe(30)
    ApiToken.objects.filter(user=user).delete()
    ApiToken.objects.create(user=user, digest=key_digest(key), prefix=key[:6])
    return key


def api_token_revoke(*, user: AbstractBaseUser) -> bool:
    """Delete the user's key; whether there was one."""
    return ApiToken.objects.filter(user=user).delete()[0] > 0


class ApiTokenAuthentication(authentication.TokenAuthentication):
    """DRF's TokenAuthentication (header parsing, 401 with `WWW-Authenticate: Token`), looking keys up
    by digest."""

    def authenticate_credentials(self, key: str):
        token = ApiToken.objects.select_related("user").filter(digest=key_digest(key)).first()
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token
