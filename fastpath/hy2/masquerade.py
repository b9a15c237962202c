"""What an HTTP/3 request that is not a successful auth gets: an ordinary web server's answer.

Modes of the reference: a plain 404 (default), a fixed ``string``, a ``file`` directory (no
path traversal), a reverse ``proxy`` to a URL.  No answer may mention hysteria or proxying.
"""
from __future__ import annotations

import asyncio
import logging
import mimetypes
import urllib.parse
from pathlib import Path

from fastpath.hy2.config import MasqueradeSettings
from fastpath.hy2.http_session import new_session

log = logging.getLogger("fastpath.hy2.masquerade")

Response = tuple[int, list[tuple[str, str]], bytes]

NOT_FOUND: Response = (404, [("content-type", "text/plain; charset=utf-8"),
                             ("x-content-type-options", "nosniff")], b"404 page not found\n")
MAX_FILE = 64 * 1024 * 1024
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
              "trailer", "transfer-encoding", "upgrade", "host", "content-length"}


def _with_length(resp: Response) -> Response:
    status, headers, body = resp
    return status, [*headers, ("content-length", str(len(body)))], body


class NotFoundMasquerade:
    async def respond(self, headers: dict, body: bytes) -> Response:
        return _with_length(NOT_FOUND)


class StringMasquerade:
    def __init__(self, status: int, headers: dict[str, str], content: str):
        self.response = _with_length((status, [(k.lower(), v) for k, v in headers.items()],
                                      content.encode()))

    async def respond(self, headers, body):
        return self.response


class FileMasquerade:
    def __init__(self, directory: str):
        self.root = Path(directory).resolve()

    def resolve(self, raw_path: str) -> Path | None:
        """The file a request path names inside the root, or None (never outside it)."""
        path = urllib.parse.unquote(raw_path.split("?", 1)[0].split("#", 1)[0])
        if "\x00" in path:
            return None
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if any(p == ".." for p in parts):
            return None
        target = self.root.joinpath(*parts) if parts else self.root
        try:
            target = target.resolve()
        except (OSError, RuntimeError):
            return None
        if target != self.root and self.root not in target.parents:
            return None
        if target.is_dir():
            target = target / "index.html"
        return target if target.is_file() else None

    async def respond(self, headers, body):
        method = headers.get(":method", "GET")
        if method not in ("GET", "HEAD"):
            return _with_length((405, [("content-type", "text/plain; charset=utf-8"),
                                       ("allow", "GET, HEAD")], b"405 method not allowed\n"))
        target = self.resolve(headers.get(":path", "/"))
        if target is None:
            return _with_length(NOT_FOUND)
        try:
            size = target.stat().st_size
            if size > MAX_FILE:
                return _with_length(NOT_FOUND)
            data = await asyncio.to_thread(target.read_bytes)
        except OSError:
            return _with_length(NOT_FOUND)
        ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if ctype.startswith("text/"):
            ctype += "; charset=utf-8"
        out = [("content-type", ctype), ("content-length", str(len(data)))]
        return 200, out, b"" if method == "HEAD" else data


class ProxyMasquerade:
    def __init__(self, url: str, rewrite_host: bool = False, insecure: bool = False):
        self.base = urllib.parse.urlsplit(url)
        self.rewrite_host = rewrite_host
        self.insecure = insecure
        self._session = None

    async def respond(self, headers, body):
        if self._session is None or self._session.closed:
            self._session = new_session(30, self.insecure, auto_decompress=False)
        path = headers.get(":path", "/")
        base_path = self.base.path.rstrip("/")
        url = urllib.parse.urlunsplit((self.base.scheme, self.base.netloc, base_path + path.split("?")[0],
                                       path.split("?", 1)[1] if "?" in path else "", ""))
        out_headers = {k: v for k, v in headers.items()
                       if not k.startswith(":") and k not in HOP_BY_HOP}
        host = headers.get(":authority", "")
        out_headers["Host"] = self.base.netloc if self.rewrite_host or not host else host
        try:
            async with self._session.request(headers.get(":method", "GET"), url,
                                             headers=out_headers, data=body or None,
                                             allow_redirects=False) as resp:
                data = await resp.read()
                back = [(k.lower(), v) for k, v in resp.headers.items()
                        if k.lower() not in HOP_BY_HOP]
                back.append(("content-length", str(len(data))))
                return resp.status, back, data
        except Exception as exc:
            log.info("masquerade upstream %s failed: %s", url, exc)
            return _with_length((502, [("content-type", "text/plain; charset=utf-8")],
                                 b"502 bad gateway\n"))

    async def close(self):
        if self._session is not None:
            await self._session.close()


def make_masquerade(settings: MasqueradeSettings):
    if settings.type == "string":
        return StringMasquerade(settings.string_status, settings.string_headers,
                                settings.string_content)
    if settings.type == "file":
        return FileMasquerade(settings.file_dir)
    if settings.type == "proxy":
        return ProxyMasquerade(settings.proxy_url, settings.proxy_rewrite_host,
                               settings.proxy_insecure)
    return NotFoundMasquerade()


def decode_headers(raw: list) -> dict[str, str]:
    """HTTP/3 header list (bytes pairs) as a dict of str, first value wins."""
    out: dict[str, str] = {}
    for k, v in raw:
        out.setdefault(k.decode("latin-1").lower(), v.decode("latin-1"))
    return out
