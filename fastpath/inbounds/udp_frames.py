"""How the stream protocols carry UDP datagrams inside their stream, as sing-box and xray put
them, read incrementally and written back.

Every reader takes what the stream gave (``feed(data)``) and returns the datagrams that are now
whole, as ``(session, address, payload)``: ``address`` None means the stream's one destination
(the request's), ``payload`` None means the client ended that session (mux).  A malformed frame
raises ValueError: the stream it came on cannot be read on, and is closed; nothing else is.  A
reader keeps at most one unfinished frame (under 64 KiB plus its header), so what a client can
make the node hold is bounded by the frame format, not by the client.

* **Trojan** (command ``3``): ``ATYP address port | length (2) | CRLF | payload`` per datagram,
  SOCKS5 address types; replies the same, with the source address.
* **VLESS** (command ``2``): ``length (2) | payload``, to the request's address; replies the same.
* **VMess** (command ``2``): one datagram per body chunk; the chunk codec
  (``vmess_chunks.VmessChunks.feed_packets`` / ``seal_packet``) keeps the boundaries, so the
  unit here is already one datagram (``Datagrams``).
* **packetaddr** (sing-box ``packet_encoding: packetaddr``, v2ray 5): a VLESS/VMess UDP request
  to ``sp.packet-addr.v2fly.arpa``; each datagram then starts with its own address: ``1`` + 4
  bytes or ``2`` + 16 bytes, then the port.  No domain names.
* **XUDP / Mux.Cool** (command ``3``; sing-box's default ``packet_encoding`` for VLESS, ``xudp``
  for VMess): frames ``meta length (2) | session (2) | status | option | [network | port |
  address type | address] | [length (2) | payload if option & 1]``; status ``1`` new (network and
  address follow; xray may append an 8-byte global id, ignored), ``2`` keep (XUDP may name the
  datagram's address), ``3`` end, ``4`` keep-alive; address types ``1`` IPv4, ``2`` domain, ``3``
  IPv6, port first.  Only UDP sessions are served: a TCP one is answered with an end frame
  carrying the error option (``MuxFrames.refused``), as is a session past ``MAX_SESSIONS``.
  Replies are keep frames naming the source.

The framing is per datagram in Python (addresses cached per stream); the target side of the
sessions is compiled (``udp_targets.pyx``, under ``udp_relay.py``).
"""
from __future__ import annotations

import socket
import struct

from fastpath.mesh.paths import join_address, split_address
from fastpath.inbounds.vless_header import decode_address as decode_port_address
from fastpath.inbounds.vless_header import encode_port_address
from fastpath.proxy.socks5 import ATYP_DOMAIN, ATYP_V4, ATYP_V6, decode_address, encode_address

PACKETADDR_HOST = "sp.packet-addr.v2fly.arpa"
MAX_META = 512                      # xray's limit on a mux frame's metadata
STATUS_NEW, STATUS_KEEP, STATUS_END, STATUS_KEEPALIVE = 1, 2, 3, 4
OPTION_DATA, OPTION_ERROR = 1, 2
NETWORK_TCP, NETWORK_UDP = 1, 2
MAX_SESSIONS = 64                   # mux UDP sessions open at once on one stream
CACHED = 64                         # addresses remembered per stream, each way


def _remember(cache: dict, key, value):
    """``value`` kept under ``key`` in a per-stream cache of at most ``CACHED`` entries: a
    stream talks to a handful of addresses, and parsing or printing one costs more than the
    rest of a datagram's framing."""
    if len(cache) >= CACHED:
        cache.clear()
    cache[key] = value
    return value


def is_packetaddr(address: str | None) -> bool:
    """Whether a UDP request's address is the packetaddr magic name (any port)."""
    if not address:
        return False
    try:
        return split_address(address)[0] == PACKETADDR_HOST
    except ValueError:
        return False


# -- Trojan ------------------------------------------------------------------------------------
def _socks_address_size(buf, pos: int) -> int | None:
    """Bytes of the SOCKS5 address (with port) at ``pos``; None when more are needed."""
    n = len(buf) - pos
    if n < 1:
        return None
    atyp = buf[pos]
    if atyp == ATYP_V4:
        return 7
    if atyp == ATYP_V6:
        return 19
    if atyp == ATYP_DOMAIN:
        if n < 2:
            return None
        if not buf[pos + 1]:
            raise ValueError("empty domain name")
        return 4 + buf[pos + 1]
    raise ValueError(f"address type {atyp}")


class TrojanPackets:
    """Trojan UDP frames of one stream."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.decoded: dict[bytes, str] = {}
        self.encoded: dict[str, bytes] = {}

    def feed(self, data: bytes) -> list:
        buf = self.buf
        buf += data
        out, pos = [], 0
        decoded = self.decoded
        while True:
            size = _socks_address_size(buf, pos)
            if size is None or len(buf) < pos + size + 4:
                break
            (length,) = struct.unpack_from(">H", buf, pos + size)
            if buf[pos + size + 2:pos + size + 4] != b"\r\n":
                raise ValueError("no CRLF after a UDP frame's length")
            end = pos + size + 4 + length
            if len(buf) < end:
                break
            raw = bytes(buf[pos:pos + size])
            address = decoded.get(raw)
            if address is None:
                address = _remember(decoded, raw, decode_address(raw)[0])
            out.append((0, address, bytes(buf[pos + size + 4:end])))
            pos = end
        del buf[:pos]
        return out

    def wrap(self, _session: int, address: str, payload: bytes) -> bytes:
        field = self.encoded.get(address)
        if field is None:
            field = _remember(self.encoded, address, encode_address(address))
        return field + struct.pack(">H", len(payload)) + b"\r\n" + payload


# -- VLESS ------------------------------------------------------------------------------------
def decode_packetaddr(data: bytes) -> tuple[str, bytes]:
    """(address, payload) of a packetaddr datagram; ValueError if malformed."""
    if len(data) >= 7 and data[0] == 1:
        host, at = socket.inet_ntop(socket.AF_INET, data[1:5]), 5
    elif len(data) >= 19 and data[0] == 2:
        host, at = socket.inet_ntop(socket.AF_INET6, data[1:17]), 17
    else:
        raise ValueError("not a packetaddr datagram")
    (port,) = struct.unpack_from(">H", data, at)
    return join_address(host, port), data[at + 2:]


def encode_packetaddr(address: str, payload: bytes) -> bytes:
    host, port = split_address(address)
    try:
        return b"\x01" + socket.inet_pton(socket.AF_INET, host) + struct.pack(">H", port) + payload
    except OSError:
        return b"\x02" + socket.inet_pton(socket.AF_INET6, host) + struct.pack(">H", port) + payload


class _Addressing:
    """The datagram's own address (packetaddr) or the request's (None)."""

    def __init__(self, packetaddr: bool = False) -> None:
        self.packetaddr = packetaddr

    def unit(self, payload: bytes):
        if self.packetaddr:
            address, payload = decode_packetaddr(payload)
            return 0, address, payload
        return 0, None, payload

    def body(self, address: str, payload: bytes) -> bytes:
        return encode_packetaddr(address, payload) if self.packetaddr else payload


class LengthPackets(_Addressing):
    """VLESS UDP: length-prefixed datagrams."""

    def __init__(self, packetaddr: bool = False) -> None:
        super().__init__(packetaddr)
        self.buf = bytearray()

    def feed(self, data: bytes) -> list:
        buf = self.buf
        buf += data
        out, pos = [], 0
        while len(buf) - pos >= 2:
            (length,) = struct.unpack_from(">H", buf, pos)
            if len(buf) - pos - 2 < length:
                break
            out.append(self.unit(bytes(buf[pos + 2:pos + 2 + length])))
            pos += 2 + length
        del buf[:pos]
        return out

    def wrap(self, _session: int, address: str, payload: bytes) -> bytes:
        body = self.body(address, payload)
        return struct.pack(">H", len(body)) + body


class Datagrams(_Addressing):
    """VMess UDP: the unit is one datagram already (one chunk)."""

    def feed(self, data: bytes) -> list:
        return [self.unit(data)]

    def wrap(self, _session: int, address: str, payload: bytes) -> bytes:
        return self.body(address, payload)


# -- XUDP / Mux.Cool ----------------------------------------------------------------------------
class MuxFrames:
    """Mux.Cool frames carrying UDP sessions (XUDP).  ``refused`` collects the sessions that
    asked for TCP, to be answered with an error end frame."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.refused: list[int] = []
        self.target: dict[int, str] = {}        # session -> its address from the new frame
        self.encoded: dict[str, bytes] = {}

    def feed(self, data: bytes) -> list:
        buf = self.buf
        buf += data
        out, pos = [], 0
        while len(buf) - pos >= 2:
            (meta,) = struct.unpack_from(">H", buf, pos)
            if not 4 <= meta <= MAX_META:
                raise ValueError(f"mux metadata of {meta} bytes")
            end = pos + 2 + meta
            if len(buf) < end:
                break
            option = buf[pos + 5]
            payload = None
            if option & OPTION_DATA:
                if len(buf) < end + 2:
                    break
                (length,) = struct.unpack_from(">H", buf, end)
                if len(buf) < end + 2 + length:
                    break
                payload = bytes(buf[end + 2:end + 2 + length])
                frame_end = end + 2 + length
            else:
                frame_end = end
            event = self._frame(bytes(buf[pos + 2:end]), option, payload)
            if event is not None:
                out.append(event)
            pos = frame_end
        del buf[:pos]
        return out

    def _frame(self, meta: bytes, option: int, payload: bytes | None):
        (session,) = struct.unpack_from(">H", meta, 0)
        status = meta[2]
        if status == STATUS_NEW:
            if len(meta) < 5:
                raise ValueError("a mux new frame without its network")
            network = meta[4]
            if network not in (NETWORK_TCP, NETWORK_UDP):
                raise ValueError(f"mux network {network}")
            if network == NETWORK_TCP or (session not in self.target
                                          and len(self.target) >= MAX_SESSIONS):
                self.refused.append(session)
                return None
            found = decode_port_address(meta, 5)
            if found is None:
                raise ValueError("a mux new frame's address is truncated")
            self.target[session] = found[0]
            if payload is None:
                return None
            return session, found[0], payload
        if status == STATUS_KEEP:
            if payload is None:
                return None
            address = None
            if len(meta) > 4:
                found = decode_port_address(meta, 5)
                if found is None:
                    raise ValueError("a mux keep frame's address is truncated")
                address = found[0]
            if session not in self.target:
                return None                  # a session never opened (or refused): dropped
            return session, address or self.target[session], payload
        if status == STATUS_END:
            if self.target.pop(session, None) is None:
                return None
            return session, None, None
        if status == STATUS_KEEPALIVE:
            return None
        raise ValueError(f"mux frame status {status}")

    def wrap(self, session: int, address: str, payload: bytes) -> bytes:
        field = self.encoded.get(address)
        if field is None:
            field = _remember(self.encoded, address, encode_port_address(*split_address(address)))
        return (struct.pack(">HHBBB", 5 + len(field), session, STATUS_KEEP, OPTION_DATA, NETWORK_UDP)
                + field + struct.pack(">H", len(payload)) + payload)

    @staticmethod
    def end(session: int, error: bool = False) -> bytes:
        return struct.pack(">HHBB", 4, session, STATUS_END, OPTION_ERROR if error else 0)


def mux_new(session: int, address: str, payload: bytes, network: int = NETWORK_UDP) -> bytes:
    """A client's new frame (tests and the fuzz harness)."""
    host, port = split_address(address)
    field = encode_port_address(host, port)
    return (struct.pack(">HHBBB", 5 + len(field), session, STATUS_NEW, OPTION_DATA, network)
            + field + struct.pack(">H", len(payload)) + payload)
