"""Requests to upstream origins: one aiohttp session per worker, per-stream user agent and
headers, redirects followed, connect and read timeouts, http(s) only, bounded bodies.

Every connection passes the outbound rule (``fastpath.media.outbound``): names through the
connector's resolver, literal addresses before each request.  Redirects are followed here,
not by aiohttp, so the literal check sees every hop."""
from __future__ import annotations

import time
from dataclasses import dataclass

import aiohttp

from yarl import URL

from fastpath.media import outbound
from fastpath.media.config import MediaSettings
from fastpath.media.refs import is_http_url


class UpstreamError(Exception):
    """An upstream request failed; ``kind`` is connect / http / timeout / stall / too_large /
    bad_url / refused (the outbound rule) / content, ``status`` the HTTP status when there was one."""

    def __init__(self, message: str, kind: str = "connect", status: int | None = None):
        super().__init__(message)
        self.kind = kind
        self.status = status


@dataclass
class Fetched:
    url: str              # what was asked for
    final_url: str        # after redirects
    status: int
    content_type: str
    body: bytes
    first_byte_ms: float


def check_url(url) -> str | None:
    """Why ``url`` cannot be an upstream, or None when it can."""
    if not isinstance(url, str) or not url:
        return "must be a non-empty string"
    if len(url) > 4096:
        return "is longer than 4096 characters"
    if any(c in url for c in "\x00\r\n\t "):
        return "contains whitespace or control characters"
    if not is_http_url(url):
        return "must be an http:// or https:// URL with a host"
    return None


class Upstream:
    def __init__(self, settings: MediaSettings):
        self.settings = settings
        self.policy = outbound.OutboundPolicy.from_settings(settings)
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = outbound.connector(self.policy, limit=0, limit_per_host=0, ttl_dns_cache=30,
                                       enable_cleanup_closed=True)
        self.session = aiohttp.ClientSession(connector=connector, trust_env=False,
                                             cookie_jar=aiohttp.DummyCookieJar(),
                                             auto_decompress=True)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    def headers(self, user_agent: str | None, extra: dict[str, str] | None) -> dict[str, str]:
        out = {"User-Agent": user_agent or self.settings.user_agent, "Accept": "*/*"}
        for name, value in (extra or {}).items():
            out[name] = value
        return out

    def _timeout(self, read: float) -> aiohttp.ClientTimeout:
        s = self.settings
        return aiohttp.ClientTimeout(total=None, connect=s.connect_timeout,
                                     sock_connect=s.connect_timeout, sock_read=read)

    async def open(self, url: str, headers: dict[str, str], *, read_timeout: float | None = None,
                   extra: dict[str, str] | None = None) -> aiohttp.ClientResponse:
        """Start a request and return the response once its headers are in (the caller reads
        and closes it).  Statuses >= 400 raise."""
        if check_url(url) is not None:
            raise UpstreamError(f"refusing to fetch {url!r}: not an http(s) URL", "bad_url")
        request_headers = dict(headers)
        if extra:
            request_headers.update(extra)
        timeout = self._timeout(read_timeout or self.settings.read_timeout)
        target = url
        for _ in range(outbound.MAX_REDIRECTS + 1):
            resp = await self._request(target, request_headers, timeout)
            location = resp.headers.get("Location")
            if resp.status not in outbound.REDIRECT_STATUSES or not location:
                break
            resp.release()
            try:
                following = resp.url.join(URL(location))
            except ValueError:
                raise UpstreamError(f"{host_of(target)}: bad redirect {location[:200]!r}", "http") from None
            if check_url(str(following)) is not None:
                raise UpstreamError(f"{host_of(target)}: redirect to a non-http(s) URL refused", "bad_url")
            if following.origin() != resp.url.origin():
                # As a browser would: credentials stay with the origin they were given for.
                for name in ("Authorization", "Cookie", "Proxy-Authorization"):
                    request_headers.pop(name, None)
                    request_headers.pop(name.lower(), None)
            target = str(following)
        else:
            raise UpstreamError(f"{host_of(url)}: too many redirects", "http")
        if resp.status >= 400:
            resp.release()
            raise UpstreamError(f"{host_of(url)}: HTTP {resp.status}", "http", resp.status)
        return resp

    async def _request(self, url: str, headers: dict[str, str],
                       timeout: aiohttp.ClientTimeout) -> aiohttp.ClientResponse:
        """One GET, redirects not followed; connection errors as UpstreamError."""
        try:
            self.policy.check_literal(url)
            return await self.session.get(url, headers=headers, allow_redirects=False,
                                          timeout=timeout)
        except outbound.RefusedAddress as exc:
            raise UpstreamError(f"{host_of(url)}: {exc}", "refused") from None
        except TimeoutError:
            raise UpstreamError(f"{host_of(url)}: no answer within {self.settings.connect_timeout:g}s",
                                "timeout") from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            refused = outbound.refused_cause(exc)
            if refused is not None:
                raise UpstreamError(f"{host_of(url)}: {refused}", "refused") from None
            raise UpstreamError(f"{host_of(url)}: {_reason(exc)}", "connect") from None

    async def fetch(self, url: str, headers: dict[str, str], *, max_bytes: int,
                    read_timeout: float | None = None, extra: dict[str, str] | None = None) -> Fetched:
        """A whole body (playlist, segment, key), at most ``max_bytes``."""
        started = time.monotonic()
        resp = await self.open(url, headers, read_timeout=read_timeout, extra=extra)
        first = (time.monotonic() - started) * 1000.0
        try:
            length = resp.content_length
            if length is not None and length > max_bytes:
                raise UpstreamError(f"{host_of(url)}: body of {length} bytes exceeds {max_bytes}",
                                    "too_large")
            parts = []
            size = 0
            async for data in resp.content.iter_any():
                size += len(data)
                if size > max_bytes:
                    raise UpstreamError(f"{host_of(url)}: body exceeds {max_bytes} bytes", "too_large")
                parts.append(data)
            body = parts[0] if len(parts) == 1 else b"".join(parts)
        except TimeoutError:
            raise UpstreamError(f"{host_of(url)}: read timed out", "timeout") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamError(f"{host_of(url)}: {_reason(exc)}", "connect") from None
        finally:
            resp.release()
        return Fetched(url=url, final_url=str(resp.url), status=resp.status,
                       content_type=resp.headers.get("Content-Type", ""), body=body,
                       first_byte_ms=first)


def host_of(url: str) -> str:
    """The host:port of ``url`` for messages (not the path or query, which may carry tokens)."""
    try:
        from urllib.parse import urlsplit
        return urlsplit(url).netloc or url[:80]
    except ValueError:
        return url[:80]


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]
