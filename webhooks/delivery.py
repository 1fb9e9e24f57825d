"""One webhook POST over HTTP: the body signed with the webhook's secret, no redirects followed, and
no private, loopback or link-local address reached unless the operator allows it. No Django here."""
from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import socket
import ssl
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
    """Why `host` may not be reached (it is, or resolves to, an internal address), or None."""
    try:
        _checked_address(host, allow_private=allow_private)
    except DeliveryFailed as exc:
        return str(exc)
    return None


def _checked_address(host: str, *, allow_private: bool) -> str:
    """The address to connect to for `host`, resolved once here and checked.

    Without the check, anyone who may add a webhook could make the workers call services inside the
    network (server-side request forgery); operators who send webhooks to their own network allow it
    with WEBHOOK_ALLOW_PRIVATE_ADDRESSES=1. The connection then goes to this very address: a name
    resolved again by the connection could answer differently the second time (DNS rebinding).
    """
    try:
        addresses = [info[4][0] for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)]
    except OSError as exc:
        raise DeliveryFailed(f"{host} cannot be resolved: {exc}") from exc
    if not allow_private:
        for address in addresses:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
            if not ip.is_global or ip.is_multicast:
                raise DeliveryFailed(f"{host} is an internal address ({ip}); webhooks go to public addresses unless "
                                     "the operator sets WEBHOOK_ALLOW_PRIVATE_ADDRESSES=1.")
    return addresses[0]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the checked address; the Host header still names the host."""

    def __init__(self, host: str, port: int | None, *, address: str, **kwargs) -> None:
        super().__init__(host, port, **kwargs)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """As above, with TLS checked against the host's name (SNI and the certificate), not the address."""

    def __init__(self, host: str, port: int | None, *, address: str, **kwargs) -> None:
        super().__init__(host, port, context=ssl.create_default_context(), **kwargs)
        self.address = address

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def post(url: str, *, body: bytes, secret: str, event: str, delivery_id: int, allow_private: bool,
         timeout: float) -> int:
    """POST the body; the receiver's status when it is 2xx, DeliveryFailed otherwise (redirects
    included: one could lead past the address check, so none is followed)."""
    refusal = url_refusal(url)
    if refusal:
        raise DeliveryFailed(refusal)
    parts = urlsplit(url)
    address = _checked_address(parts.hostname, allow_private=allow_private)
    pinned = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    connection = pinned(parts.hostname, parts.port, address=address, timeout=timeout)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("POST", path, body=body, headers={
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Webhook-Event": event,
            "X-Webhook-Delivery": str(delivery_id),
            "X-Webhook-Signature": signature(secret, body),
        })
        response = connection.getresponse()
        status, reason, location = response.status, response.reason, response.getheader("Location")
    except (OSError, http.client.HTTPException) as exc:
        raise DeliveryFailed(f"The receiver could not be reached: {exc}.") from exc
    finally:
        connection.close()
    if 300 <= status < 400:
        raise DeliveryFailed(f"The receiver redirected ({status}) to {location}; webhooks do not follow redirects.",
                             status=status)
    if not 200 <= status < 300:
        raise DeliveryFailed(f"The receiver answered {status} {reason}.", status=status)
    return status
