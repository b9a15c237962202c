"""A local HTTP proxy listener whose traffic goes through a ``Hy2Client``.

``CONNECT host:port`` is answered 200 and spliced to a proxy stream; a plain request with an
absolute URL is rewritten to origin form (``Connection: close``, no ``Proxy-*`` headers) and
sent to its host over a proxy stream, whose answer is relayed back as is.
"""
from __future__ import annotations

import asyncio
import logging

from fastpath.hy2.client.client import ConnectError, Hy2Client, Hy2Error
from fastpath.hy2.client.listener import TcpListener
from fastpath.proxy.http import HttpProxyHandshake, status
from fastpath.proxy.credentials import fixed_credentials

log = logging.getLogger("fastpath.hy2.http_proxy")

class HttpProxyServer(HttpProxyHandshake, TcpListener):
    def __init__(self, client: Hy2Client, listen: tuple[str, int], *, username: str | None = None,
                 password: str | None = None, realm: str = "Hysteria") -> None:
        self.client = client
        self.listen = listen
        self.realm = realm
        self.asks_credentials = username is not None
        if username is not None:
            self.check_credentials = fixed_credentials(username, password)

    async def _open_and_splice(self, reader, writer, address: str, identity, *,
                               answer: bytes = b"", prefix: bytes = b"") -> None:
        try:
            conn, sid, resp = await self.client._open(address)
        except ConnectError as exc:
            log.info("http proxy %s: %s", address, exc)
            writer.write(status(502, "Bad Gateway"))
            writer.close()
            return
        except (Hy2Error, OSError, asyncio.TimeoutError) as exc:
            log.info("http proxy %s: %s", address, exc)
            writer.write(status(503, "Service Unavailable"))
            writer.close()
            return
        if answer:
            writer.write(answer)
        self.client.splice_streams(conn, sid, resp, reader, writer, prefix=prefix)
