"""Delivery of one webhook event from the control process (``POST /webhooks/test``).

Workers deliver the relay's own events; the test event is sent here so the answer can say
whether it arrived.  Same rules as the workers': JSON payload ``{event_id, event_type,
stream_id, timestamp, data}``, the hook's headers, a total timeout per try, success on a
status below 400, ``retry_attempts`` more tries after 1, 2, 4 ... seconds.  aiohttp gives a
real total timeout per try (a receiver that trickles bytes cannot hold the request longer).
Connections pass the relay's outbound rule (``fastpath.media.outbound``), as the workers' do;
what went wrong is logged for the operator, the caller only learns whether it arrived.
"""
from __future__ import annotations

import asyncio
import json
import logging
import uuid

import aiohttp

from fastpath import __version__
from fastpath.media import outbound
from fastpath.media.webhooks import event_time
from fastpath.store.media_store import Webhook

log = logging.getLogger("fastpath.control.stream_proxy")

USER_AGENT = f"fastpath/{__version__} webhook"


def make_event(event_type: str, stream_id: str, data: dict) -> dict:
    return {"event_id": str(uuid.uuid4()), "event_type": event_type, "stream_id": stream_id,
            "timestamp": event_time(), "data": data}


async def _deliver(hook: Webhook, event: dict, backoff: float,
                   policy: outbound.OutboundPolicy) -> dict:
    body = json.dumps(event).encode()
    headers = {"User-Agent": USER_AGENT, **hook.headers, "Content-Type": "application/json"}
    tries = hook.retry_attempts + 1
    result = {"delivered": False, "attempts": 0, "status_code": None, "error": None}
    timeout = aiohttp.ClientTimeout(total=hook.timeout)
    async with aiohttp.ClientSession(timeout=timeout, connector=outbound.connector(policy),
                                     trust_env=False) as session:
        for n in range(tries):
            if n:
                await asyncio.sleep(backoff * 2 ** (n - 1))
            result["attempts"] = n + 1
            try:
                policy.check_literal(hook.url)
                async with session.post(hook.url, data=body, headers=headers,
                                        allow_redirects=False) as resp:
                    result["status_code"] = resp.status
                    await resp.read()
                    if resp.status < 400:
                        result["delivered"], result["error"] = True, None
                        return result
                    result["error"] = f"HTTP {resp.status}"
            except TimeoutError:
                result["status_code"], result["error"] = None, f"no answer within {hook.timeout:g}s"
            except (aiohttp.ClientError, OSError) as exc:
                refused = outbound.refused_cause(exc)
                result["status_code"] = None
                result["error"] = str(refused or exc) or type(exc).__name__
                if refused is not None:
                    break                       # the rule will not change between tries
    if not result["delivered"]:
        log.warning("webhook test to %s not delivered: %s", hook.url, result["error"])
    return result


def deliver(hook: Webhook, event: dict, policy: outbound.OutboundPolicy,
            backoff: float = 1.0) -> dict:
    """Send ``event`` to ``hook`` (blocking; runs in a control-API thread)."""
    return asyncio.run(_deliver(hook, event, backoff, policy))
