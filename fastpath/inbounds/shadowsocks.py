"""The node's Shadowsocks AEAD inbound (TCP): several users on one port, replay-protected.

The client's first bytes are a salt and a sealed chunk.  The user is the one whose key opens
that chunk (each node user's password is its auth secret; keys are derived once per user and
kept until the user table changes), as multi-user servers such as xray do.  The first payload
names the target (SOCKS5 address form) and may carry the first data.  Once dialed, the
connection is the compiled splice with this stream's opener and sealer as its codecs.

A connection no key opens, or whose salt was already seen (a replayed recording), gets no
answer at all: its bytes are read and dropped until it closes or ``DRAIN_SECONDS`` pass, so a
prober learns nothing from how the node reacts.
"""
from __future__ import annotations

import asyncio
import logging
import os

from fastpath.inbounds.credentials import admit, panel_credential, user_password
from fastpath.inbounds.node_proxies import InboundCore, Refused
from fastpath.inbounds.shadowsocks_aead import (METHODS, TAG, ChunkError, Opener, Sealer,
                                                master_key, session_cipher)
from fastpath.proxy.socks5 import ATYP_DOMAIN, ATYP_V4, ATYP_V6, decode_address

log = logging.getLogger("fastpath.inbounds.shadowsocks")

HANDSHAKE_SECONDS = 30.0
DRAIN_SECONDS = 30.0
MAX_HEADER = 1024 + 2 + TAG + 0x3FFF + TAG    # salt + a first chunk of the longest length
SALT_MEMORY = 1 << 16                       # salts remembered per generation


PER_USER = "per-user"          # method of an inbound whose users each bring their own


ALIASES = {"chacha20-poly1305": "chacha20-ietf-poly1305"}     # xray's other spelling


def user_method(user) -> str | None:
    entry = panel_credential(user, "shadowsocks")
    method = str(entry.get("method") or "") if entry else ""
    return ALIASES.get(method, method) or None


class SaltMemory:
    """Salts seen recently, in two generations (the older is dropped when the newer fills), so
    memory stays bounded while a replay within the last ~65k connections is caught."""

    def __init__(self, size: int = SALT_MEMORY) -> None:
        self.size = size
        self.current: set[bytes] = set()
        self.previous: set[bytes] = set()

    def seen(self, salt: bytes) -> bool:
        """True if ``salt`` was seen before; remembers it either way."""
        if salt in self.current or salt in self.previous:
            return True
        if len(self.current) >= self.size:
            self.previous, self.current = self.current, set()
        self.current.add(salt)
        return False


def own_secret(secret: str | None, user) -> str | None:
    """A user's Shadowsocks password (the default): the panel's Shadowsocks credential when the
    user has one (credentials.py), else its auth secret."""
    return user_password(user, "shadowsocks") if user is not None else secret


class ShadowsocksInbound:
    """One Shadowsocks listener: its method, the users' keys, the salts seen."""

    password_of = staticmethod(own_secret)      # (auth secret, user) -> password

    def __init__(self, core: InboundCore, method: str) -> None:
        self.core = core
        # PER_USER: each user's own method (a panel's xray inbound without settings.method,
        # whose users carry shadowsocks.method).
        self.method = None if method == PER_USER else method
        self.salts = SaltMemory()
        self._keys_of = None
        self._keys: list[tuple[str, str, bytes]] = []
        self.head_size = 2 + TAG + (METHODS[method][0] if self.method else
                                    max(size for size, _aead in METHODS.values()))

    def keys(self) -> list[tuple[str, str, bytes]]:
        """(user id, method, master key) of every user with a Shadowsocks password
        (credentials.py: the panel's, or the auth secret), rebuilt when the table changes."""
        table = self.core.users.by_id
        if table is not self._keys_of:
            keys = []
            for user in table.values():
                password = self.password_of(user.auth_secret, user)
                method = self.method or user_method(user)
                if password and method in METHODS:
                    keys.append((user.id, method, master_key(password, METHODS[method][0])))
            self._keys, self._keys_of = keys, table
        return self._keys

    def protocol(self) -> "Handshake":
        return Handshake(self)


class Handshake(asyncio.Protocol):
    """The client socket's protocol until its target is dialed; then the splice's."""

    def __init__(self, inbound: ShadowsocksInbound) -> None:
        self.inbound = inbound
        self.transport = None
        self.buf = bytearray()
        self.opener: Opener | None = None
        self.secret = None
        self.key = b""                      # the master key that opened the first chunk
        self.plain = bytearray()
        self.later: list[bytes] = []        # raw bytes read while the target is dialed
        self.state = "head"                 # head -> dialing -> (splice) | drain
        self.timer = None

    # -- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        self.timer = asyncio.get_running_loop().call_later(HANDSHAKE_SECONDS, self._timeout)

    def data_received(self, data: bytes) -> None:
        if self.state == "drain":
            return
        if self.state == "dialing":
            self.later.append(data)
            return
        self.buf += data
        try:
            self._read_head()
        except ChunkError as exc:
            self._drain(f"bad first chunk: {exc}")

    def connection_lost(self, exc) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.state = "drain"

    # -- the head: salt, user, target ---------------------------------------------------------
    def _read_head(self) -> None:
        inbound = self.inbound
        if self.opener is None:
            # Every client sends more than the longest salt and a length chunk at once.
            if len(self.buf) < inbound.head_size:
                return
            for user_id, method, key in inbound.keys():
                size = METHODS[method][0]
                salt = bytes(self.buf[:size])
                opener = Opener(session_cipher(method, key, salt))
                try:
                    opener.feed(bytes(self.buf[size:size + 2 + TAG]))
                except ChunkError:
                    continue
                self.opener, self.secret, self.method, self.key = opener, user_id, method, key
                break
            else:
                self._drain("no user's key opens it")
                return
            if inbound.salts.seen(salt):
                self._drain("replayed salt")
                return
            rest = bytes(self.buf[size + 2 + TAG:])
            self.buf.clear()
            self.plain += self.opener.feed(rest)
        else:
            self.plain += self.opener.feed(bytes(self.buf))
            self.buf.clear()
        if not self.plain:
            if len(self.opener.buf) > MAX_HEADER:
                self._drain("first chunk too long")
            return
        if self.plain[0] not in (ATYP_V4, ATYP_V6, ATYP_DOMAIN):
            self._drain(f"address type {self.plain[0]}")
            return
        try:
            address, used = decode_address(bytes(self.plain))
        except ValueError:
            if len(self.plain) > 300:
                self._drain("malformed address")
            return                             # the address goes on in the next chunk
        first_data = bytes(self.plain[used:])
        self.plain.clear()
        self.state = "dialing"
        asyncio.ensure_future(self._dial(address, first_data))

    async def _dial(self, address: str, first_data: bytes) -> None:
        core = self.inbound.core
        user_id = self.secret                     # the user whose key opened the head
        refused = admit(core.users, user_id, core.settings.tag)
        if refused:
            log.info("inbound %s: user %s refused: %s", core.settings.tag, user_id, refused)
            self._close()
            return
        try:
            splice = await core.dial(address, user_id, self.transport.get_extra_info("peername"))
        except (Refused, OSError, ValueError, asyncio.TimeoutError) as exc:
            log.debug("inbound %s: %s for %s: %s", core.settings.tag, address, user_id, exc)
            self._close()
            return
        if self.transport.is_closing() or splice.finished:
            splice.abort("client gone")
            return
        if self.timer is not None:
            self.timer.cancel()
        splice.up_codec = self.opener
        splice.down_codec = self._down_codec()
        if first_data:
            splice.send_to_target(first_data)
        splice.attach_client(self.transport)
        for raw in self.later:
            splice.client.data_received(raw)
        self.later.clear()

    def _down_codec(self):
        """The sealer of what goes back to the client (a fresh salt)."""
        salt = os.urandom(METHODS[self.method][0])
        return Sealer(session_cipher(self.method, self.key, salt), salt)

    # -- endings ----------------------------------------------------------------------------
    def _drain(self, why: str) -> None:
        """No answer: read and drop until the client goes or the drain time ends."""
        log.debug("inbound %s: draining a connection: %s", self.inbound.core.settings.tag, why)
        self.state = "drain"
        self.buf.clear()
        if self.timer is not None:
            self.timer.cancel()
        self.timer = asyncio.get_running_loop().call_later(DRAIN_SECONDS, self._close)

    def _timeout(self) -> None:
        if self.state == "head":
            self._drain("no complete head in time")
        else:
            self._close()

    def _close(self) -> None:
        self.state = "drain"
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
