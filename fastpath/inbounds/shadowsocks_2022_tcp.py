"""The node's Shadowsocks 2022 inbound over TCP: several users on one port.

A user is found by its identity header when the inbound has a server key (``psk``; the
client's password is then ``psk:user key``), else, or when no identity header names one, by the
user key that opens the fixed request header (a client with the user key alone).  Each node
user's key is ``shadowsocks_2022.user_key`` of its auth secret.  The request's timestamp must
be within 30 s of the node's clock and its salt new within the window; anything else (a wrong
key, a replay, garbage) is read and dropped without an answer, as the AEAD inbound does.

After the headers the connection is the compiled splice with this stream's codecs, exactly as
the AEAD inbound: ``Opener2022`` opens the client's chunks, ``Sealer2022`` writes the response
header with the first bytes back and seals the rest.
"""
from __future__ import annotations

import asyncio
import logging
import os
import struct

from fastpath.inbounds.node_proxies import InboundCore
from fastpath.inbounds.shadowsocks import Handshake, own_secret
from fastpath.inbounds.shadowsocks_2022 import (FIXED_REQUEST, METHODS_2022, TAG, TYPE_CLIENT,
                                                ChunkError, Opener2022, SaltWindow, Sealer2022,
                                                check_time, decode_psk, key_hash, open_identity,
                                                session_aead, user_key)
from fastpath.proxy.socks5 import decode_address

log = logging.getLogger("fastpath.inbounds.shadowsocks")

EIH = 16
SEALED_FIXED = FIXED_REQUEST + TAG


class Users2022:
    """The users' keys for one key size, rebuilt when the user table changes: by key hash
    (identity headers) and as a list (trial of the fixed header)."""

    def __init__(self, core: InboundCore, size: int) -> None:
        self.password_of = own_secret
        self.core = core
        self.size = size
        self._of = None
        self.keys: list[tuple[str, bytes]] = []
        self.by_hash: dict[bytes, tuple[str, bytes]] = {}

    def refresh(self) -> None:
        table = self.core.users.by_id
        if table is not self._of:
            # (user id, key): the handshake's dial admits the user by its id.
            self.keys = [(user.id, user_key(password, self.size)) for user in table.values()
                         if (password := self.password_of(user.auth_secret, user))]
            self.by_hash = {key_hash(k): (s, k) for s, k in self.keys}
            self._of = table


class Shadowsocks2022Inbound:
    def __init__(self, core: InboundCore, method: str, psk: str | None) -> None:
        self.core = core
        self.method = method
        self.size = METHODS_2022[method]
        self.server_psk = decode_psk(psk, self.size) if psk else None
        self.users = Users2022(core, self.size)
        self.salts = SaltWindow()

    @property
    def password_of(self):
        return self.users.password_of

    @password_of.setter
    def password_of(self, value) -> None:
        self.users.password_of = value
        self.users._of = None

    def protocol(self) -> "Handshake2022":
        return Handshake2022(self)


class Handshake2022(Handshake):
    """The request headers; the rest (dial, splice, drain, timers) is the AEAD handshake's."""

    inbound: Shadowsocks2022Inbound

    def __init__(self, inbound) -> None:
        super().__init__(inbound)
        self.user_psk: bytes | None = None
        self.salt = b""
        self.variable = 0               # length of the sealed variable header still to read

    def _find_user(self) -> tuple[int, int] | None:
        """(offset of the variable header, its length) once a user's key opens the fixed
        header; None while more bytes are needed; raises ChunkError when none does."""
        inbound, size, buf = self.inbound, self.inbound.size, self.buf
        with_eih = inbound.server_psk is not None
        if len(buf) < size + (EIH if with_eih else 0) + SEALED_FIXED:
            return None
        salt = bytes(buf[:size])
        inbound.users.refresh()
        candidates: list[tuple[str, bytes, int]] = []
        if with_eih:
            found = inbound.users.by_hash.get(open_identity(inbound.server_psk, salt,
                                                            bytes(buf[size:size + EIH])))
            if found is not None:
                candidates.append((*found, size + EIH))
        candidates += [(s, k, size) for s, k in inbound.users.keys]
        for secret, psk, at in candidates:
            opener = Opener2022(session_aead(psk, salt))
            try:
                fixed = opener.open_exact(bytes(buf[at:at + SEALED_FIXED]))
            except ChunkError:
                continue
            kind, stamp, length = struct.unpack(">BQH", fixed)
            if kind != TYPE_CLIENT:
                raise ChunkError(f"request type {kind}")
            if not check_time(stamp):
                raise ChunkError("timestamp outside the 30 s window")
            if length == 0:
                raise ChunkError("empty variable header")
            self.opener, self.secret, self.user_psk, self.salt = opener, secret, psk, salt
            return at + SEALED_FIXED, length
        raise ChunkError("no user's key opens it")

    def _read_head(self) -> None:
        if self.opener is None:
            found = self._find_user()
            if found is None:
                return
            at, self.variable = found
            if self.inbound.salts.seen(self.salt):
                self._drain("replayed salt")
                return
            del self.buf[:at]
        need = self.variable + TAG
        if len(self.buf) < need:
            return
        head = self.opener.open_exact(bytes(self.buf[:need]))
        rest = bytes(self.buf[need:])
        self.buf.clear()
        try:
            address, used = decode_address(head)
        except ValueError as exc:
            raise ChunkError(f"address: {exc}") from None
        if len(head) < used + 2:
            raise ChunkError("no padding length")
        (padding,) = struct.unpack_from(">H", head, used)
        start = used + 2 + padding
        if start > len(head):
            raise ChunkError("padding longer than the header")
        first_data = head[start:] + self.opener.feed(rest)
        self.state = "dialing"
        asyncio.ensure_future(self._dial(address, first_data))

    def _down_codec(self):
        return Sealer2022(self.user_psk, self.salt, os.urandom(self.inbound.size))
