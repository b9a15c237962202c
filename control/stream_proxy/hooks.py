"""``/webhooks`` and ``/webhooks/test``: hooks live in the state store (m3u-proxy keeps them
in memory and loses them on restart); workers reread them on ``media_webhooks_changed``."""
from __future__ import annotations

from fastpath.control.stream_proxy import bodies as b
from fastpath.control.stream_proxy.auth import protected
from fastpath.control.stream_proxy.delivery import deliver, make_event
from fastpath.control.stream_proxy.errors import not_found
from fastpath.control.stream_proxy.face import Face
from fastpath.store.media_store import (
    Webhook,
    delete_webhook,
    list_webhooks,
    put_webhook,
)

MAX_TIMEOUT = 300.0
MAX_RETRIES = 10


def hook_view(h: Webhook) -> dict:
    timeout = int(h.timeout) if float(h.timeout).is_integer() else h.timeout
    return {"url": h.url, "events": list(h.events), "timeout": timeout,
            "retry_attempts": h.retry_attempts, "headers": dict(h.headers)}


def _find(face: Face, url: str) -> Webhook:
    for h in list_webhooks(face.store):
        if h.url == url:
            return h
    raise not_found("Webhook not found")


@protected()
class Webhooks:
    def __init__(self, face: Face):
        self.face = face

    def on_get(self, req, resp):
        resp.media = {"webhooks": [hook_view(h) for h in list_webhooks(self.face.store)]}

    def on_post(self, req, resp):
        body = b.json_body(req)
        hook = Webhook(url=b.target_url(b.required(body, "url"), "url", self.face.outbound), events=b.events(body),
                       headers=b.headers(body),
                       timeout=b.number(body, "timeout", 10.0, 0.1, MAX_TIMEOUT),
                       retry_attempts=b.integer(body, "retry_attempts", 3, 0, MAX_RETRIES))
        put_webhook(self.face.store, hook)
        self.face.tell_workers("media_webhooks_changed")
        resp.media = {"message": "Webhook added successfully", "webhook_url": hook.url,
                      "events": hook.events}

    def on_delete(self, req, resp):
        url = b.query_required(req, "webhook_url")
        if not delete_webhook(self.face.store, url):
            raise not_found("Webhook not found")
        self.face.tell_workers("media_webhooks_changed")
        resp.media = {"message": f"Webhook {url} removed successfully"}


@protected()
class WebhookTest:
    def __init__(self, face: Face):
        self.face = face

    def on_post(self, req, resp):
        hook = _find(self.face, b.query_required(req, "webhook_url"))
        event = make_event("stream_started", "test_stream_123",
                           {"test": True, "message": "This is a test webhook event",
                            "primary_url": "http://example.com/test.m3u8"})
        result = deliver(hook, event, self.face.outbound)
        # Reachable or not, and nothing more: the target's status and error text would make
        # this route a scanner of whatever the node can reach (delivery.py logs them).
        if result["delivered"]:
            message = f"Test event delivered to {hook.url}"
        else:
            message = f"Test event to {hook.url} was not delivered ({result['attempts']} attempt(s))"
        resp.media = {"message": message, "event_id": event["event_id"],
                      "delivered": result["delivered"], "attempts": result["attempts"]}
