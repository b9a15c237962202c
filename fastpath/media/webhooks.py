"""Webhook delivery: every event is its own task, so a slow or dead hook never delays the
data plane or another hook.

Hooks live in the state store (the control face writes them, ``media_webhooks_changed`` makes
the workers reread them).  A delivery is ``retry_attempts + 1`` tries, ``2^n`` seconds apart,
each bounded by the hook's timeout; success is a status below 400.  At most ``queue`` deliveries
are pending per worker; beyond that new events are dropped and counted (a flood of viewers must
not turn into unbounded memory).  Targets pass the relay's outbound rule
(``fastpath.media.outbound``) on every connection; redirects are not followed.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid

import aiohttp

from fastpath.media import outbound
from fastpath.store import media_store

log = logging.getLogger("fastpath.media.webhooks")

EVENTS = ("stream_started", "stream_stopped", "stream_failed", "client_connected",
          "client_disconnected", "failover_triggered")
# ``stream_error`` is the name for ``stream_failed``: a hook may subscribe to either.
ALIASES = {"stream_failed": "stream_error"}


def event_time(now: float | None = None) -> str:
    """The event's time as m3u-proxy writes it: UTC, microseconds, no zone suffix (Python's
    ``isoformat`` of a naive UTC time; its receivers parse that)."""
    now = time.time() if now is None else now
    sec = int(now)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{int((now - sec) * 1e6):06d}"


def make_payload(event_type: str, stream_id: str, data: dict) -> dict:
    return {"event_id": str(uuid.uuid4()), "event_type": event_type, "stream_id": stream_id,
            "timestamp": event_time(), "data": data}


class WebhookDispatcher:
    def __init__(self, store, *, queue: int = 1000, backoff_base: float = 1.0,
                 policy: outbound.OutboundPolicy | None = None):
        self.store = store
        self.policy = policy or outbound.OutboundPolicy()
        self.queue = queue
        self.backoff_base = backoff_base
        self.hooks: list[media_store.Webhook] = []
        self.tasks: set[asyncio.Task] = set()
        self.session: aiohttp.ClientSession | None = None
        self.delivered = 0
        self.failed = 0
        self.dropped = 0

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(trust_env=False, cookie_jar=aiohttp.DummyCookieJar(),
                                             connector=outbound.connector(self.policy))
        await self.reload()

    async def reload(self) -> int:
        self.hooks = await asyncio.to_thread(media_store.list_webhooks, self.store)
        return len(self.hooks)

    def emit(self, event_type: str, stream_id: str, data: dict | None = None) -> int:
        """Queue ``event_type`` for every hook that wants it; returns how many deliveries were
        started.  Never waits."""
        if self.session is None:
            return 0
        alias = ALIASES.get(event_type)
        started = 0
        for hook in self.hooks:
            wanted = hook.events or EVENTS
            name = event_type if event_type in wanted else (alias if alias in wanted else None)
            if name is None:
                continue
            if len(self.tasks) >= self.queue:
                self.dropped += 1
                continue
            payload = make_payload(name, stream_id, data or {})
            task = asyncio.get_running_loop().create_task(self._deliver(hook, payload))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            started += 1
        return started

    async def _deliver(self, hook: media_store.Webhook, payload: dict) -> bool:
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", **(hook.headers or {})}
        tries = max(0, int(hook.retry_attempts)) + 1
        last = ""
        for attempt in range(tries):
            try:
                self.policy.check_literal(hook.url)
                async with self.session.post(hook.url, data=body, headers=headers, allow_redirects=False,
                                             timeout=aiohttp.ClientTimeout(total=hook.timeout)) as resp:
                    if resp.status < 400:
                        self.delivered += 1
                        return True
                    last = f"HTTP {resp.status}"
            except asyncio.CancelledError:
                raise
            except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
                refused = outbound.refused_cause(exc)
                last = str(refused or exc) or type(exc).__name__
                if refused is not None:
                    break
            if attempt + 1 < tries:
                await asyncio.sleep(self.backoff_base * (2 ** attempt))
        self.failed += 1
        log.warning("webhook %s: %s not delivered after %d tries (%s)", hook.url,
                    payload["event_type"], tries, last)
        return False

    async def drain(self, timeout: float) -> None:
        """Wait (at most ``timeout``) for the deliveries under way."""
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=timeout)

    async def close(self, grace: float = 1.0) -> None:
        await self.drain(grace)
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.session is not None:
            await self.session.close()
            self.session = None
