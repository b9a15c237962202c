"""HTTP proxy (CONNECT and absolute-URL requests, Basic auth): the server side's handshake.

``HttpProxyHandshake`` reads a request head, checks ``Proxy-Authorization`` when it asks for
credentials, and turns the request into an address to open plus what must happen on success:
for ``CONNECT`` the ``200`` answer, for a plain request the request itself rewritten to origin
form (``Connection: close``, no ``Proxy-*`` headers), to send to the target first.  A subclass
opens the connection and splices it (``_open_and_splice``).
"""
from __future__ import annotations

import asyncio
import base64
import urllib.parse

from fastpath.mesh.paths import join_address

MAX_HEAD = 64 * 1024
HEAD_TIMEOUT = 30.0
TUNNEL_ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"


def status(code: int, reason: str, extra: str = "") -> bytes:
    body = f"{code} {reason}\n"
    return (f"HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain\r\nConnection: close\r\n"
            f"{extra}Content-Length: {len(body)}\r\n\r\n{body}").encode()


def parse_head(head: bytes) -> tuple[str, str, str, list[tuple[str, str]]]:
    """(method, target, version, headers) of a request head; ValueError if malformed."""
    lines = head.decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ", 2)
    if not method or not target or not version.startswith("HTTP/"):
        raise ValueError("not an HTTP request line")
    headers = []
    for line in lines[1:]:
        if line:
            name, sep, value = line.partition(":")
            if not sep or not name.strip():
                raise ValueError("malformed header line")
            headers.append((name.strip(), value.strip()))
    return method, target, version, headers


def basic_credentials(headers) -> tuple[bytes, bytes] | None:
    """(user, password) from ``Proxy-Authorization: Basic``, or None."""
    for name, value in headers:
        if name.lower() == "proxy-authorization" and value.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(value[6:].strip(), validate=True).partition(b":")
            except ValueError:
                return None
            return user, password
    return None


def origin_request(method: str, target: str, version: str, headers) -> tuple[str, bytes]:
    """(address, request bytes in origin form) for an absolute ``http://`` URL; ValueError
    for anything else."""
    url = urllib.parse.urlsplit(target)
    if url.scheme != "http" or not url.hostname:
        raise ValueError("only absolute http:// URLs can be forwarded")
    address = join_address(url.hostname, url.port or 80)
    path = urllib.parse.urlunsplit(("", "", url.path or "/", url.query, ""))
    out = [f"{method} {path} {version}"]
    has_host = False
    for name, value in headers:
        low = name.lower()
        if low.startswith("proxy-") or low in ("connection", "keep-alive"):
            continue
        has_host = has_host or low == "host"
        out.append(f"{name}: {value}")
    if not has_host:
        out.append(f"Host: {url.netloc}")
    out.append("Connection: close")
    return address, ("\r\n".join(out) + "\r\n\r\n").encode("latin-1")


def tunnel_address(target: str) -> str:
    return target if target.rsplit(":", 1)[-1].isdigit() else f"{target}:443"


class HttpProxyHandshake:
    """The server side of an HTTP proxy request, one instance per listener."""

    stream_limit = MAX_HEAD
    asks_credentials = False
    realm = "Hysteria"

    async def check_credentials(self, user: bytes, password: bytes):
        """Who these credentials are (any object), or None to refuse them."""
        return None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ConnectionError):
            writer.close()
            return
        try:
            method, target, version, headers = parse_head(head)
        except (ValueError, UnicodeDecodeError):
            writer.write(status(400, "Bad Request"))
            writer.close()
            return
        identity = None
        if self.asks_credentials:
            given = basic_credentials(headers)
            identity = await self.check_credentials(*given) if given else None
            if identity is None:
                writer.write(status(407, "Proxy Authentication Required",
                                    f'Proxy-Authenticate: Basic realm="{self.realm}"\r\n'))
                writer.close()
                return
        if method.upper() == "CONNECT":
            await self._open_and_splice(reader, writer, tunnel_address(target), identity,
                                        answer=TUNNEL_ESTABLISHED)
            return
        try:
            address, request = origin_request(method, target, version, headers)
        except ValueError:
            writer.write(status(400, "Bad Request"))
            writer.close()
            return
        await self._open_and_splice(reader, writer, address, identity, prefix=request)

    async def _open_and_splice(self, reader, writer, address: str, identity, *,
                               answer: bytes = b"", prefix: bytes = b"") -> None:
        """Open ``address``; on success write ``answer`` to the client, send ``prefix`` to the
        target, and relay; on failure answer 502/503 and close."""
        raise NotImplementedError
