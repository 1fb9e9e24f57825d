"""The HTTP side of a webhook, without Django: signature, URL and address checks, redirects."""
import hashlib
import hmac
import socket

import pytest

from webhooks import delivery


def test_signature_is_hmac_sha256_of_the_body_in_hex():
    body = b'{"event":"ping"}'
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert delivery.signature("s3cret", body) == f"sha256={expected}"
    assert delivery.signature("other", body) != delivery.signature("s3cret", body)


@pytest.mark.parametrize("url, words", [
    ("ftp://hooks.example/x", "http:// or https://"),
    ("hooks.example/x", "http:// or https://"),
    ("https:///path", "names a host"),
    ("https://user:pw@hooks.example/x", "no user name or password"),
    ("http://[::1/x", "not a URL"),
    ("https://hooks.example:99999/x", "not a URL"),
    ("https://hooks.example:port/x", "not a URL"),
])
def test_url_refusal_says_what_is_wrong(url, words):
    assert words in delivery.url_refusal(url)


def test_url_refusal_passes_a_plain_https_url():
    assert delivery.url_refusal("https://hooks.example:8443/models?team=a") is None


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "10.1.2.3", "192.168.0.9", "169.254.169.254", "::1",
                                  "0.0.0.0"])
def test_internal_addresses_are_refused_unless_allowed(host):
    assert "internal address" in delivery.address_refusal(host, allow_private=False)
    assert delivery.address_refusal(host, allow_private=True) is None


def test_a_public_address_passes():
    assert delivery.address_refusal("93.184.216.34", allow_private=False) is None


def test_post_sends_signed_json_and_returns_the_status(receiver):
    status = delivery.post(f"{receiver.url}/hook", body=b'{"a":1}', secret="k", event="ping", delivery_id=7,
                           allow_private=True, timeout=5)
    assert status == 200
    request = receiver.requests[0]
    assert request["path"] == "/hook" and request["body"] == b'{"a":1}'
    assert request["headers"]["X-Webhook-Event"] == "ping" and request["headers"]["X-Webhook-Delivery"] == "7"
    assert request["headers"]["X-Webhook-Signature"] == delivery.signature("k", b'{"a":1}')
    assert request["headers"]["Content-Type"] == "application/json"


def test_post_does_not_follow_a_redirect(receiver):
    receiver.answers = [302]
    with pytest.raises(delivery.DeliveryFailed, match="redirected \\(302\\)") as failure:
        delivery.post(receiver.url, body=b"{}", secret="k", event="ping", delivery_id=1, allow_private=True, timeout=5)
    assert failure.value.status == 302
    assert [request["path"] for request in receiver.requests] == ["/"]  # /redirected was never asked


def test_post_reports_an_error_status(receiver):
    receiver.answers = [503]
    with pytest.raises(delivery.DeliveryFailed, match="answered 503") as failure:
        delivery.post(receiver.url, body=b"{}", secret="k", event="ping", delivery_id=1, allow_private=True, timeout=5)
    assert failure.value.status == 503


def test_post_refuses_an_internal_address_before_connecting(receiver):
    with pytest.raises(delivery.DeliveryFailed, match="internal address"):
        delivery.post(receiver.url, body=b"{}", secret="k", event="ping", delivery_id=1, allow_private=False, timeout=5)
    assert receiver.requests == []


def test_post_reports_a_receiver_that_is_not_there():
    with pytest.raises(delivery.DeliveryFailed, match="could not be reached"):
        delivery.post("http://127.0.0.1:9/", body=b"{}", secret="k", event="ping", delivery_id=1, allow_private=True,
                      timeout=5)


def test_the_name_is_resolved_once_and_the_connection_goes_to_that_address(receiver, monkeypatch):
    # A DNS server that answers differently the second time (rebinding) gets no second question.
    real = socket.getaddrinfo
    asked = []

    def resolve(host, *args, **kwargs):
        asked.append(host)
        return real("127.0.0.1" if host == "hooks.test" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    port = receiver.server.server_port
    status = delivery.post(f"http://hooks.test:{port}/in?team=a", body=b"{}", secret="k", event="ping",
                           delivery_id=1, allow_private=True, timeout=5)
    assert status == 200 and asked.count("hooks.test") == 1  # (the connection looks up only the address)
    assert receiver.requests[0]["path"] == "/in?team=a"
    assert receiver.requests[0]["headers"]["Host"] == f"hooks.test:{port}"  # the name, not the address


def test_a_name_that_answers_differently_the_second_time_cannot_reach_an_internal_address(receiver, monkeypatch):
    real = socket.getaddrinfo
    answers = iter(["93.184.216.34", "127.0.0.1", "127.0.0.1"])  # public for the check, then the attacker's choice

    def rebinding(host, *args, **kwargs):
        return real(next(answers) if host == "rebind.test" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with pytest.raises(delivery.DeliveryFailed):  # the public address, which is not the receiver
        delivery.post(f"http://rebind.test:{receiver.server.server_port}/", body=b"{}", secret="k", event="ping",
                      delivery_id=1, allow_private=False, timeout=1)
    assert receiver.requests == []


@pytest.mark.parametrize("certificate_names, delivered", [("hooks.test", True), ("other.test", False)])
def test_https_goes_to_the_checked_address_and_verifies_the_name(tmp_path, monkeypatch, certificate_names, delivered):
    from tests.webhooks.receiver import Receiver, self_signed

    tls, ca_file = self_signed(tmp_path, certificate_names)
    receiver = Receiver(tls=tls)
    real_resolve, real_context = socket.getaddrinfo, delivery.ssl.create_default_context
    monkeypatch.setattr(socket, "getaddrinfo",
                        lambda host, *a, **k: real_resolve("127.0.0.1" if host == "hooks.test" else host, *a, **k))
    monkeypatch.setattr(delivery.ssl, "create_default_context", lambda: real_context(cafile=ca_file))
    url = f"https://hooks.test:{receiver.server.server_port}/in"
    try:
        if delivered:
            assert delivery.post(url, body=b"{}", secret="k", event="ping", delivery_id=1, allow_private=True,
                                 timeout=5) == 200
            assert receiver.requests[0]["headers"]["Host"] == f"hooks.test:{receiver.server.server_port}"
        else:  # a certificate for another name: refused, as for any https client
            with pytest.raises(delivery.DeliveryFailed, match="could not be reached.*(certificate|hostname)"):
                delivery.post(url, body=b"{}", secret="k", event="ping", delivery_id=1, allow_private=True, timeout=5)
            assert receiver.requests == []
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
