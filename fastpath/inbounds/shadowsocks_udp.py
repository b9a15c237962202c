"""Shadowsocks over UDP, on the port of the TCP inbound: AEAD (SIP004) and 2022 (SIP022).

AEAD: a packet is ``salt | seal(address | payload)`` with the session subkey of that salt and
a zero nonce; the user is the one whose key opens it (the key that opened the last packet
from the same address is tried first).  Replies go back the same way with a fresh salt.

2022 (``shadowsocks_2022``): a packet carries a client session id and a packet id in its
AES-ECB separate header, then (with the inbound's server key) an identity header naming the
user, then the body sealed with the session's subkey.  A body whose timestamp is more than
30 s off, a packet id seen before in its session (``PacketWindow``) or a session id already
used (``SaltWindow``) is dropped.  Replies carry the node's own session id and a packet
counter, and the client's session id in the body.

Each client session is one ``UdpRelay`` (counted on the user, capped, through the user's
exit).  Nothing is ever sent back to a packet that does not open: a prober sees silence.
"""
from __future__ import annotations

import asyncio
import logging
import os
import struct
import time

from cryptography.exceptions import InvalidTag

from fastpath.inbounds.shadowsocks_2022 import (TYPE_CLIENT, TYPE_SERVER, PacketWindow,
                                                SaltWindow, check_time, key_hash,
                                                open_separate_header, open_udp_body,
                                                PacketError, seal_separate_header,
                                                udp_body_aead, user_of_udp_eih)
from fastpath.inbounds.credentials import admit
from fastpath.inbounds.shadowsocks_aead import METHODS, TAG, session_cipher
from fastpath.inbounds.udp_relay import UdpRelay
from fastpath.proxy.socks5 import decode_address, encode_address

log = logging.getLogger("fastpath.inbounds.shadowsocks")

MAX_SESSIONS = 4096            # per inbound and worker; past it the longest idle one goes
SWEEP_SECONDS = 10.0
ZERO_NONCE = bytes(12)


def _address_and_payload(plain: bytes) -> tuple[str, bytes] | None:
    try:
        address, used = decode_address(plain)
    except (ValueError, UnicodeError):
        return None
    return address, plain[used:]


class _UdpInbound(asyncio.DatagramProtocol):
    """What both UDP servers share: the socket, the sessions, their sweep and cap."""

    def __init__(self, core) -> None:
        self.core = core
        self.transport = None
        self.sessions: dict = {}
        self.sweeper = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.sweeper = asyncio.get_running_loop().call_later(SWEEP_SECONDS, self._sweep)

    def connection_lost(self, exc) -> None:
        if self.sweeper is not None:
            self.sweeper.cancel()
        for relay in list(self.sessions.values()):
            relay.close("inbound closed")
        self.sessions.clear()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _sweep(self) -> None:
        now = time.monotonic()
        for key, relay in list(self.sessions.items()):
            if relay.closed or relay.idle(now):
                relay.close("idle")
                self.sessions.pop(key, None)
        self.sweeper = asyncio.get_running_loop().call_later(SWEEP_SECONDS, self._sweep)

    def _new_relay(self, key, user_id: str, addr, on_reply) -> UdpRelay | None:
        core = self.core
        if admit(core.users, user_id, core.settings.tag):
            return None
        if len(self.sessions) >= MAX_SESSIONS:
            oldest = min(self.sessions, key=lambda k: self.sessions[k].last)
            self.sessions.pop(oldest).close("too many sessions")
        relay = UdpRelay(core, user_id, f"{addr[0]}:{addr[1]}", on_reply,
                         lambda r, k=key: self._forget(k, r))
        self.sessions[key] = relay
        return relay

    def _forget(self, key, relay) -> None:
        if self.sessions.get(key) is relay:
            del self.sessions[key]


class ShadowsocksUdp(_UdpInbound):
    """AEAD over UDP for a ``ShadowsocksInbound`` (its method and users' keys)."""

    def __init__(self, inbound) -> None:
        super().__init__(inbound.core)
        self.inbound = inbound
        # client address -> (user id, method, key) that opened its last datagram
        self.last_key: dict = {}

    def datagram_received(self, data: bytes, addr) -> None:
        inbound = self.inbound
        last = self.last_key.get(addr)
        for secret, method, key in ([last] if last else []) + inbound.keys():
            size = METHODS[method][0]
            if len(data) < size + TAG + 1:
                continue
            salt, sealed = data[:size], data[size:]
            try:
                plain = session_cipher(method, key, salt).decrypt(ZERO_NONCE, sealed, None)
            except InvalidTag:
                continue
            break
        else:
            return
        parsed = _address_and_payload(plain)
        if parsed is None:
            return
        if len(self.last_key) > MAX_SESSIONS:
            self.last_key.clear()
        self.last_key[addr] = (secret, method, key)
        relay = self.sessions.get((addr, secret))
        if relay is None or relay.closed:
            relay = self._new_relay((addr, secret), secret, addr,
                                    lambda a, p, m=method, k=key, to=addr: self._reply(m, k, to, a, p))
            if relay is None:
                return
        relay.send(*parsed)

    def _reply(self, method: str, key: bytes, to, address: str, payload: bytes) -> None:
        salt = os.urandom(METHODS[method][0])
        sealed = session_cipher(method, key, salt).encrypt(
            ZERO_NONCE, encode_address(address) + payload, None)
        self.transport.sendto(salt + sealed, to)


class _Session2022:
    """One client session of the 2022 UDP server."""

    __slots__ = ("psk", "client_id", "aead_in", "window", "server_id", "aead_out", "packet_id",
                 "addr", "relay")

    def __init__(self, psk: bytes, client_id: bytes, addr) -> None:
        self.psk = psk
        self.client_id = client_id
        self.aead_in = udp_body_aead(psk, client_id)
        self.window = PacketWindow()
        self.server_id = os.urandom(8)
        self.aead_out = udp_body_aead(psk, self.server_id)
        self.packet_id = 0
        self.addr = addr
        self.relay = None


class Shadowsocks2022Udp(_UdpInbound):
    """SIP022 over UDP for a ``Shadowsocks2022Inbound`` (its server key and users' keys)."""

    def __init__(self, inbound) -> None:
        super().__init__(inbound.core)
        self.inbound = inbound
        self.by_session: dict[tuple[bytes, bytes], _Session2022] = {}
        self.session_ids = SaltWindow()
        self.last_key: dict = {}

    def _candidates(self, data: bytes, addr):
        """(user id, user key, separate header plaintext, sealed body) to try, best first."""
        inbound = self.inbound
        inbound.users.refresh()
        if inbound.server_psk is not None and len(data) >= 32 + TAG:
            header = open_separate_header(inbound.server_psk, data[:16])
            found = inbound.users.by_hash.get(user_of_udp_eih(inbound.server_psk, header, data[16:32]))
            if found is not None:
                yield found[0], found[1], header, data[32:]
        last = self.last_key.get(addr)
        for secret, psk in ([last] if last else []) + inbound.users.keys:
            yield secret, psk, open_separate_header(psk, data[:16]), data[16:]

    def datagram_received(self, data: bytes, addr) -> None:
        if len(data) < 16 + TAG + 11:
            return
        for secret, psk, header, sealed in self._candidates(data, addr):
            client_id = header[:8]
            session = self.by_session.get((psk, client_id))
            aead = session.aead_in if session is not None else udp_body_aead(psk, client_id)
            try:
                body = open_udp_body(aead, header, sealed)
            except PacketError:
                continue
            break
        else:
            return
        try:
            kind, stamp, padding = struct.unpack_from(">BQH", body)
        except struct.error:
            return
        if kind != TYPE_CLIENT or not check_time(stamp):
            return
        parsed = _address_and_payload(body[11 + padding:])
        if parsed is None:
            return
        (packet_id,) = struct.unpack_from(">Q", header, 8)
        if session is None:
            if self.session_ids.seen(key_hash(psk) + client_id):
                return                          # a replay of a session that ended
            session = _Session2022(psk, client_id, addr)
        if not session.window.accept(packet_id):
            return
        if len(self.last_key) > MAX_SESSIONS:
            self.last_key.clear()
        self.last_key[addr] = (secret, psk)
        session.addr = addr                     # the client may move (NAT rebinding)
        relay = session.relay
        if relay is None or relay.closed:
            relay = self._new_relay((psk, client_id), secret, addr,
                                    lambda a, p, s=session: self._reply(s, a, p))
            if relay is None:
                return
            session.relay = relay
            self.by_session[(psk, client_id)] = session
        relay.send(*parsed)

    def _forget(self, key, relay) -> None:
        super()._forget(key, relay)
        session = self.by_session.get(key)
        if session is not None and session.relay is relay:
            del self.by_session[key]

    def _reply(self, session: _Session2022, address: str, payload: bytes) -> None:
        header = session.server_id + struct.pack(">Q", session.packet_id)
        session.packet_id += 1
        body = (struct.pack(">BQ", TYPE_SERVER, int(time.time())) + session.client_id
                + struct.pack(">H", 0) + encode_address(address) + payload)
        sealed = session.aead_out.encrypt(header[4:16], body, None)
        self.transport.sendto(seal_separate_header(session.psk, header) + sealed, session.addr)


def udp_server_for(inbound):
    """The UDP protocol factory serving a Shadowsocks TCP inbound's users on its port."""
    from fastpath.inbounds.shadowsocks_2022_tcp import Shadowsocks2022Inbound
    if isinstance(inbound, Shadowsocks2022Inbound):
        return lambda: Shadowsocks2022Udp(inbound)
    return lambda: ShadowsocksUdp(inbound)

