"""``/webhooks`` and ``/webhooks/test`` against a real node and a local receiver: storage,
bad bodies, the test event's payload and headers, retries with backoff, the hook's timeout."""
from __future__ import annotations

import json
import re
import time
import uuid

import pytest

from tests.stream_proxy.conftest import curl
from tests.stream_proxy.receiver import Receiver

pytestmark = pytest.mark.integration
# m3u-proxy's default: its six events (stream_error is accepted when named, not by default).
ALL_EVENTS = ["stream_started", "stream_stopped", "stream_failed",
              "client_connected", "client_disconnected", "failover_triggered"]


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def hooks(node) -> list[dict]:
    return node.get("/webhooks").json()["webhooks"]


def test_register_list_replace_delete(node):
    url = "http://127.0.0.1:9/a-hook"
    r = node.post("/webhooks", {"url": url, "events": ["stream_started", "failover_triggered"],
                                "timeout": 5, "retry_attempts": 1, "headers": {"X-Sig": "s1"}})
    assert r.status == 200, r.text
    assert r.json() == {"message": "Webhook added successfully", "webhook_url": url,
                        "events": ["stream_started", "failover_triggered"]}
    listed = next(h for h in hooks(node) if h["url"] == url)
    assert listed == {"url": url, "events": ["stream_started", "failover_triggered"], "timeout": 5,
                      "retry_attempts": 1, "headers": {"X-Sig": "s1"}}
    # Registering the same URL again replaces its settings; defaults: all events, 10 s, 3 retries.
    node.post("/webhooks", {"url": url})
    again = [h for h in hooks(node) if h["url"] == url]
    assert again == [{"url": url, "events": ALL_EVENTS, "timeout": 10, "retry_attempts": 3,
                      "headers": {}}]
    status, body = curl("DELETE", f"{node.base_url}/webhooks?webhook_url={url}")
    assert status == 200 and body == {"message": f"Webhook {url} removed successfully"}
    assert all(h["url"] != url for h in hooks(node))
    r = node.request("DELETE", f"/webhooks?webhook_url={url}")
    assert r.status == 404 and r.json()["detail"] == "Webhook not found"
    assert node.request("DELETE", "/webhooks").status == 422  # missing query parameter


@pytest.mark.parametrize("body, words", [
    ({}, "'url' is required"),
    ({"url": "ftp://127.0.0.1/x"}, "http or https"),
    ({"url": "http://127.0.0.1:9/h", "events": ["stream_started", "bogus"]}, "unknown event 'bogus'"),
    ({"url": "http://127.0.0.1:9/h", "events": "stream_started"}, "list"),
    ({"url": "http://127.0.0.1:9/h", "timeout": 0}, "timeout"),
    ({"url": "http://127.0.0.1:9/h", "timeout": -3}, "timeout"),
    ({"url": "http://127.0.0.1:9/h", "timeout": "10"}, "timeout"),
    ({"url": "http://127.0.0.1:9/h", "timeout": 100000}, "timeout"),
    ({"url": "http://127.0.0.1:9/h", "retry_attempts": -1}, "retry_attempts"),
    ({"url": "http://127.0.0.1:9/h", "retry_attempts": 1.5}, "retry_attempts"),
    ({"url": "http://127.0.0.1:9/h", "retry_attempts": True}, "retry_attempts"),
    ({"url": "http://127.0.0.1:9/h", "retry_attempts": 99}, "retry_attempts"),
    ({"url": "http://127.0.0.1:9/h", "headers": {"X": 1}}, "headers"),
    ("nope", "JSON"),
])
def test_bad_webhook_bodies_store_nothing(node, body, words):
    before = hooks(node)
    r = node.post("/webhooks", body)
    assert r.status == 422, r.text
    assert words in r.json()["message"] and r.json()["detail"][0]["loc"][0] == "body"
    assert hooks(node) == before


def r_text(body: dict) -> str:
    """The answer as text, without its event id: a random UUID, which may hold any digits."""
    return json.dumps({k: v for k, v in body.items() if k != "event_id"})


def test_test_event_reaches_the_receiver_with_headers(node, receiver):
    node.post("/webhooks", {"url": receiver.url, "headers": {"X-Hook-Secret": "s3cret"},
                            "timeout": 5, "retry_attempts": 0})
    status, body = curl("POST", f"{node.base_url}/webhooks/test?webhook_url={receiver.url}")
    assert status == 200, body
    assert body["delivered"] is True and body["attempts"] == 1
    assert body["message"] == f"Test event delivered to {receiver.url}"
    # Reachable or not, nothing more: no status or error text of the target.
    assert set(body) == {"message", "event_id", "delivered", "attempts"}
    assert len(receiver.calls) == 1
    call = receiver.calls[0]
    assert call["headers"]["Content-Type"] == "application/json"
    assert call["headers"]["X-Hook-Secret"] == "s3cret"
    event = receiver.events()[0]
    assert set(event) == {"event_id", "event_type", "stream_id", "timestamp", "data"}
    assert event["event_type"] == "stream_started" and event["event_id"] == body["event_id"]
    assert uuid.UUID(event["event_id"]).version == 4
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", event["timestamp"])
    assert event["data"]["test"] is True
    node.request("DELETE", f"/webhooks?webhook_url={receiver.url}")


def test_test_event_retries_on_500_with_backoff(node, receiver):
    receiver.script = [500, 500, 200]
    node.post("/webhooks", {"url": receiver.url, "timeout": 5, "retry_attempts": 3})
    r = node.post(f"/webhooks/test?webhook_url={receiver.url}")
    body = r.json()
    assert r.status == 200 and body["delivered"] is True and body["attempts"] == 3
    assert len(receiver.calls) == 3
    gaps = [b["at"] - a["at"] for a, b in zip(receiver.calls, receiver.calls[1:])]
    assert 0.9 <= gaps[0] < 1.8 and 1.9 <= gaps[1] < 3.0, gaps  # 1 s, then 2 s
    ids = {e["event_id"] for e in receiver.events()}
    assert len(ids) == 1  # the same event each try
    node.request("DELETE", f"/webhooks?webhook_url={receiver.url}")


def test_test_event_gives_up_after_retries(node, receiver):
    receiver.script = [503, 503]
    node.post("/webhooks", {"url": receiver.url, "timeout": 5, "retry_attempts": 1})
    body = node.post(f"/webhooks/test?webhook_url={receiver.url}").json()
    assert body["delivered"] is False and body["attempts"] == 2
    assert "not delivered (2 attempt(s))" in body["message"] and "503" not in r_text(body)
    assert len(receiver.calls) == 2
    node.request("DELETE", f"/webhooks?webhook_url={receiver.url}")


def test_test_event_respects_the_hook_timeout(node, receiver):
    receiver.script = [("sleep", 3.0, 200)]
    node.post("/webhooks", {"url": receiver.url, "timeout": 0.5, "retry_attempts": 0})
    t0 = time.monotonic()
    body = node.post(f"/webhooks/test?webhook_url={receiver.url}").json()
    elapsed = time.monotonic() - t0
    assert body["delivered"] is False and "error" not in body
    assert elapsed < 2.0, elapsed
    node.request("DELETE", f"/webhooks?webhook_url={receiver.url}")


def test_test_unknown_hook_is_404(node):
    r = node.post("/webhooks/test?webhook_url=http://127.0.0.1:9/unknown")
    assert r.status == 404 and r.json()["detail"] == "Webhook not found"
    assert node.post("/webhooks/test").status == 422


def test_unreachable_hook_is_reported(node):
    node.post("/webhooks", {"url": "http://127.0.0.1:9/closed", "timeout": 2, "retry_attempts": 0})
    body = node.post("/webhooks/test?webhook_url=http://127.0.0.1:9/closed").json()
    assert body["delivered"] is False and set(body) == {"message", "event_id", "delivered", "attempts"}
    node.request("DELETE", "/webhooks?webhook_url=http://127.0.0.1:9/closed")
