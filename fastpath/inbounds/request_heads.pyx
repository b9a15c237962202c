# cython: language_level=3
"""The request heads of the proxy inbounds, parsed in C: the SOCKS5 address (SOCKS5 requests
and UDP datagrams, Shadowsocks, Trojan), the VLESS request and the Trojan request.

Why compiled: these run once per connection (and the SOCKS5-form address once per UDP
datagram of SOCKS5 and Shadowsocks), on bytes any peer on the internet may send.  The byte
work (lengths, address types, the VLESS addons protobuf, the CRLFs) is done by ``nogil`` C
functions over a pointer that return an end offset or an error code (the ``C_*`` codes below)
and say where the host and port are; only the answer (the ``"host:port"`` text, the UUID, the
flow) becomes Python objects, once.

The Python surface keeps the pure-Python parsers' behaviour exactly (same results, same
``ValueError`` messages, same order of checks): ``tests/oracles/request_heads.py`` keeps those
parsers and ``tests/inbounds/test_request_heads.py`` compares the two on arbitrary bytes.
``socks_address`` serves as ``fastpath.proxy.socks5.decode_address``, ``vless_address`` and
``vless_request`` as ``fastpath.inbounds.vless_header``'s ``decode_address`` and
``parse_request``, ``trojan_request`` as ``fastpath.inbounds.trojan.parse_request``.  A domain
name is returned as the ``idna`` codec decodes it: ASCII without an ``xn--`` label is taken as
it is in C (the codec's own fast path), anything else goes through the codec.
"""
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.unicode cimport PyUnicode_DecodeASCII, PyUnicode_DecodeUTF8
from libc.stdint cimport uint64_t
from libc.string cimport strlen

cdef extern from "arpa/inet.h" nogil:
    const char *inet_ntop(int af, const void *src, char *dst, unsigned int size)

cdef extern from "sys/socket.h" nogil:
    int AF_INET
    int AF_INET6

cdef enum:
    C_NEED_MORE = -1
    C_ATYP = -2
    C_EMPTY = -3
    C_VERSION = -4
    C_COMMAND = -5
    C_ADDONS = -6
    C_VARINT = -7
    C_WIRE = -8
    C_CRLF_HASH = -9
    C_CRLF_ADDRESS = -10
    KIND_V4 = 1
    KIND_DOMAIN = 2
    KIND_V6 = 3
    SOCKS = 1           # which head ``parsed`` is asked for
    PORT_FIRST = 2
    VLESS = 3
    TROJAN = 4
    HASH_LEN = 56
    CMD_MUX = 3

cdef struct Address:
    int kind            # KIND_V4 / KIND_DOMAIN / KIND_V6
    int atyp            # the wire's address type byte (for an E_ATYP message)
    Py_ssize_t host_at  # where the host bytes start
    Py_ssize_t host_len
    int port


cdef struct VlessHead:
    Py_ssize_t flow_at  # the last field-1 string of the addons (-1: none)
    Py_ssize_t flow_len
    int command
    int version
    Address address


cdef inline Py_ssize_t socks_form(const unsigned char *p, Py_ssize_t n, Py_ssize_t off,
                                  Address *a) noexcept nogil:
    """ATYP (1 v4, 3 domain, 4 v6), address, port at ``off``: the end, or a code."""
    cdef Py_ssize_t end
    if n <= off:
        return C_NEED_MORE
    a.atyp = p[off]
    if a.atyp == 1:
        a.kind, a.host_at, a.host_len = KIND_V4, off + 1, 4
    elif a.atyp == 4:
        a.kind, a.host_at, a.host_len = KIND_V6, off + 1, 16
    elif a.atyp == 3:
        if n < off + 2:
            return C_NEED_MORE
        a.kind, a.host_at, a.host_len = KIND_DOMAIN, off + 2, p[off + 1]
    else:
        return C_ATYP
    end = a.host_at + a.host_len + 2
    if n < end:
        return C_NEED_MORE
    if a.host_len == 0:
        return C_EMPTY
    a.port = (p[end - 2] << 8) | p[end - 1]
    return end


cdef inline Py_ssize_t port_first_form(const unsigned char *p, Py_ssize_t n, Py_ssize_t off,
                                       Address *a) noexcept nogil:
    """VLESS / VMess: port, ATYP (1 v4, 2 domain, 3 v6), address at ``off``: the end or a code."""
    cdef Py_ssize_t at = off + 3
    if n < at:
        return C_NEED_MORE
    a.port = (p[off] << 8) | p[off + 1]
    a.atyp = p[off + 2]
    if a.atyp == 1:
        a.kind, a.host_at, a.host_len = KIND_V4, at, 4
    elif a.atyp == 3:
        a.kind, a.host_at, a.host_len = KIND_V6, at, 16
    elif a.atyp == 2:
        if n < at + 1:
            return C_NEED_MORE
        if p[at] == 0:
            return C_EMPTY
        a.kind, a.host_at, a.host_len = KIND_DOMAIN, at + 1, p[at]
    else:
        return C_ATYP
    if n < a.host_at + a.host_len:
        return C_NEED_MORE
    return a.host_at + a.host_len


cdef inline Py_ssize_t varint(const unsigned char *p, Py_ssize_t n, Py_ssize_t i,
                              uint64_t *value) noexcept nogil:
    """A protobuf varint at ``i`` (at most 5 bytes, as the Python parser took): the end, or a
    code."""
    cdef int shift = 0
    cdef unsigned char b
    value[0] = 0
    while True:
        if i >= n or shift > 28:
            return C_VARINT
        b = p[i]
        i += 1
        value[0] |= (<uint64_t>(b & 0x7F)) << shift
        if not b & 0x80:
            return i
        shift += 7


cdef Py_ssize_t vless_form(const unsigned char *p, Py_ssize_t n, VlessHead *h) noexcept nogil:
    """A VLESS request head: the end, or a code."""
    cdef Py_ssize_t i, stop, addons
    cdef uint64_t length
    cdef unsigned char key
    h.flow_at, h.flow_len, h.command = -1, 0, 0
    if n < 18:
        return C_NEED_MORE
    h.version = p[0]
    if p[0] != 0:
        return C_VERSION
    addons = p[17]
    if n < 18 + addons + 1:
        return C_NEED_MORE
    i, stop = 18, 18 + addons
    while i < stop:
        key = p[i]
        i += 1
        if key & 7 == 2:
            i = varint(p, stop, i, &length)
            if i < 0:
                return i
            if length > <uint64_t>(stop - i):
                return C_ADDONS
            if key >> 3 == 1:
                h.flow_at, h.flow_len = i, <Py_ssize_t>length
            i += <Py_ssize_t>length
        elif key & 7 == 0:
            i = varint(p, stop, i, &length)
            if i < 0:
                return i
        else:
            h.command = key & 7         # the wire type, for the message
            return C_WIRE
    h.command = p[stop]
    if h.command == CMD_MUX:
        return stop + 1
    if h.command != 1 and h.command != 2:
        return C_COMMAND
    return port_first_form(p, n, stop + 1, &h.address)


cdef Py_ssize_t trojan_form(const unsigned char *p, Py_ssize_t n, int *cmd,
                            Address *a) noexcept nogil:
    """A Trojan request head after the hash: the end, or a code (the checks in the order the
    Python parser made them)."""
    cdef Py_ssize_t end, size
    if n < HASH_LEN + 2:
        return C_NEED_MORE
    if p[HASH_LEN] != 13 or p[HASH_LEN + 1] != 10:
        return C_CRLF_HASH
    if n < HASH_LEN + 4:
        return C_NEED_MORE
    cmd[0] = p[HASH_LEN + 2]
    a.atyp = p[HASH_LEN + 3]
    if a.atyp == 1:
        size = 4
    elif a.atyp == 4:
        size = 16
    elif a.atyp == 3:
        if n < HASH_LEN + 5:
            return C_NEED_MORE
        if p[HASH_LEN + 4] == 0:
            return C_EMPTY
        size = 1 + p[HASH_LEN + 4]
    else:
        return C_ATYP
    end = HASH_LEN + 4 + size + 2
    if n < end + 2:
        return C_NEED_MORE
    socks_form(p, n, HASH_LEN + 3, a)   # whole by now: the lengths were checked above
    if p[end] != 13 or p[end + 1] != 10:
        return C_CRLF_ADDRESS           # (the caller decodes the host first, as Python did)
    return end + 2


# -- the answer as Python objects ---------------------------------------------------------------

cdef inline bint plain_ascii(const unsigned char *p, Py_ssize_t n) noexcept nogil:
    """ASCII with no ``xn--`` in it: what the idna codec returns unchanged."""
    cdef Py_ssize_t i
    for i in range(n):
        if p[i] >= 0x80:
            return False
        if p[i] == 120 and i + 3 < n and p[i + 1] == 110 and p[i + 2] == 45 and p[i + 3] == 45:
            return False
    return True


cdef str host_text(const unsigned char *p, Address *a):
    cdef char buf[64]
    if a.kind == KIND_V4 or a.kind == KIND_V6:
        inet_ntop(AF_INET if a.kind == KIND_V4 else AF_INET6, p + a.host_at, buf, sizeof(buf))
        return PyUnicode_DecodeASCII(buf, strlen(buf), NULL)
    if plain_ascii(p + a.host_at, a.host_len):
        return PyUnicode_DecodeASCII(<const char *>p + a.host_at, a.host_len, NULL)
    return PyBytes_FromStringAndSize(<const char *>p + a.host_at, a.host_len).decode("idna")


cdef str joined(str host, int port):
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


cdef socks_answer(const unsigned char *p, Py_ssize_t n, Py_ssize_t offset):
    cdef Address a
    cdef Py_ssize_t end
    if offset < 0:
        raise ValueError("truncated address")
    end = socks_form(p, n, offset, &a)
    if end == C_ATYP:
        raise ValueError(f"address type {a.atyp} not supported")
    if end < 0:
        raise ValueError("truncated address")
    return joined(host_text(p, &a), a.port), end - offset


cdef str vless_host(const unsigned char *p, Address *a):
    if a.kind != KIND_DOMAIN:
        return host_text(p, a)
    try:
        return host_text(p, a)
    except UnicodeError:
        raise ValueError("domain name is not valid IDNA") from None


cdef vless_failure(Py_ssize_t code, Address *a):
    if code == C_EMPTY:
        raise ValueError("empty domain name")
    raise ValueError(f"address type {a.atyp}")


cdef port_first_answer(const unsigned char *p, Py_ssize_t n, Py_ssize_t offset):
    cdef Address a
    cdef Py_ssize_t end
    if offset < 0:
        raise ValueError("negative offset")
    end = port_first_form(p, n, offset, &a)
    if end == C_NEED_MORE:
        return None
    if end < 0:
        vless_failure(end, &a)
    return joined(vless_host(p, &a), a.port), end


cdef vless_answer(const unsigned char *p, Py_ssize_t n):
    cdef VlessHead h
    cdef Py_ssize_t end = vless_form(p, n, &h)
    cdef str flow, address
    if end == C_NEED_MORE:
        return None
    if end == C_VERSION:
        raise ValueError(f"version {h.version}")
    if end == C_ADDONS:
        raise ValueError("addons truncated")
    if end == C_VARINT:
        raise ValueError("addons varint truncated")
    if end == C_WIRE:
        raise ValueError(f"addons wire type {h.command}")
    if end == C_COMMAND:
        raise ValueError(f"command {h.command}")
    if end < 0:
        vless_failure(end, &h.address)
    flow = PyUnicode_DecodeUTF8(<const char *>p + h.flow_at, h.flow_len, b"replace") \
        if h.flow_at >= 0 else ""
    uuid = PyBytes_FromStringAndSize(<const char *>p + 1, 16)
    if h.command == CMD_MUX:
        return uuid, flow, h.command, None, end
    address = joined(vless_host(p, &h.address), h.address.port)
    return uuid, flow, h.command, address, end


cdef trojan_answer(const unsigned char *p, Py_ssize_t n):
    cdef Address a
    cdef int cmd = 0
    cdef Py_ssize_t end = trojan_form(p, n, &cmd, &a)
    cdef str address
    if end == C_NEED_MORE:
        return None
    if end == C_CRLF_HASH:
        raise ValueError("no CRLF after the password hash")
    if end == C_EMPTY:
        raise ValueError("empty domain name")
    if end == C_ATYP:
        raise ValueError(f"address type {a.atyp}")
    address = joined(host_text(p, &a), a.port)     # (an IDNA error comes before the CRLF's)
    if end == C_CRLF_ADDRESS:
        raise ValueError("no CRLF after the address")
    return PyBytes_FromStringAndSize(<const char *>p, HASH_LEN), cmd, address, end


# -- the module's functions ---------------------------------------------------------------------

cdef parsed(object data, Py_ssize_t offset, int which):
    """The answer for the bytes of ``data`` (any contiguous buffer): taken as a plain buffer,
    which costs a fraction of a typed memoryview's set-up on a call this short."""
    cdef Py_buffer view
    cdef const unsigned char *p
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        p = <const unsigned char *>view.buf
        if which == SOCKS:
            return socks_answer(p, view.len, offset)
        if which == PORT_FIRST:
            return port_first_answer(p, view.len, offset)
        if which == VLESS:
            return vless_answer(p, view.len)
        return trojan_answer(p, view.len)
    finally:
        PyBuffer_Release(&view)


def socks_address(data, Py_ssize_t offset=0):
    """(``"host:port"``, bytes used) of a SOCKS5-form address (ATYP, address, port) at
    ``offset``; ValueError if it is truncated or malformed."""
    return parsed(data, offset, SOCKS)


def vless_address(data, Py_ssize_t offset):
    """(``"host:port"``, end) of a port-then-address field (VLESS, VMess) at ``offset``; None
    if more bytes are needed; ValueError if malformed."""
    return parsed(data, offset, PORT_FIRST)


def vless_request(head):
    """(uuid, flow, command, ``"host:port"`` or None for mux, bytes used) of a VLESS request
    head; None when more bytes are needed; ValueError when it is not one."""
    return parsed(head, 0, VLESS)


def trojan_request(head):
    """(user hash, command, ``"host:port"``, bytes used) of a Trojan request head; None when
    more bytes are needed; ValueError when it is not one."""
    return parsed(head, 0, TROJAN)
