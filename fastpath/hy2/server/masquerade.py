"""What an HTTP/3 request that is not a successful auth gets: an ordinary web server's answer.

Modes of the reference: a plain 404 (default), a fixed ``string``, a ``file`` directory (no
path traversal), a reverse ``proxy`` to a URL.  No answer may mention hysteria or proxying.

Every answer then gets what Go's HTTP/3 response writer adds to the reference's: a ``date``
header, and a ``content-type`` sniffed from the body when the mode set none (``go_writer``).
"""
from __future__ import annotations

import asyncio
import email.utils
import logging
import mimetypes
import urllib.parse
from pathlib import Path

from fastpath.hy2.config import MasqueradeSettings
from fastpath.hy2.server.http_session import new_session

log = logging.getLogger("fastpath.hy2.masquerade")

Response = tuple[int, list[tuple[str, str]], bytes]

NOT_FOUND: Response = (404, [("content-type", "text/plain; charset=utf-8"),
                             ("x-content-type-options", "nosniff")], b"404 page not found\n")
MAX_FILE = 64 * 1024 * 1024
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
              "trailer", "transfer-encoding", "upgrade", "host", "content-length"}


# Go's http.DetectContentType, the part a masquerade body can hit (WHATWG MIME sniffing as Go
# implements it).  Written here because no library sniffs the way Go does, and a prober
# compares with Go's answer: leading whitespace skipped, HTML tags case-insensitive and ended
# by a space or '>', then a few magic numbers, then text unless a binary byte shows up.
_HTML_TAGS = (b"<!DOCTYPE HTML", b"<HTML", b"<HEAD", b"<SCRIPT", b"<IFRAME", b"<H1", b"<DIV",
              b"<FONT", b"<TABLE", b"<A", b"<STYLE", b"<TITLE", b"<B", b"<BODY", b"<BR", b"<P",
              b"<!--")
_MAGIC = ((b"%PDF-", "application/pdf"), (b"%!PS-Adobe-", "application/postscript"),
          (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif"), (b"\x89PNG\r\n\x1a\n", "image/png"),
          (b"\xff\xd8\xff", "image/jpeg"), (b"BM", "image/bmp"), (b"PK\x03\x04", "application/zip"),
          (b"\x1f\x8b\x08", "application/x-gzip"), (b"wOFF", "font/woff"), (b"wOF2", "font/woff2"))
_BINARY = frozenset(list(range(0x00, 0x09)) + [0x0B] + list(range(0x0E, 0x1B)) + list(range(0x1C, 0x20)))


def sniff_content_type(body: bytes) -> str:
    head = body[:512]
    text = head.lstrip(b"\t\n\x0c\r ")
    upper = text.upper()
    for tag in _HTML_TAGS:
        if upper.startswith(tag) and len(text) > len(tag) and text[len(tag)] in b" >":
            return "text/html; charset=utf-8"
    if text.startswith(b"<?xml"):
        return "text/xml; charset=utf-8"
    for magic, ctype in _MAGIC:
        if head.startswith(magic):
            return ctype
    if head.startswith((b"\xfe\xff", b"\xff\xfe")):
        return "text/plain; charset=utf-16" + ("be" if head[0] == 0xFE else "le")
    if head.startswith(b"\xef\xbb\xbf"):
        return "text/plain; charset=utf-8"
    if any(b in _BINARY for b in head):
        return "application/octet-stream"
    return "text/plain; charset=utf-8"


def go_writer(resp: Response) -> Response:
    """What Go's response writer adds: ``date`` always (unless the handler set one), a sniffed
    ``content-type`` when there is a body and the handler set none."""
    status, headers, body = resp
    names = {k.lower() for k, _ in headers}
    extra = []
    if "content-type" not in names and body:
        extra.append(("content-type", sniff_content_type(body)))
    if "date" not in names:
        extra.append(("date", email.utils.formatdate(usegmt=True)))
    return (status, [*headers, *extra], body) if extra else resp


def _with_length(resp: Response) -> Response:
    status, headers, body = resp
    return status, [*headers, ("content-length", str(len(body)))], body


def not_found() -> Response:
    """The reference's plain 404 (before ``go_writer``)."""
    return _with_length(NOT_FOUND)


class _HoldsNothing:
    """A masquerade with nothing to release when the server stops (``ProxyMasquerade`` holds
    an HTTP session)."""

    async def close(self) -> None:
        return None


class NotFoundMasquerade(_HoldsNothing):
    async def respond(self, headers: dict, body: bytes) -> Response:
        return go_writer(_with_length(NOT_FOUND))


class StringMasquerade(_HoldsNothing):
    def __init__(self, status: int, headers: dict[str, str], content: str):
        self.response = _with_length((status, [(k.lower(), v) for k, v in headers.items()],
                                      content.encode()))

    async def respond(self, headers, body):
        return go_writer(self.response)


class FileMasquerade(_HoldsNothing):
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
        return go_writer(await self._respond(headers, body))

    async def _respond(self, headers, body):
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
        return go_writer(await self._respond(headers, body))

    async def _respond(self, headers, body):
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
