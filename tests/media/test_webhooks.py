"""Webhook delivery against real local receivers: payload, retries with backoff, timeouts, and
a hung hook that delays neither the caller nor the other hooks."""
from __future__ import annotations

import asyncio
import json
import re
import socket
import time

from fastpath.media.outbound import OutboundPolicy
from fastpath.media.webhooks import WebhookDispatcher
from fastpath.store import StateStore, media_store
from tests.media.support import LOOPBACK_UPSTREAMS, WebhookReceiver

# The receivers are on loopback, which the default outbound rule refuses.
LOOPBACK = OutboundPolicy(allow_networks=LOOPBACK_UPSTREAMS)


class FlakyReceiver(WebhookReceiver):
    """Answers 500 to the first ``fail`` deliveries, then 200."""

    def __init__(self, fail: int):
        super().__init__()
        self.fail = fail
        handler = self.server.RequestHandlerClass
        receiver = self
        original = handler.do_POST

        def do_post(h):
            with receiver.lock:
                receiver.status = 500 if receiver.fail > 0 else 200
                receiver.fail -= 1
            original(h)
        handler.do_POST = do_post


def run(coro):
    return asyncio.run(coro)


def test_payload_and_headers(tmp_path):
    store = StateStore(tmp_path / "s.db")
    with WebhookReceiver() as hook:
        media_store.put_webhook(store, media_store.Webhook(url=hook.url, events=["client_connected"],
                                                           headers={"X-Secret": "s3"}))

        async def main():
            d = WebhookDispatcher(store, policy=LOOPBACK)
            await d.start()
            assert d.emit("client_connected", "abc", {"client_id": "c1"}) == 1
            assert d.emit("stream_started", "abc") == 0      # not subscribed
            await d.drain(5)
            await d.close()
        run(main())
        event = hook.wait_for("client_connected")[0]
        assert event["stream_id"] == "abc" and event["data"] == {"client_id": "c1"}
        # m3u-proxy's format: UTC, microseconds, no zone suffix.
        assert len(event["event_id"]) == 36
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}", event["timestamp"])
        headers = hook.events[0]["headers"]
        assert headers["X-Secret"] == "s3" and headers["Content-Type"] == "application/json"


def test_retries_with_exponential_backoff(tmp_path):
    store = StateStore(tmp_path / "s.db")
    with FlakyReceiver(fail=2) as hook:
        media_store.put_webhook(store, media_store.Webhook(url=hook.url, events=[], retry_attempts=3,
                                                           timeout=2))

        async def main():
            d = WebhookDispatcher(store, backoff_base=0.2, policy=LOOPBACK)
            await d.start()
            d.emit("failover_triggered", "s1", {"failover_index": 1})
            await d.drain(10)
            await d.close()
            return d
        d = run(main())
        assert d.delivered == 1 and d.failed == 0
        times = [e["at"] for e in hook.events]
        assert len(times) == 3
        # 2^n backoff: 0.2 s then 0.4 s (scaled down from 1 s and 2 s for the test).
        assert 0.15 < times[1] - times[0] < 0.6 and 0.35 < times[2] - times[1] < 0.9


def test_gives_up_after_retry_attempts_plus_one(tmp_path):
    store = StateStore(tmp_path / "s.db")
    with FlakyReceiver(fail=100) as hook:
        media_store.put_webhook(store, media_store.Webhook(url=hook.url, events=["stream_error"],
                                                           retry_attempts=1))

        async def main():
            d = WebhookDispatcher(store, backoff_base=0.05, policy=LOOPBACK)
            await d.start()
            d.emit("stream_failed", "s1")          # a hook may subscribe by the alias name
            await d.drain(10)
            await d.close()
            return d
        d = run(main())
        assert d.failed == 1 and len(hook.events) == 2
        assert hook.events[0]["body"]["event_type"] == "stream_error"


def test_a_hung_hook_blocks_nobody(tmp_path):
    store = StateStore(tmp_path / "s.db")
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(16)                        # accepts connections, never answers
    try:
        with WebhookReceiver() as good:
            media_store.put_webhook(store, media_store.Webhook(
                url=f"http://127.0.0.1:{hung.getsockname()[1]}/", events=[], timeout=1,
                retry_attempts=0))
            media_store.put_webhook(store, media_store.Webhook(url=good.url, events=[]))

            async def main():
                d = WebhookDispatcher(store, policy=LOOPBACK)
                await d.start()
                started = time.monotonic()
                for i in range(20):
                    d.emit("client_connected", f"s{i}")
                emit_time = time.monotonic() - started
                good_done = await asyncio.to_thread(good.wait_for, "client_connected", 5, 20)
                good_time = time.monotonic() - started
                await d.drain(5)
                await d.close()
                return emit_time, good_time, good_done, d
            emit_time, good_time, good_done, d = run(main())
            assert emit_time < 0.05
            assert len(good_done) == 20 and good_time < 0.9     # before the hung hook's timeout
            assert d.failed == 20
    finally:
        hung.close()


def test_queue_bound_drops_instead_of_growing(tmp_path):
    store = StateStore(tmp_path / "s.db")
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(256)
    try:
        media_store.put_webhook(store, media_store.Webhook(
            url=f"http://127.0.0.1:{hung.getsockname()[1]}/", events=[], timeout=5, retry_attempts=0))

        async def main():
            d = WebhookDispatcher(store, queue=10, policy=LOOPBACK)
            await d.start()
            started = sum(d.emit("client_connected", "s") for _ in range(50))
            await d.close(grace=0)
            return started, d.dropped
        assert run(main()) == (10, 40)
    finally:
        hung.close()


def test_payload_is_json_serialisable_with_any_data():
    from fastpath.media.webhooks import make_payload
    p = make_payload("stream_stopped", "x", {"bytes": 1, "text": "é"})
    assert json.loads(json.dumps(p))["data"]["text"] == "é"
