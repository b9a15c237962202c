"""The server side of the WebSocket transport of the VLESS, VMess and Trojan inbounds.

The opening handshake (RFC 6455 section 4) is the ``websockets`` package's sans-I/O
``ServerProtocol``: it checks the upgrade request and writes the 101 (or the error answer).
Here is only what is the inbound's: the configured path (the query string, which clients use
for their own options, is ignored) and ``Host`` must match or the answer is a 404, as the
reference servers give; and *early data*: a client may put the first bytes of its stream,
base64url without padding, in ``Sec-WebSocket-Protocol`` (xray and sing-box with
``early_data_header_name``), echoed back in the answer as those servers do.  After the 101,
frames are the compiled ``ws_frames`` codecs' work.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import logging

log = logging.getLogger("fastpath.inbounds.ws")

HANDSHAKE_SECONDS = 30.0
MAX_REQUEST = 16 * 1024
EARLY_HEADER = "Sec-WebSocket-Protocol"


def _host_only(value: str) -> str:
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def _server_protocol():
    """websockets' ServerProtocol, imported on first use: the package costs ~0.1-0.4 s to
    import (its version lookup), which every worker would pay at start for nothing when no
    inbound uses WebSocket."""
    from websockets.server import ServerProtocol
    return ServerProtocol()


def _early_data(headers) -> bytes:
    value = headers.get(EARLY_HEADER)
    if not value or "," in value:
        return b""
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return b""


async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, path: str,
                 host: str | None, tag: str) -> bytes | None:
    """Answer the upgrade request; the early data (possibly empty) once the WebSocket is open,
    None when it is not (the answer was written and the connection closed)."""
    try:
        async with asyncio.timeout(HANDSHAKE_SECONDS):
            head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
            ConnectionError):
        writer.close()
        return None
    if len(head) > MAX_REQUEST:
        writer.close()
        return None
    protocol = _server_protocol()
    protocol.receive_data(head)
    events = protocol.events_received()
    if not events:
        writer.write(b"".join(protocol.data_to_send()) or
                     b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        writer.close()
        return None
    request = events[0]
    early = b""
    if request.path.split("?", 1)[0] != path:
        response = protocol.reject(404, "Not Found\n")
        log.debug("inbound %s: WebSocket path %r refused", tag, request.path[:200])
    elif host and _host_only(request.headers.get("Host", "")) != _host_only(host):
        response = protocol.reject(404, "Not Found\n")
        log.debug("inbound %s: WebSocket host %r refused", tag, request.headers.get("Host", "")[:200])
    else:
        response = protocol.accept(request)
        if response.status_code == 101:
            early = _early_data(request.headers)
            if early:
                response.headers[EARLY_HEADER] = request.headers[EARLY_HEADER]
    protocol.send_response(response)
    writer.write(b"".join(protocol.data_to_send()))
    if response.status_code != 101:
        writer.close()
        return None
    return early
