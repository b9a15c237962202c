"""UDP sessions of one connection: reassembly per session and idle expiry, without sockets.

The server opens one outbound UDP socket per session id; this table only decides when a session
starts, what complete packet a datagram yields, and which sessions have been idle too long.
The I/O layer attaches its socket and counter slot to ``UdpSession.handle``.
"""
from __future__ import annotations

from fastpath.hy2.wire.events import UdpReceived
from fastpath.hy2.wire.frames import Defragmenter, UdpMessage, parse_udp_message

# A hostile client could open session after session; past this many the oldest idle ones go.
MAX_SESSIONS_PER_CONNECTION = 1024


class UdpSession:
    __slots__ = ("session_id", "defrag", "last_active", "handle", "remote", "packets")

    def __init__(self, session_id: int, now: float) -> None:
        self.session_id = session_id
        self.defrag = Defragmenter()
        self.last_active = now
        self.handle = None          # the I/O layer's object (socket, counter slot)
        self.remote = None
        self.packets = 0            # complete packets delivered


class UdpSessionTable:
    def __init__(self, idle_timeout: float, max_sessions: int = MAX_SESSIONS_PER_CONNECTION) -> None:
        self.idle_timeout = idle_timeout
        self.max_sessions = max_sessions
        self.sessions: dict[int, UdpSession] = {}

    def feed(self, msg: UdpMessage, now: float) -> tuple[UdpSession, bool, bytes | None]:
        """(session, first packet of the session, complete payload or None while fragments
        are missing)."""
        session = self.sessions.get(msg.session_id)
        if session is None:
            session = UdpSession(msg.session_id, now)
            self.sessions[msg.session_id] = session
        session.last_active = now
        payload = session.defrag.feed(msg)
        if payload is None:
            return session, False, None
        session.packets += 1
        return session, session.packets == 1, payload

    def receive(self, data: bytes, now: float) -> list:
        """One DATAGRAM frame's bytes: ``[UdpReceived]`` once they complete a packet, else
        ``[]`` (a fragment so far, or a malformed message, dropped as the reference does)."""
        msg = parse_udp_message(data)
        if msg is None:
            return []
        session, created, payload = self.feed(msg, now)
        if payload is None:
            return []
        return [UdpReceived(session, created, msg.address, payload)]

    def touch(self, session_id: int, now: float) -> None:
        session = self.sessions.get(session_id)
        if session is not None:
            session.last_active = now

    def over_capacity(self) -> list[UdpSession]:
        """Sessions to close because there are too many (least recently active first)."""
        extra = len(self.sessions) - self.max_sessions
        if extra <= 0:
            return []
        victims = sorted(self.sessions.values(), key=lambda s: s.last_active)[:extra]
        for s in victims:
            del self.sessions[s.session_id]
        return victims

    def expire(self, now: float) -> list[UdpSession]:
        """Remove and return the sessions idle for longer than the timeout."""
        limit = now - self.idle_timeout
        dead = [s for s in self.sessions.values() if s.last_active < limit]
        for s in dead:
            del self.sessions[s.session_id]
        return dead

    def remove(self, session_id: int) -> UdpSession | None:
        return self.sessions.pop(session_id, None)

    def clear(self) -> list[UdpSession]:
        gone = list(self.sessions.values())
        self.sessions.clear()
        return gone
