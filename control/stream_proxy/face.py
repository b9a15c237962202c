"""The face's shared state: the node model, the media settings, the token, and how workers
are told about changes."""
from __future__ import annotations

import logging
import time


from fastpath.control.stream_proxy.figures import Rates
from fastpath.control.stream_proxy.live import LiveView, clients_json, read_live
from fastpath.control.stream_proxy.stream_cache import StreamCache
from fastpath.control.node_model import NodeUnavailable
from fastpath.media.outbound import OutboundPolicy
from fastpath.supervisor.command_channel import CommandError

log = logging.getLogger("fastpath.control.stream_proxy")


class Face:
    def __init__(self, node):
        self.node = node
        self.media = node.config.sections.get("media")
        self.api_token = getattr(self.media, "api_token", None)
        self.default_user_agent = getattr(self.media, "user_agent", None)
        # The relay's outbound rule, for registrations and the test delivery of a webhook.
        self.outbound = OutboundPolicy.from_settings(self.media)
        self.rates = Rates()
        self._streams = StreamCache(node.store, self.default_user_agent)
        self._node_started: float | None = None
        self._next_status = 0.0

    @property
    def store(self):
        return self.node.store

    def streams(self):
        """Every registered stream (cached until the store changes; read-only objects)."""
        return self._streams.streams()

    def stream_templates(self):
        """The streams' JSON templates, cached with the streams."""
        return self._streams.templates()

    def live(self, clients_of: bool | str = True) -> LiveView:
        try:
            return read_live(self.node.table, clients_of)
        except NodeUnavailable:
            return LiveView()  # no segment yet: nothing is relayed

    def clients_json(self) -> tuple[bytes, int, int]:
        """Every viewer as a JSON array, (bytes, viewers, connected viewers)."""
        try:
            return clients_json(self.node.table)
        except NodeUnavailable:
            return b"[]", 0, 0

    def uptime(self) -> float:
        """Seconds since the node (supervisor) started; asked once, then counted here, so it
        costs nothing per request and never wraps.  Until the supervisor answers, the
        control process's own age (asked again at most every few seconds)."""
        if self._node_started is None:
            now = time.monotonic()
            if now >= self._next_status:
                self._next_status = now + 5.0
                status = self.node.status()
                if status is not None:
                    self._node_started = time.time() - float(status["uptime"])
            if self._node_started is None:
                return time.time() - self.node.started
        return time.time() - self._node_started

    def tell_workers(self, cmd: str, args: dict | None = None) -> list | None:
        """Broadcast a media command.  The store already holds the change and workers reread
        it when they restart, so a failure only delays it: logged, never an error answer."""
        try:
            results = self.node.commands.call("broadcast", {"cmd": cmd, "args": args or {}, "timeout": 5},
                                              8.0)
        except CommandError as exc:
            log.warning("stream proxy: %s not delivered to the workers: %s", cmd, exc)
            return None
        failed = [r for r in results or [] if isinstance(r, str) or (isinstance(r, dict) and "error" in r)]
        if failed:
            log.warning("stream proxy: %s failed on %d worker(s): %s", cmd, len(failed), failed[0])
        return results


def wants_msgpack(req) -> bool:
    """The app answers msgpack on request (``MsgpackNegotiation``); pre-rendered JSON bodies
    are for everyone else."""
    return "msgpack" in (req.accept or "")


def result_sum(results: list | None, key: str) -> int:
    """Sum ``key`` over the workers' answers (a worker where several services handle one
    command answers with a list)."""
    total = 0
    for r in results or ():
        if isinstance(r, list):
            total += result_sum(r, key)
        elif isinstance(r, dict) and isinstance(r.get(key), int) and not isinstance(r.get(key), bool):
            total += r[key]
    return total
