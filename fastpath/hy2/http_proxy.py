"""A local HTTP proxy listener whose traffic goes through a ``Hy2Client``.

``CONNECT host:port`` is answered 200 and spliced to a proxy stream; a plain request with an
absolute URL is rewritten to origin form (``Connection: close``, no ``Proxy-*`` headers) and
sent to its host over a proxy stream, whose answer is relayed back as is.
"""
from __future__ import annotations

import asyncio
import base64
import hmac
import logging
import urllib.parse

from fastpath.hy2.client import ConnectError, Hy2Client, Hy2Error
from fastpath.hy2.listener import TcpListener
from fastpath.hy2.udp_relay import join_address

log = logging.getLogger("fastpath.hy2.http_proxy")

MAX_HEAD = 64 * 1024
HEAD_TIMEOUT = 30.0


def _status(code: int, reason: str, extra: str = "") -> bytes:
    body = f"{code} {reason}\n"
    return (f"HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain\r\nConnection: close\r\n"
            f"{extra}Content-Length: {len(body)}\r\n\r\n{body}").encode()


class HttpProxyServer(TcpListener):
    stream_limit = MAX_HEAD

    def __init__(self, client: Hy2Client, listen: tuple[str, int], *, username: str | None = None,
                 password: str | None = None, realm: str = "Hysteria") -> None:
        self.client = client
        self.listen = listen
        self.username = username
        self.password = password
        self.realm = realm

    def _authorized(self, headers: list[tuple[str, str]]) -> bool:
        if self.username is None:
            return True
        for name, value in headers:
            if name.lower() == "proxy-authorization" and value.lower().startswith("basic "):
                try:
                    user, _, password = base64.b64decode(value[6:].strip()).decode().partition(":")
                except (ValueError, UnicodeDecodeError):
                    return False
                return (hmac.compare_digest(user.encode(), self.username.encode())
                        and hmac.compare_digest(password.encode(), (self.password or "").encode()))
        return False

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ConnectionError):
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            writer.write(_status(400, "Bad Request"))
            writer.close()
            return
        headers = []
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers.append((name.strip(), value.strip()))
        if not self._authorized(headers):
            writer.write(_status(407, "Proxy Authentication Required",
                                 f'Proxy-Authenticate: Basic realm="{self.realm}"\r\n'))
            writer.close()
            return
        if method.upper() == "CONNECT":
            await self._tunnel(reader, writer, target)
        else:
            await self._forward(reader, writer, method, target, version, headers)

    async def _open(self, writer, address: str):
        try:
            return await self.client._open(address)
        except ConnectError as exc:
            log.info("http proxy %s: %s", address, exc)
            writer.write(_status(502, "Bad Gateway"))
        except (Hy2Error, OSError, asyncio.TimeoutError) as exc:
            log.info("http proxy %s: %s", address, exc)
            writer.write(_status(503, "Service Unavailable"))
        writer.close()
        return None

    async def _tunnel(self, reader, writer, target: str) -> None:
        address = target if target.rsplit(":", 1)[-1].isdigit() else f"{target}:443"
        opened = await self._open(writer, address)
        if opened is None:
            return
        conn, sid, resp = opened
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.client.splice_streams(conn, sid, resp, reader, writer)

    async def _forward(self, reader, writer, method, target, version, headers) -> None:
        url = urllib.parse.urlsplit(target)
        if url.scheme != "http" or not url.hostname:
            writer.write(_status(400, "Bad Request"))
            writer.close()
            return
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
        request = ("\r\n".join(out) + "\r\n\r\n").encode("latin-1")
        opened = await self._open(writer, address)
        if opened is None:
            return
        conn, sid, resp = opened
        self.client.splice_streams(conn, sid, resp, reader, writer, prefix=request)
