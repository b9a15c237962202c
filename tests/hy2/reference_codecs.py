"""Pure-Python reference of the Hysteria 2 wire codecs, written straight from the spec.

Used only by tests (the compiled codecs must agree with it on random input) and benchmarks (the
speedup is measured against it).  Clarity over speed: no tricks here.
"""
import hashlib
import os
import random
import struct

TCP_REQUEST_ID = 0x401
MAX_ADDRESS_LEN = 2048
MAX_MESSAGE_LEN = 2048
MAX_PADDING_LEN = 4096
MAX_UDP_PACKET = 65535
VARINT_MAX = (1 << 62) - 1


class Incomplete(ValueError):
    pass


# --- varint ---------------------------------------------------------------------------------

def varint_encode(value):
    if value < 0 or value > VARINT_MAX:
        raise ValueError(value)
    if value < 1 << 6:
        return bytes([value])
    if value < 1 << 14:
        return (value | 0x4000).to_bytes(2, "big")
    if value < 1 << 30:
        return (value | 0x80000000).to_bytes(4, "big")
    return (value | 0xC000000000000000).to_bytes(8, "big")


def varint_decode(data, offset=0):
    """(value, consumed); ValueError if truncated."""
    if offset >= len(data):
        raise ValueError("truncated varint")
    size = 1 << (data[offset] >> 6)
    if offset + size > len(data):
        raise ValueError("truncated varint")
    value = data[offset] & 0x3F
    for byte in data[offset + 1:offset + size]:
        value = (value << 8) | byte
    return value, size


# --- TCP request / response -----------------------------------------------------------------

def encode_tcp_request(address, padding=b""):
    addr = address.encode("utf-8")
    if not 1 <= len(addr) <= MAX_ADDRESS_LEN or len(padding) > MAX_PADDING_LEN:
        raise ValueError("bad request")
    return (varint_encode(TCP_REQUEST_ID) + varint_encode(len(addr)) + addr
            + varint_encode(len(padding)) + padding)


def encode_tcp_response(ok, message, padding=b""):
    msg = message.encode("utf-8")
    if len(msg) > MAX_MESSAGE_LEN or len(padding) > MAX_PADDING_LEN:
        raise ValueError("bad response")
    return (bytes([0 if ok else 1]) + varint_encode(len(msg)) + msg
            + varint_encode(len(padding)) + padding)


def _read_varint(data, pos):
    try:
        return varint_decode(data, pos)
    except ValueError:
        raise Incomplete("truncated") from None


def parse_tcp_request(data):
    """(address, consumed); ValueError if malformed, Incomplete if cut short."""
    data = bytes(data)
    kind, n = _read_varint(data, 0)
    pos = n
    if kind != TCP_REQUEST_ID:
        raise ValueError("not a TCP request")
    alen, n = _read_varint(data, pos)
    pos += n
    if alen == 0 or alen > MAX_ADDRESS_LEN:
        raise ValueError("bad address length")
    if len(data) < pos + alen:
        raise Incomplete("truncated address")
    addr = data[pos:pos + alen]
    pos += alen
    plen, n = _read_varint(data, pos)
    pos += n
    if plen > MAX_PADDING_LEN:
        raise ValueError("padding too long")
    try:
        address = addr.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("address is not UTF-8") from None
    if len(data) < pos + plen:
        raise Incomplete("truncated padding")
    return address, pos + plen


def parse_tcp_response(data):
    """(ok, message, consumed); ValueError if malformed, Incomplete if cut short."""
    data = bytes(data)
    if not data:
        raise Incomplete("empty")
    status = data[0]
    pos = 1
    mlen, n = _read_varint(data, pos)
    pos += n
    if mlen > MAX_MESSAGE_LEN:
        raise ValueError("message too long")
    if len(data) < pos + mlen:
        raise Incomplete("truncated message")
    message = data[pos:pos + mlen].decode("utf-8", "replace")
    pos += mlen
    plen, n = _read_varint(data, pos)
    pos += n
    if plen > MAX_PADDING_LEN:
        raise ValueError("padding too long")
    if len(data) < pos + plen:
        raise Incomplete("truncated padding")
    return status == 0, message, pos + plen


class _IncrementalParser:
    """Buffers until the one-shot parser succeeds or fails.  The buffer never needs more than a
    whole frame: the one-shot parser rejects bad lengths before asking for more."""

    _parse = None

    def __init__(self):
        self.buffer = b""
        self.done = False
        self.error = None
        self.leftover = b""
        self.result = None

    def feed(self, data):
        if self.done:
            self.leftover += bytes(data)
            return
        if self.error is not None:
            return
        self.buffer += bytes(data)
        try:
            *result, consumed = type(self)._parse(self.buffer)
        except Incomplete:
            return
        except ValueError as exc:
            self.error = str(exc) or "malformed"
            self.buffer = b""
            return
        self.result = result
        self.done = True
        self.leftover = self.buffer[consumed:]
        self.buffer = b""


class TcpRequestParser(_IncrementalParser):
    _parse = staticmethod(parse_tcp_request)

    @property
    def address(self):
        return self.result[0] if self.done else None


class TcpResponseParser(_IncrementalParser):
    _parse = staticmethod(parse_tcp_response)

    @property
    def ok(self):
        return self.result[0] if self.done else None

    @property
    def message(self):
        return self.result[1] if self.done else None


# --- UDP messages -----------------------------------------------------------------------------

class UdpMessage:
    def __init__(self, session_id, packet_id, frag_id, frag_count, address, payload):
        self.session_id = session_id
        self.packet_id = packet_id
        self.frag_id = frag_id
        self.frag_count = frag_count
        self.address = address
        self.payload = payload

    def fields(self):
        return (self.session_id, self.packet_id, self.frag_id, self.frag_count, self.address,
                self.payload)


_UDP_HEADER = struct.Struct(">IHBB")


def encode_udp_message(session_id, packet_id, frag_id, frag_count, address, payload):
    addr = address.encode("utf-8")
    if not 1 <= len(addr) <= MAX_ADDRESS_LEN or not payload:
        raise ValueError("bad UDP message")
    return (_UDP_HEADER.pack(session_id, packet_id, frag_id, frag_count)
            + varint_encode(len(addr)) + addr + bytes(payload))


def parse_udp_message(data):
    data = bytes(data)
    if len(data) < 8:
        return None
    session_id, packet_id, frag_id, frag_count = _UDP_HEADER.unpack_from(data)
    try:
        alen, n = varint_decode(data, 8)
    except ValueError:
        return None
    pos = 8 + n
    if alen == 0 or alen > MAX_ADDRESS_LEN or len(data) < pos + alen + 1:
        return None
    try:
        address = data[pos:pos + alen].decode("utf-8")
    except UnicodeDecodeError:
        return None
    return UdpMessage(session_id, packet_id, frag_id, frag_count, address, data[pos + alen:])


def fragment_udp_message(session_id, address, payload, max_datagram=1200, packet_id=None):
    header_len = len(encode_udp_message(session_id, 0, 0, 1, address, b"x")) - 1
    if header_len + len(payload) <= max_datagram:
        return [encode_udp_message(session_id, 0, 0, 1, address, payload)]
    chunk = max_datagram - header_len
    if chunk < 1:
        raise ValueError("header does not fit")
    chunks = [payload[i:i + chunk] for i in range(0, len(payload), chunk)]
    if len(chunks) > 255:
        raise ValueError("too many fragments")
    if packet_id is None:
        packet_id = random.randint(1, 0xFFFF)
    return [encode_udp_message(session_id, packet_id, i, len(chunks), address, c)
            for i, c in enumerate(chunks)]


class Defragmenter:
    def __init__(self, max_packet_size=MAX_UDP_PACKET):
        self.max_packet_size = max_packet_size
        self.packet_id = None
        self.frag_count = 0
        self.frags = None
        self.finished = False

    def feed(self, msg):
        if msg.frag_id >= msg.frag_count:
            return None
        if msg.frag_count == 1:
            return msg.payload
        if msg.packet_id != self.packet_id or msg.frag_count != self.frag_count:
            self.packet_id = msg.packet_id
            self.frag_count = msg.frag_count
            self.frags = {}
            self.finished = False
        elif self.finished:
            return None
        if msg.frag_id in self.frags:
            return None
        if sum(map(len, self.frags.values())) + len(msg.payload) > self.max_packet_size:
            self.frags = None
            self.finished = True
            return None
        self.frags[msg.frag_id] = msg.payload
        if len(self.frags) < self.frag_count:
            return None
        whole = b"".join(self.frags[i] for i in range(self.frag_count))
        self.frags = None
        self.finished = True
        return whole


# --- Salamander -------------------------------------------------------------------------------

class Salamander:
    def __init__(self, password):
        if len(password) < 4:
            raise ValueError("password too short")
        self.password = bytes(password)

    def obfuscate_with_salt(self, payload, salt):
        key = hashlib.blake2b(self.password + salt, digest_size=32).digest()
        return bytes(salt) + bytes(b ^ key[i % 32] for i, b in enumerate(payload))

    def obfuscate(self, payload):
        return self.obfuscate_with_salt(payload, os.urandom(8))

    def deobfuscate(self, packet):
        if len(packet) <= 8:
            return None
        salt = packet[:8]
        key = hashlib.blake2b(self.password + salt, digest_size=32).digest()
        return bytes(b ^ key[i % 32] for i, b in enumerate(packet[8:]))


class WholeIntSalamander(Salamander):
    """Salamander as plain Python would reasonably write it: the key repeated to the payload's
    length and the XOR done on two big integers (``int.from_bytes``), one C-level pass each
    instead of a generator step per byte.  The fair pure-Python baseline of the compiled
    codec's benchmark (bench/test_bench_hy2_codecs.py); same output as ``Salamander``."""

    @staticmethod
    def _xor(data, key):
        n = len(data)
        if not n:
            return b""
        stream = (key * (n // 32 + 1))[:n]
        return (int.from_bytes(data, "little") ^ int.from_bytes(stream, "little")).to_bytes(n, "little")

    def obfuscate_with_salt(self, payload, salt):
        key = hashlib.blake2b(self.password + salt, digest_size=32).digest()
        return bytes(salt) + self._xor(payload, key)

    def deobfuscate(self, packet):
        if len(packet) <= 8:
            return None
        salt = packet[:8]
        key = hashlib.blake2b(self.password + salt, digest_size=32).digest()
        return self._xor(packet[8:], key)
