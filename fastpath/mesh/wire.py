"""Relay addresses: what one node asks the next for, inside an ordinary Hysteria 2 TCP request.

A mesh node is a Hysteria 2 client of its peers, so every relay request is a proxy stream
whose *address* says what to do (the HY2 SCALE wire convention, see
``/work/shared/spec/hy2scale-api.md``):

- ``_relay_via_<path>_<target>:0``: continue along ``path`` (hop names joined with "/", as
  the receiving node names its own clients) and open ``target`` ("host:port") at the end.  The
  receiving node opens ``_relay_via_<rest>_<target>:0`` on the first hop of ``path``, and so on.
  The name ends at the first "_" (as the reference parses it), so hop names after the first
  must not contain "_" (``fastpath.mesh.paths`` refuses such paths).
- ``_relay_ping_:0``: answered with one byte ``0x01`` and closed (the path probe's end).
- ``_relay_list_peers_:0``: answered with the node's peer list as JSON and closed (nested
  discovery).

Two extensions of this project (reference nodes do not send them):

- The target may carry ``#fp-visited=<id>,<id>``: the node ids the request went through.  A
  node that finds its own id there refuses the stream ("path revisits node ..."), so a path
  that loops back is refused at the hop where it loops, whatever the nodes call each other.
  For that, the last hop also receives a via request, with an empty path
  (``_relay_via__<target>#fp-visited=...:0``): "open ``target`` here".
- ``_relay_node_info_<node id>/<name>:0`` (each percent-encoded): the node-info request of a
  node that names itself, so the node it asks lists it as an inbound peer
  (``fastpath.mesh.inbound``); answered as ``_relay_node_info_:0`` is.
- ``_relay_udpvia_<path>#fp-visited=...:0``: a UDP relay carried on a stream, hop by hop like
  ``_relay_via_``; the node where ``path`` is empty sends the datagrams from its own socket.
  The stream carries frames both ways: ``u16 address length, address, u16 payload length,
  payload`` (big-endian); ``FrameReader`` parses them.  A malformed frame ends that stream.
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from urllib.parse import quote, unquote

VIA_PREFIX = "_relay_via_"
UDP_VIA_PREFIX = "_relay_udpvia_"
PING = "_relay_ping_:0"
LIST_PEERS = "_relay_list_peers_:0"
NODE_INFO = "_relay_node_info_:0"      # ours: {"node_id", "name"} (fastpath.mesh.nested)
RELAY_PREFIX = "_relay_"
SUFFIX = ":0"
VISITED_TAG = "#fp-visited="
NODE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_VISITED = 16                 # more ids than any sane path has hops: refused as a loop
MAX_FRAME_ADDRESS = 1024
MAX_FRAME_PAYLOAD = 65535


class RelayError(ValueError):
    """A relay address or frame that cannot be parsed; the message says what is wrong."""


@dataclass(frozen=True)
class Via:
    """A parsed relay request: the hops still to go, the target and the ids seen so far."""
    path: tuple[str, ...]
    target: str                  # "host:port", or PING at a path's end; "" for UDP
    visited: tuple[str, ...]
    udp: bool = False
    asker: tuple[str, str] | None = None     # NODE_INFO: (node id, name) of the node asking


NODE_INFO_PREFIX = NODE_INFO[:-len(SUFFIX)]
MAX_NAME = 64


def encode_node_info(node_id: str, name: str) -> str:
    """The identified node-info request of the node ``node_id`` called ``name``."""
    return f"{NODE_INFO_PREFIX}{quote(node_id, safe='')}/{quote(name[:MAX_NAME], safe='')}{SUFFIX}"


def _parse_asker(text: str) -> tuple[str, str]:
    node_id, sep, name = text.partition("/")
    if not sep or "/" in name:
        raise RelayError("node-info request: expected <node id>/<name>")
    try:
        node_id, name = unquote(node_id, errors="strict"), unquote(name, errors="strict")
    except UnicodeDecodeError:
        raise RelayError("node-info request: names are not UTF-8") from None
    if not NODE_ID.match(node_id):
        raise RelayError("node-info request: bad node id")
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise RelayError(f"node-info request: a name is 1-{MAX_NAME} printable characters")
    return node_id, name


def _visited_text(visited) -> str:
    return VISITED_TAG + ",".join(visited) if visited else ""


def encode_via(path, target: str, visited=()) -> str:
    return f"{VIA_PREFIX}{'/'.join(path)}_{target}{_visited_text(visited)}{SUFFIX}"


def encode_udp_via(path, visited=()) -> str:
    return f"{UDP_VIA_PREFIX}{'/'.join(path)}{_visited_text(visited)}{SUFFIX}"


def _split_visited(text: str) -> tuple[str, tuple[str, ...]]:
    head, tag, ids = text.rpartition(VISITED_TAG)
    if not tag:
        return text, ()
    visited = tuple(i for i in ids.split(",") if i)
    if len(visited) > MAX_VISITED or not all(NODE_ID.match(i) for i in visited):
        raise RelayError("bad visited list in relay address")
    return head, visited


def _split_path(text: str) -> tuple[str, ...]:
    if not text:
        return ()
    parts = tuple(text.split("/"))
    if any(not p for p in parts):
        raise RelayError(f"empty hop in relay path {text!r}")
    if len(set(parts)) != len(parts):
        raise RelayError(f"relay path {text!r} names a node twice")
    return parts


def parse(address: str) -> Via | None:
    """The relay request in ``address``; None for a plain target, ``RelayError`` for a
    relay address that is malformed (or one this node does not serve)."""
    if not address.startswith(RELAY_PREFIX):
        return None
    if address in (PING, LIST_PEERS, NODE_INFO):
        return Via((), address, ())
    if not address.endswith(SUFFIX):
        raise RelayError(f"relay address {address[:80]!r} does not end with ':0'")
    body = address[:-len(SUFFIX)]
    if body.startswith(NODE_INFO_PREFIX):
        return Via((), NODE_INFO, (), asker=_parse_asker(body[len(NODE_INFO_PREFIX):]))
    if body.startswith(VIA_PREFIX):
        body, visited = _split_visited(body[len(VIA_PREFIX):])
        name, sep, target = body.partition("_")
        if not sep or not target:
            raise RelayError("relay via address without a target")
        return Via(_split_path(name), target, visited)
    if body.startswith(UDP_VIA_PREFIX):
        body, visited = _split_visited(body[len(UDP_VIA_PREFIX):])
        return Via(_split_path(body), "", visited, udp=True)
    raise RelayError(f"unknown relay request {address[:80]!r}")


CONTROL_TARGETS = (PING, LIST_PEERS, NODE_INFO)


def is_control(address: str) -> bool:
    """A mesh control request (a path probe, a peer list, node info), here or further along a
    path: node-to-node talk, not a user's traffic, so no hop counts it."""
    if not address.startswith(RELAY_PREFIX):
        return False
    try:
        via = parse(address)
    except RelayError:
        return False
    return via is not None and via.target in CONTROL_TARGETS


# -- UDP frames on a stream ----------------------------------------------------------------
_U16 = struct.Struct(">H")


def encode_frame(address: str, payload: bytes) -> bytes:
    a = address.encode()
    if len(a) > MAX_FRAME_ADDRESS or len(payload) > MAX_FRAME_PAYLOAD:
        raise RelayError("UDP frame too large")
    return b"".join((_U16.pack(len(a)), a, _U16.pack(len(payload)), payload))


class FrameReader:
    """Frames out of a byte stream that arrives in pieces.  ``feed`` returns the complete
    ``(address, payload)`` frames; ``RelayError`` for a malformed one (the caller ends the
    stream)."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[str, bytes]]:
        buf = self.buf
        buf += data
        out = []
        pos = 0
        n = len(buf)
        while n - pos >= 2:
            alen = _U16.unpack_from(buf, pos)[0]
            if alen == 0 or alen > MAX_FRAME_ADDRESS:
                raise RelayError(f"UDP frame address length {alen}")
            if n - pos < 2 + alen + 2:
                break
            plen = _U16.unpack_from(buf, pos + 2 + alen)[0]
            end = pos + 4 + alen + plen
            if end > n:
                break
            try:
                address = bytes(buf[pos + 2:pos + 2 + alen]).decode()
            except UnicodeDecodeError:
                raise RelayError("UDP frame address is not UTF-8") from None
            out.append((address, bytes(buf[pos + 4 + alen:end])))
            pos = end
        del buf[:pos]
        return out
