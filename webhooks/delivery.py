"""One webhook POST over HTTP: the body signed with the webhook's secret, no redirects followed, and
no private, loopback or link-local address reached unless the operator allows it. No Django here."""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
import urllib.error
import urllib.request
from urllib.parse import urlsplit

USER_AGENT = "detector-review-webhooks/1"


class DeliveryFailed(Exception):
    """The receiver was not reached or did not answer 2xx; `status` is its HTTP status when it answered."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def signature(secret: str, body: bytes) -> str:
    """What X-Webhook-Signature carries; a receiver recomputes it with the secret and compares."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def url_refusal(url: str) -> str | None:
    """Why `url` cannot be a webhook at all (scheme, host), or None."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (only parsed when asked: a port of 99999 or "x" raises here)
    except ValueError as exc:
        return f"This is not a URL that can be reached: {exc}."
    if parts.scheme not in ("http", "https"):
        return "A webhook URL starts with http:// or https://."
    if not parts.hostname:
        return "A webhook URL names a host."
    if parts.username or parts.password:
        return "Put no user name or password in a webhook URL; receivers check the signature instead."
    return None


def address_refusal(host: str, *, allow_private: bool) -> str | None:
    """Why `host` may not be reached (it is, or resolves to, an internal address), or None.

    Without this, anyone who may add a webhook could make the workers call services inside the
    network (server-side request forgery). Operators who send webhooks to their own network allow it
    with WEBHOOK_ALLOW_PRIVATE_ADDRESSES=1.
    """
    if allow_private:
        return None
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)}
    except OSError as exc:
        return f"{host} cannot be resolved: {exc}"
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if not ip.is_global or ip.is_multicast:
            return (f"{host} is an internal address ({ip}); webhooks go to public addresses unless the operator "
                    "sets WEBHOOK_ALLOW_PRIVATE_ADDRESSES=1.")
    return None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect could lead past the address check to an internal service: it counts as a failure.
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise DeliveryFailed(f"The receiver redirected ({code}) to {newurl}; webhooks do not follow redirects.",
                             status=code)


_OPENER = urllib.request.build_opener(_NoRedirects)


def post(url: str, *, body: bytes, secret: str, event: str, delivery_id: int, allow_private: bool,
         timeout: float) -> int:
    """POST the body; the receiver's status when it is 2xx, DeliveryFailed otherwise."""
    refusal = url_refusal(url) or address_refusal(urlsplit(url).hostname, allow_private=allow_private)
    if refusal:
        raise DeliveryFailed(refusal)
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Webhook-Event": event,
        "X-Webhook-Delivery": str(delivery_id),
        "X-Webhook-Signature": signature(secret, body),
    })
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        raise DeliveryFailed(f"The receiver answered {exc.code} {exc.reason}.", status=exc.code) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryFailed(f"The receiver could not be reached: {reason}.") from exc
