"""The node's SOCKS5 and HTTP proxy inbounds: node users log in, connections leave from here.

The protocol handshakes are ``fastpath.proxy``'s; this module supplies what is the node's: the
credential check against the user table (``UserDirectory``: disabled, expired, over-limit and
inbound-scoped users are refused as on Hysteria 2), the dial, the counter slots and the
compiled splice, and the kick.
"""
from __future__ import annotations

import asyncio
import logging

from fastpath.hy2.udp_relay import split_address
from fastpath.inbounds.tcp_splice import TcpSplice
from fastpath.mesh.paths import route_of
from fastpath.proxy.http import HttpProxyHandshake, status
from fastpath.proxy.socks5 import (REP_FAILURE, REP_HOST_UNREACHABLE, REP_NOT_ALLOWED, REP_OK,
                                   REP_REFUSED, Socks5Handshake, reply)
from fastpath.shm import KIND_CONNECTION, KIND_TCP_STREAM, STATE_ESTAB
from fastpath.worker.egress import DIRECT, Egress

log = logging.getLogger("fastpath.inbounds")

DIAL_TIMEOUT = 10.0
ANONYMOUS = None                # the identity of a connection to an inbound without auth


class Refused(Exception):
    """The dial is not allowed (the answer says so instead of a network error)."""


class InboundCore:
    """What both proxy types of one inbound share: users, counters, the live splices."""

    def __init__(self, settings, users, counters, egress: Egress = DIRECT) -> None:
        self.settings = settings
        self.users = users
        self.counters = counters
        self.egress = egress      # the worker's (fastpath.worker.egress), as the Hysteria 2 server's
        self.live: dict[TcpSplice, tuple] = {}          # splice -> (user, writer, slots)
        self.udp_live: set = set()                      # UdpRelay sessions (udp_relay.py)
        self.ended = [0, 0]        # bytes up / down of this inbound's finished connections
        # The listener's own exit as a route ((paths, mode), read as a user's exit is), or
        # None: its users' own exits apply.
        self.via = route_of({"exit_via": settings.exit_via, "exit_paths": list(settings.exit_paths),
                             "exit_mode": settings.exit_mode})

    def route_of(self, user_id, host: str):
        """The exit route of ``user_id``'s traffic to ``host`` (a rule's, this listener's
        exit, or the user's exit); None: it leaves here."""
        return self.egress.exit_of(user_id, host, self.via)

    def totals(self) -> tuple[int, int]:
        """Bytes up / down through this inbound in this worker since it opened (counted as
        the users' are), for per-inbound statistics."""
        up, down = self.ended
        for splice in self.live:
            up += splice.up_bytes
            down += splice.down_bytes
        return up, down

    # -- credentials ------------------------------------------------------------------------
    async def check_credentials(self, user: bytes, password: bytes):
        try:
            name, secret = user.decode(), password.decode()
        except UnicodeDecodeError:
            return None
        # A "name:password" auth secret (HY2 SCALE, userpass) is the pair itself; any other
        # secret is the password of the user whose id is the name.
        for candidate, must_be in ((f"{name}:{secret}", None), (secret, name)):
            found, refused = self.users.authenticate(candidate, self.settings.tag)
            if found is None or (must_be is not None and found.id != must_be):
                continue
            if refused:
                log.info("inbound %s: user %s refused: %s", self.settings.tag, found.id, refused)
                return None
            return found.id
        log.info("inbound %s: authentication failed for %r", self.settings.tag, name[:64])
        return None

    # -- connections ------------------------------------------------------------------------
    async def open_and_splice(self, reader, writer, address: str, user_id, *,
                              answer: bytes, prefix: bytes = b"", up_codec=None,
                              down_codec=None, routed: bool = True) -> None:
        """Dial ``address`` for ``user_id`` and splice; raises OSError, Refused or
        TimeoutError before anything was written to the client when it cannot.  The codecs
        (an encrypted protocol's, a WebSocket's) are the splice's ``up_codec``/``down_codec``.
        ``routed`` false: this node's own service (a fallback), dialed here whatever the rules
        say."""
        splice = await self.dial(address, user_id, writer.get_extra_info("peername"), routed=routed)
        splice.up_codec, splice.down_codec = up_codec, down_codec
        if splice.finished:                 # the target closed at once
            writer.write(answer)
            writer.close()
            return
        # The StreamWriter is kept until the splice ends: one that is collected closes its
        # transport (Python 3.11.5+), which is now the splice's.
        user, _none, slots = self.live[splice]
        self.live[splice] = (user, writer, slots)
        writer.write(answer)
        if prefix:
            splice.send_to_target(prefix)
        buffered = bytes(reader._buffer)
        reader._buffer.clear()
        splice.attach_client(writer.transport, buffered)

    async def dial(self, address: str, user_id, peer, *, routed: bool = True) -> TcpSplice:
        """Connect to ``address`` for ``user_id``: a splice whose target side is connected and
        whose client side is still to be attached (``TcpSplice.attach_client``)."""
        host, port = split_address(address)
        # A user's exit or a rule for the target (fastpath.mesh): opened along that route or
        # failed (ExitUnavailable, an OSError), never dialed from here.
        route = self.route_of(user_id, host) if routed else None
        peer_text = f"{peer[0]}:{peer[1]}" if peer else ""
        conn_slot, slot = self._open_slots(user_id, peer_text, address)
        splice = TcpSplice(self.counters if slot >= 0 else None, slot, self._finished)
        splice.on_budget = self._budget_reached
        try:
            loop = asyncio.get_running_loop()
            async with asyncio.timeout(DIAL_TIMEOUT):
                if route is not None:
                    sock = await self.egress.open_socket(route, address, loop)
                    try:
                        await loop.create_connection(lambda: splice.target, sock=sock)
                    except BaseException:
                        sock.close()
                        raise
                else:
                    await loop.create_connection(lambda: splice.target, host, port)
        except BaseException:
            self._close_slots((conn_slot, slot))
            raise
        if slot >= 0:
            self.counters.set_state(slot, STATE_ESTAB)
        self.live[splice] = (user_id, None, (conn_slot, slot))
        return splice

    def _open_slots(self, user_id, peer: str, address: str,
                    kind: int = KIND_TCP_STREAM) -> tuple[int, int]:
        w = self.counters
        if w is None or user_id is None:
            return -1, -1
        try:
            user_slot = w.user_slot(user_id)
            conn_slot = w.open(KIND_CONNECTION, user_id, user_slot=user_slot, text_a=peer,
                               state=STATE_ESTAB)
        except Exception:
            log.warning("counter shard full: connection of %s not counted", user_id)
            return -1, -1
        try:
            slot = w.open(kind, user_id, user_slot=user_slot, conn_slot=conn_slot,
                          text_a=peer, text_b=address)
        except Exception:
            w.close(conn_slot)
            return -1, -1
        return conn_slot, slot

    def _close_slots(self, slots) -> None:
        for slot in slots:
            if slot >= 0:
                try:
                    self.counters.close(slot)
                except Exception:
                    pass

    def _finished(self, splice: TcpSplice, reason: str) -> None:
        entry = self.live.pop(splice, None)
        if entry is not None:
            self.ended[0] += splice.up_bytes
            self.ended[1] += splice.down_bytes
            self._close_slots(entry[2])
            log.debug("inbound %s: %s: %s", self.settings.tag, entry[0], reason)

    def _budget_reached(self, splice: TcpSplice) -> None:
        """The user's cap is reached on this worker: refused at once from now on (the
        supervisor's next over-limit list replaces this, so a reset lets the user back in),
        and its connections on this inbound close."""
        entry = self.live.get(splice)
        user_id = entry[0] if entry else None
        if user_id is None:
            splice.abort("traffic limit reached")
            return
        self._budget_user(user_id)
        splice.abort("traffic limit reached")

    def _budget_user(self, user_id) -> None:
        if user_id is None or user_id in self.users.over_limit:
            return
        self.users.over_limit = self.users.over_limit | {user_id}
        log.info("inbound %s: %s reached the traffic limit", self.settings.tag, user_id)
        self.kick([user_id])

    def kick(self, ids) -> int:
        ids = set(ids)
        doomed = [s for s, entry in self.live.items() if entry[0] in ids]
        for splice in doomed:
            splice.abort("kicked")
        relays = [r for r in self.udp_live if r.user_id in ids]
        for relay in relays:
            relay.close("kicked")
        return len(doomed) + len(relays)

    def close_all(self) -> None:
        for splice in list(self.live):
            splice.abort("inbound closed")
        for relay in list(self.udp_live):
            relay.close("inbound closed")


class NodeSocks5(Socks5Handshake):
    def __init__(self, core: InboundCore) -> None:
        self.core = core
        self.asks_credentials = core.settings.auth
        self.check_credentials = core.check_credentials

    async def _udp_associate(self, reader, writer, identity) -> None:
        from fastpath.inbounds.socks5_udp import serve_association
        await serve_association(self.core, reader, writer, identity)

    async def _connect(self, reader, writer, address: str, identity) -> None:
        try:
            await self.core.open_and_splice(reader, writer, address, identity, answer=reply(REP_OK))
        except Refused as exc:
            log.info("inbound %s: %s", self.core.settings.tag, exc)
            writer.write(reply(REP_NOT_ALLOWED))
            writer.close()
        except (OSError, ValueError, asyncio.TimeoutError) as exc:
            log.debug("inbound %s: CONNECT %s: %s", self.core.settings.tag, address, exc)
            code = REP_REFUSED if isinstance(exc, ConnectionRefusedError) else (
                REP_HOST_UNREACHABLE if isinstance(exc, (OSError, asyncio.TimeoutError)) else REP_FAILURE)
            writer.write(reply(code))
            writer.close()


class NodeHttpProxy(HttpProxyHandshake):
    realm = "fastpath"

    def __init__(self, core: InboundCore) -> None:
        self.core = core
        self.asks_credentials = core.settings.auth
        self.check_credentials = core.check_credentials

    async def _open_and_splice(self, reader, writer, address: str, identity, *,
                               answer: bytes = b"", prefix: bytes = b"") -> None:
        try:
            await self.core.open_and_splice(reader, writer, address, identity, answer=answer,
                                            prefix=prefix)
        except Refused as exc:
            log.info("inbound %s: %s", self.core.settings.tag, exc)
            writer.write(status(403, "Forbidden"))
            writer.close()
        except (OSError, ValueError, asyncio.TimeoutError) as exc:
            log.debug("inbound %s: %s: %s", self.core.settings.tag, address, exc)
            writer.write(status(502, "Bad Gateway"))
            writer.close()
