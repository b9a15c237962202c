"""``/scale/remote/{peer1}/{peer2}/.../{rest}``: a peer node's web UI, through the mesh.

The reference UI opens ``${base}/remote/${chain}/scale/`` in a new window from the Nodes graph.
As in the reference (``remoteProxy``): the chain is the leading segments that are peer names
(it stops at a segment with a dot or one of ``NOT_PEER``); a ``scale`` segment right after it
is the remote's base path marker; the request goes to the chain's last node as
``/scale/{rest}``; HTML answers get ``window.__BASE__`` rewritten to this proxy's path (and
``window.__PROXY__=true``; this node's dashboard: its ``<base href>``), so the UI's own API
calls come back through here; a ``Location`` under ``/scale/`` is rewritten the same way.
No local auth (the browser opens the page without this node's token): the remote node checks
its own, and treats tunnelled requests as from beyond loopback (``fastpath.mesh.api_relay``,
``auth.relayed``).  Cookies are not passed either way.  As in the reference, the remote's pages run in this node's
origin (their scripts could read what this node's UI keeps in the browser): open the UIs of
nodes you trust.

One worker carries the exchange (the supervisor's ``one_worker`` command, the worker's
``remote_http``): bounded by ``api_relay.MAX_BODY`` / ``MAX_ANSWER`` and its timeout; a hop
that is down is a 502 with the reason.  Streaming answers (server-sent events) are refused
with 501: one exchange travels back in one command frame.
"""
from __future__ import annotations

import http.client
import io

import falcon

from fastpath.control.errors import bad_request
from fastpath.control.hy2scale.auth import RELAY_MARK, relayed
from fastpath.control.node_model import NodeUnavailable
from fastpath.control.route_guard import PUBLIC
from fastpath.mesh import api_relay
from fastpath.mesh.paths import PathError, check_path

PREFIX = "/scale/remote"
NOT_PEER = frozenset(("api", "login", "nodes", "proxies", "tls", "settings", "remote", "scale", "users",
                      "rules", "assets"))
USAGE = "usage: /remote/{peer}/{path}"
# Cookies belong to this node's origin: none go to the remote node, and it sets none here.
DROP_ANSWER = frozenset(("content-length", "transfer-encoding", "connection", "keep-alive",
                         "proxy-connection", "trailer", "te", "upgrade", "set-cookie"))
DROP_REQUEST = frozenset(("accept-encoding", "cookie"))   # accept-encoding: HTML stays rewritable


def split_chain(raw: str) -> tuple[list[str], str]:
    """``raw`` (the path after ``/scale/remote/``, still percent-encoded): (chain, the path
    on the remote node)."""
    segments = raw.strip("/").split("/") if raw.strip("/") else []
    if not segments:
        raise bad_request(USAGE)
    n = 0
    for seg in segments:
        if not seg or "." in seg or seg in NOT_PEER:
            break
        n += 1
    if n == 0:
        raise bad_request("missing peer chain")
    chain, rest = segments[:n], segments[n:]
    try:
        check_path("/".join(chain))
    except PathError as exc:
        raise bad_request(f"bad peer chain: {exc}") from None
    if rest and rest[0] == "scale":
        rest = rest[1:]
    return chain, "/scale/" + "/".join(rest)


def rewrite_html(body: bytes, base: str) -> bytes:
    """A remote page made to call back through ``base``: the reference UI's
    ``window.__BASE__="/scale"`` (as the reference rewrites it), and this node's dashboard's
    ``<base href="/scale/">`` (so its files come from the remote node too).  Once each."""
    body = body.replace(b'window.__BASE__="/scale"', f'window.__BASE__="{base}";window.__PROXY__=true'.encode(), 1)
    return body.replace(b'<base href="/scale/"', f'<base href="{base}/"'.encode(), 1)


class _Answer:
    """The carried bytes as the socket ``http.client.HTTPResponse`` reads from."""

    def __init__(self, data: bytes):
        self.data = data

    def makefile(self, _mode):
        return io.BytesIO(self.data)


def parse_answer(data: bytes, method: str):
    """(status, reason, headers, body) of a whole HTTP/1.x answer (any framing)."""
    r = http.client.HTTPResponse(_Answer(data), method=method)
    try:
        r.begin()
        body = r.read()
    except (http.client.HTTPException, ValueError) as exc:
        raise falcon.HTTPBadGateway(title="bad gateway",
                                    description=f"bad response from remote: {exc or type(exc).__name__}")
    return r.status, r.reason, r.getheaders(), body


class RemoteProxy:
    auth_rule = PUBLIC

    def __init__(self, face):
        self.face = face
        for method in ("get", "post", "put", "patch", "delete"):
            setattr(self, f"on_{method}", self._proxy)

    def _request(self, req, remote_path: str) -> bytes:
        length = req.content_length or 0
        if length > api_relay.MAX_BODY:
            raise falcon.HTTPContentTooLarge(title="too large",
                                             description=f"request body over {api_relay.MAX_BODY} bytes")
        body = req.bounded_stream.read(api_relay.MAX_BODY + 1) if req.method not in ("GET", "HEAD") else b""
        if len(body) > api_relay.MAX_BODY:
            raise falcon.HTTPContentTooLarge(title="too large",
                                             description=f"request body over {api_relay.MAX_BODY} bytes")
        target = remote_path + (f"?{req.query_string}" if req.query_string else "")
        lines = [f"{req.method} {target} HTTP/1.1"]
        for name, value in req.headers.items():
            if name.lower() in api_relay.HOP_BY_HOP or name.lower() in DROP_REQUEST:
                continue
            lines.append(f"{name}: {value}")
        lines += ["Host: 127.0.0.1", f"Content-Length: {len(body)}", "Connection: close", "", ""]
        try:
            return "\r\n".join(lines).encode("latin-1") + body
        except UnicodeEncodeError:
            raise bad_request("header values must be latin-1") from None

    def _proxy(self, req, resp, rest: str = ""):
        if relayed(req):
            raise falcon.HTTPForbidden(title="forbidden", description="proxy chaining not allowed")
        raw = (req.env.get("RAW_URI") or req.relative_uri).partition("?")[0]
        if not raw.startswith(PREFIX):
            raw = req.path
        chain, remote_path = split_chain(raw[len(PREFIX):])
        if "text/event-stream" in (req.get_header("Accept") or ""):
            resp.status = falcon.HTTP_501
            resp.media = {"error": "streaming answers (server-sent events) are not relayed through "
                                   "/scale/remote", "capable": False}
            return
        request = self._request(req, remote_path)
        try:
            got = self.face.node.command("one_worker", {"cmd": "remote_http", "timeout": api_relay.TIMEOUT + 2,
                                                        "args": {"chain": chain, "request": request}},
                                         api_relay.TIMEOUT + 5)
        except NodeUnavailable as exc:
            raise falcon.HTTPServiceUnavailable(title="unavailable", description=f"no worker can carry it: {exc}")
        if not isinstance(got, dict) or "answer" not in got:
            status = got.get("status") if isinstance(got, dict) else None
            resp.status = status if status in (501, 502, 504) else 502
            resp.media = {"error": str(got.get("error") if isinstance(got, dict) else got)}
            return
        status, reason, headers, body = parse_answer(got["answer"], req.method)
        base = PREFIX + "/" + "/".join(chain)
        resp.status = f"{status} {''.join(c for c in reason if ' ' <= c <= '~') or 'Unknown'}"
        content_type = ""
        for name, value in headers:
            low = name.lower()
            if low in DROP_ANSWER or low == RELAY_MARK.lower():
                continue
            if low == "content-type":
                content_type = value
                continue
            if low == "location" and value.startswith("/scale/"):
                value = base + "/" + value[len("/scale/"):]
            resp.append_header(name, value)
        resp.content_type = content_type or "application/octet-stream"
        resp.data = rewrite_html(body, base) if "text/html" in content_type else body
