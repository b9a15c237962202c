"""m3u-proxy's failover resolver: asking a stream's ``failover_resolver_url`` for its next URL.

An IPTV manager knows things a fixed ``failover_urls`` list cannot (which of an account's
servers is up now, which line is free), so m3u-proxy lets a stream name a URL that is asked
on every failover.  The request and answer are m3u-proxy 0.2.49's: a POST of JSON
``{current_url, metadata, current_failover_index}``, 10 s at most, and ``next_url`` from a
2xx JSON object is the stream's new URL.

Where we differ, deliberately: m3u-proxy does not fail over at all when the resolver fails;
here a failed, empty or refused answer falls back to walking ``failover_urls`` (the caller
does that), so a resolver outage is not a stream outage.  Every failure is logged once, with
the stream and why.

The resolver is an address an API caller names, and so is its answer: both go through the
relay's outbound rule (``fastpath.media.outbound``) like upstreams and webhooks.  The request
uses a session whose connector checks every address it connects to; the answer's URL is
checked here (after resolving its host, off the event loop) so a refused ``next_url`` is
reported as the resolver's fault instead of as one more failing upstream, and checked again
on every connection the relay makes to it.

This runs on the failover path only (once per upstream failure), never per packet.  With
several workers, each worker whose reader sees the failure asks (at most one call per worker);
the store records the first answer and the others follow it, so the node counts and announces
one failover (``follow``).
"""
from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import replace

import aiohttp

from fastpath.media import outbound
from fastpath.media.upstream import check_url, host_of
from fastpath.store.media_store import MediaStream

log = logging.getLogger("fastpath.media.failover_resolver")

TIMEOUT = 10.0               # m3u-proxy's httpx timeout for the call
MAX_ANSWER = 64 * 1024       # an answer is one small JSON object


class ResolverError(Exception):
    """The resolver could not be asked, or its answer cannot be used."""


def request_body(current_url: str, metadata: dict, position: int) -> dict:
    """The JSON m3u-proxy POSTs: the failing URL, the stream's metadata and its
    ``current_failover_index``."""
    return {"current_url": current_url, "metadata": dict(metadata), "current_failover_index": position}


async def ask(session: aiohttp.ClientSession, policy: outbound.OutboundPolicy, resolver_url: str,
              body: dict) -> str | None:
    """The resolver's ``next_url``, None when it has none now; ResolverError when the call
    failed or the answer is refused.  The caller bounds the time (``resolve``)."""
    try:
        policy.check_literal(resolver_url)
        async with session.post(resolver_url, json=body, allow_redirects=False,
                                headers={"Accept": "application/json"}) as resp:
            if not 200 <= resp.status < 300:
                raise ResolverError(f"answered HTTP {resp.status}")
            raw = await resp.content.read(MAX_ANSWER + 1)
    except outbound.RefusedAddress as exc:
        raise ResolverError(str(exc)) from None
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        refused = outbound.refused_cause(exc)
        raise ResolverError(str(refused) if refused else
                            f"cannot be reached: {str(exc) or type(exc).__name__}") from None
    if len(raw) > MAX_ANSWER:
        raise ResolverError(f"answered more than {MAX_ANSWER} bytes")
    try:
        answer = json.loads(raw)
    except ValueError:
        raise ResolverError("answered something that is not JSON") from None
    if not isinstance(answer, dict):
        raise ResolverError("answered JSON that is not an object")
    next_url = answer.get("next_url")
    if next_url is None or next_url == "":
        return None
    why = check_url(next_url)
    if why is not None:
        raise ResolverError(f"answered a next_url that {why}: {str(next_url)[:200]!r}")
    refused = await asyncio.get_running_loop().run_in_executor(None, policy.refusal_for_url, next_url)
    if refused is not None:
        raise ResolverError(f"answered next_url {next_url[:200]}, {refused}")
    return next_url


async def resolve(session: aiohttp.ClientSession, policy: outbound.OutboundPolicy, stream_id: str,
                  resolver_url: str, body: dict, timeout: float = TIMEOUT) -> str | None:
    """``ask`` within ``timeout``; every outcome but a usable URL is logged and gives None."""
    where = host_of(resolver_url)
    try:
        next_url = await asyncio.wait_for(ask(session, policy, resolver_url, body), timeout)
    except TimeoutError:
        log.warning("stream %s: failover resolver %s gave no answer within %gs; walking "
                    "failover_urls instead", stream_id, where, timeout)
        return None
    except ResolverError as exc:
        log.warning("stream %s: failover resolver %s %s; walking failover_urls instead",
                    stream_id, where, exc)
        return None
    if next_url is None:
        log.info("stream %s: failover resolver %s has no next_url now; walking failover_urls "
                 "instead", stream_id, where)
        return None
    log.info("stream %s: failover resolver %s answered %s", stream_id, where, host_of(next_url))
    return next_url


async def resolve_once(policy: outbound.OutboundPolicy, stream_id: str, resolver_url: str,
                       body: dict, timeout: float = TIMEOUT) -> str | None:
    """``resolve`` with a session of its own (for the control face, which has no loop)."""
    async with aiohttp.ClientSession(connector=outbound.connector(policy), trust_env=False,
                                     cookie_jar=aiohttp.DummyCookieJar()) as session:
        return await resolve(session, policy, stream_id, resolver_url, body, timeout)


async def follow(svc, stream: MediaStream, old: int, data_for, on_win) -> MediaStream | None:
    """A relay's failover through the resolver: ask it about URL ``old`` and record its answer
    as the node's (``NodeEvents.switch_resolved``: the first worker to record wins and fires
    ``failover_triggered`` with ``data_for(stream after, url left)``; the others follow).
    Returns the stream as the node now has it (the relay moves to its ``failover_index``), or
    None when the resolver gave nothing or another worker walked the list meanwhile: the
    relay then walks ``failover_urls``."""
    old_url = stream.urls[old]
    answer = await resolve(svc.upstream.session, svc.upstream.policy, stream.id,
                           stream.failover_resolver_url,
                           request_body(old_url, stream.metadata, stream.failover_position(old)))
    if answer is None:
        return None
    moved = replace(stream, resolved_url=answer, resolved_count=stream.resolved_count + 1)
    won, stored = await svc.events.switch_resolved(stream.id, old, old_url, answer,
                                                   data=data_for(moved, old_url), on_win=on_win)
    now = stored if stored is not None else (moved if won else None)
    return now if now is not None and now.resolved_url else None
