"""The remote-UI tunnel: one HTTP exchange carried to a peer node's own web UI and API.

HY2 SCALE opens a peer's management UI through the mesh (``/scale/remote/{chain}/...`` on the
control face, ``fastpath.control.hy2scale.remote``).  The control process asks one worker
(``carry``) to open ``_relay_api_:0`` (``fastpath.mesh.wire.API``) on the chain's first peer,
or a via request whose target it is, write the request and read the whole answer.  The node at
the chain's end serves that stream in its data plane (``serve``) by dialing its own control
listener on loopback.

The serving side is a gateway, not a pipe, because the request arrives from loopback where the
control listener trusts its callers (no token on loopback, the default HY2 SCALE password
accepted): any user of the Hysteria 2 server can open this stream.  So exactly one request is
let through, and only one the HY2 SCALE face answers with its own auth:

- the head is parsed whole first (``check_request``: at most ``MAX_HEAD`` bytes, HTTP/1.x,
  an origin-form target under ``/scale/`` without dot segments, never ``/scale/remote/``: no
  chaining, as the reference refuses it);
- the body must have a ``Content-Length`` (at most ``MAX_BODY``; chunked bodies are refused)
  and only that many bytes are forwarded, after a rebuilt head with ``Connection: close``,
  so nothing can be smuggled behind it;
- the head carries ``X-Hy2scale-Proxy: true`` (whatever the caller sent under that name is
  dropped first): the face then treats the caller as beyond loopback
  (``fastpath.control.hy2scale.auth.scale_rule``), and its ``/scale/remote/`` refuses it.

Both sides are bounded: ``TIMEOUT`` for the exchange, ``MAX_ANSWER`` for the answer (it
travels back to the control process in one command frame).  A streaming answer
(``text/event-stream``) is refused by the carrying side as soon as its head shows it.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
from urllib.parse import unquote

from fastpath.mesh import wire

log = logging.getLogger("fastpath.mesh.api_relay")

MAX_HEAD = 16 * 1024
MAX_BODY = 8 << 20
MAX_ANSWER = 12 << 20            # under the command channel's 16 MiB frame
TIMEOUT = 15.0                   # the reference's tunnel deadline
MARK = "X-Hy2scale-Proxy"
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
# Not forwarded: the framing is ours (one request, then close).
HOP_BY_HOP = frozenset(("connection", "keep-alive", "proxy-connection", "te", "trailer", "trailers",
                        "transfer-encoding", "upgrade", "expect", "host", "content-length",
                        MARK.lower()))
TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
TARGET = re.compile(r"^/[\x21-\x7e]*$")
VALUE_BAD = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class ApiRelayError(ValueError):
    """A request the gateway refuses: the HTTP status and the reason for the caller."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _check_target(target: str) -> None:
    if not TARGET.match(target) or "#" in target:
        raise ApiRelayError(400, "the request target must be an origin-form path")
    path = target.partition("?")[0]
    if path != "/scale" and not path.startswith("/scale/"):
        raise ApiRelayError(403, "only the HY2 SCALE face (/scale/...) is reachable through the mesh")
    try:
        decoded = unquote(path, errors="strict")
    except UnicodeDecodeError:
        raise ApiRelayError(400, "the request path is not UTF-8") from None
    segments = decoded.split("/")[1:]
    if any(s in (".", "..") for s in segments) or "\\" in decoded or "//" in decoded:
        raise ApiRelayError(400, "the request path has dot segments or empty segments")
    if len(segments) > 1 and segments[1] == "remote":
        raise ApiRelayError(403, "proxy chaining not allowed")


def check_request(head: bytes) -> tuple[bytes, int]:
    """The head to send on (``head``: the request line and header lines, without the blank
    line) and the body length; ``ApiRelayError`` for a request that is not let through."""
    if len(head) > MAX_HEAD:
        raise ApiRelayError(431, f"request head larger than {MAX_HEAD} bytes")
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:              # pragma: no cover - latin-1 decodes any byte
        raise ApiRelayError(400, "bad request head") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or parts[2] not in ("HTTP/1.1", "HTTP/1.0"):
        raise ApiRelayError(400, "bad request line (expected 'METHOD /path HTTP/1.1')")
    method, target, _version = parts
    if method not in METHODS:
        raise ApiRelayError(405, f"method {method[:16]!r} is not relayed")
    _check_target(target)
    out = [f"{method} {target} HTTP/1.1"]
    length = None
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not TOKEN.match(name):
            raise ApiRelayError(400, "bad header line")
        value = value.strip(" \t")
        if VALUE_BAD.search(value):
            raise ApiRelayError(400, f"bad value of header {name[:40]!r}")
        low = name.lower()
        if low == "transfer-encoding":
            raise ApiRelayError(411, "a request body needs a Content-Length (chunked bodies are not relayed)")
        if low == "content-length":
            if not value.isdigit() or len(value) > 12 or (length is not None and int(value) != length):
                raise ApiRelayError(400, "bad Content-Length")
            length = int(value)
            continue
        if low in HOP_BY_HOP:
            continue
        out.append(f"{name}: {value}")
    length = length or 0
    if length > MAX_BODY:
        raise ApiRelayError(413, f"request body larger than {MAX_BODY} bytes")
    out += ["Host: 127.0.0.1", f"Content-Length: {length}", "Connection: close", f"{MARK}: true", "", ""]
    return "\r\n".join(out).encode("latin-1"), length


def error_answer(status: int, message: str) -> bytes:
    body = json.dumps({"error": message}).encode()
    reason = {400: "Bad Request", 403: "Forbidden", 405: "Method Not Allowed", 411: "Length Required",
              413: "Payload Too Large", 431: "Request Header Fields Too Large", 501: "Not Implemented",
              502: "Bad Gateway", 504: "Gateway Timeout"}.get(status, "Error")
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


# -- the serving side (the chain's last node, in its data plane) ----------------------------
async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, control) -> None:
    """Answer the one request on ``reader``/``writer`` (the relay stream's local end) from
    the control listener at ``control`` ((host, port); None: this node has no HY2 SCALE
    face to show)."""
    started = False
    upstream = None
    try:
        async with asyncio.timeout(TIMEOUT):
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.LimitOverrunError:
                raise ApiRelayError(431, f"request head larger than {MAX_HEAD} bytes") from None
            except asyncio.IncompleteReadError:
                return                              # the asker went away
            if control is None:
                raise ApiRelayError(501, "this node does not serve the HY2 SCALE face")
            new_head, length = check_request(head[:-4])
            body = await reader.readexactly(length) if length else b""
            try:
                up_reader, upstream = await asyncio.open_connection(*control)
            except OSError as exc:
                raise ApiRelayError(502, f"this node's control listener is unreachable: {exc}") from None
            upstream.write(new_head + body)
            await upstream.drain()
            sent = 0
            while chunk := await up_reader.read(65536):
                started = True
                sent += len(chunk)
                if sent > MAX_ANSWER:
                    log.info("remote UI: answer over %d bytes cut", MAX_ANSWER)
                    break
                writer.write(chunk)
                await writer.drain()
    except ApiRelayError as exc:
        if not started:
            writer.write(error_answer(exc.status, str(exc)))
    except TimeoutError:
        if not started:
            writer.write(error_answer(504, f"no answer within {TIMEOUT:g} s"))
    except (OSError, asyncio.IncompleteReadError) as exc:
        log.debug("remote UI stream ended: %s", exc)
    finally:
        if upstream is not None:
            upstream.close()
        try:
            if writer.can_write_eof():
                writer.write_eof()
        except OSError:
            pass
        writer.close()


# -- the carrying side (a worker of the node whose control face was asked) ----------------
def address_for(chain) -> str:
    """What to open on ``chain[0]``: the tunnel there, or a via request to the chain's end."""
    return wire.API if len(chain) == 1 else wire.encode_via(tuple(chain[1:]), wire.API)


def _streaming(data: bytes) -> bool:
    head = bytes(data.partition(b"\r\n\r\n")[0]).lower()
    return re.search(rb"\r\ncontent-type:[ \t]*text/event-stream", head) is not None


async def carry(peers, chain, request: bytes, timeout: float = TIMEOUT) -> dict:
    """Carry ``request`` (a whole HTTP/1.1 request) along ``chain`` (client names, as each
    node names its own) and return ``{"answer": bytes}`` or ``{"status", "error"}``."""
    from fastpath.hy2.client.client import Hy2Error
    path = "/".join(chain)
    writer = None
    try:
        async with asyncio.timeout(timeout):
            client = await peers.peer(chain[0]).connection()
            reader, writer = await client.open_tcp(address_for(chain))
            writer.write(request)
            await writer.drain()
            data = bytearray()
            checked = False
            while chunk := await reader.read(65536):
                data += chunk
                if not checked and b"\r\n\r\n" in data:
                    checked = True
                    if _streaming(data):
                        return {"status": 501, "error": "streaming answers (text/event-stream) are not "
                                                        "relayed through the remote UI tunnel"}
                if len(data) > MAX_ANSWER:
                    return {"status": 502, "error": f"the answer of {path} is larger than {MAX_ANSWER} bytes"}
    except TimeoutError:
        return {"status": 504, "error": f"tunnel to {path}: no complete answer within {timeout:g} s"}
    except (OSError, Hy2Error) as exc:
        return {"status": 502, "error": f"tunnel to {path} failed: {exc or type(exc).__name__}"}
    finally:
        if writer is not None:
            writer.close()
    if not data:
        return {"status": 502, "error": f"tunnel to {path}: the peer closed without an answer"}
    return {"answer": bytes(data)}
