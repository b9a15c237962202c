"""Stream and viewer events once per node, however many workers relay the stream.

With ``node.workers > 1`` every worker runs its own relay of a stream (SO_REUSEPORT spreads the
viewers), so each one sees only part of the node: its first viewer is not the node's first, and
when the primary dies every worker's reader notices and would switch, count and announce it.

The design: the state store decides, because all workers share it and SQLite serialises writes.

* ``stream_started`` / ``stream_stopped`` and ``client_connected`` / ``client_disconnected``: a
  presence row per (stream, viewer, worker) with a reference count (``media_store.presence_*``).
  The worker whose join makes the node-wide sum 1 fires the start/connect event; the worker whose
  leave makes it 0 fires the stop/disconnect event.  An HLS viewer whose requests land on two
  workers is thus connected once and gone once.
* An automatic switch of upstream is a compare-and-set of the stream's stored index
  (``media_store.switch_index``): the worker that moves it counts ``failover_attempts`` and fires
  ``failover_triggered``; a worker that loses follows the stored index silently.
* A manual switch was already counted by the control face before it told the workers; they
  claim (stream, ``failover_triggered``, the stored ``failover_attempts``) and only the winner
  fires (``media_store.claim_event``).

Why not shared memory (e.g. the lowest live shard as the owner)?  Owner election by reading slots
is racy at the moments that matter (two workers seeing their first viewer at once), whereas a
store transaction is atomic and survives a worker restart (a starting worker drops the rows of
its previous life).  The cost is one small transaction per viewer arrival/departure and per
switch, never per byte.  All store work runs on one thread per worker, in order, so a worker's
own join and leave of a row are never reordered.
"""
from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from fastpath.store import media_store

log = logging.getLogger("fastpath.media.node_events")

STREAM = ""        # the presence row of the stream itself (client ids are never empty)


class NodeEvents:
    def __init__(self, svc):
        self.svc = svc
        self.shard = int(getattr(svc.ctx, "shard", 0))
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="media-events")

    async def start(self) -> None:
        workers = int(getattr(getattr(self.svc.ctx, "config", None), "workers", 1) or 1)
        await self._run(media_store.presence_reset, self.svc.store, self.shard, max(workers, 1))

    def close(self) -> None:
        self.executor.shutdown(wait=False)

    async def _run(self, func, *args, **kwargs):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, lambda: func(*args, **kwargs))

    def _later(self, func, args: tuple, event: str, stream_id: str, data: dict, on_win=None) -> None:
        """Run ``func(store, *args)`` in order; fire ``event`` when it returns True.  When the
        store cannot answer, the event fires anyway: a duplicate beats a lost event."""
        async def job():
            try:
                fire = await self._run(func, self.svc.store, *args)
            except Exception:
                log.exception("node presence update failed; firing %s from this worker", event)
                fire = True
            if fire:
                if on_win is not None:
                    on_win()
                self.svc.hooks.emit(event, stream_id, data)
        self.svc.spawn(job())

    # -- presence -------------------------------------------------------------------------------
    def stream_up(self, stream_id: str, data: dict) -> None:
        self._later(media_store.presence_join, (stream_id, STREAM, self.shard), "stream_started",
                    stream_id, data)

    def stream_down(self, stream_id: str, data: dict) -> None:
        self._later(media_store.presence_leave, (stream_id, STREAM, self.shard), "stream_stopped",
                    stream_id, data)

    def client_up(self, stream_id: str, client_id: str, data: dict) -> None:
        self._later(media_store.presence_join, (stream_id, client_id, self.shard), "client_connected",
                    stream_id, data)

    def client_down(self, stream_id: str, client_id: str, data: dict) -> None:
        self._later(media_store.presence_leave, (stream_id, client_id, self.shard),
                    "client_disconnected", stream_id, data)

    # -- switches -------------------------------------------------------------------------------
    async def switch(self, stream_id: str, old: int, new: int, *, count: bool, data: dict,
                     on_win=None) -> tuple[bool, int]:
        """Move the node's stream from URL ``old`` to ``new``; (won, the node's index).  The
        winner fires ``failover_triggered``."""
        return await self._compare_and_set(stream_id, data, on_win, new, media_store.switch_index,
                                           old, new, count=count)

    async def switch_resolved(self, stream_id: str, old: int, old_url: str, new_url: str, *,
                              data: dict, on_win=None) -> tuple[bool, media_store.MediaStream | None]:
        """Move the node's stream from URL ``old`` (``old_url``) to the resolver's answer;
        (won, the stored stream).  The winner fires ``failover_triggered``."""
        return await self._compare_and_set(stream_id, data, on_win, None, media_store.switch_to_resolved,
                                           old, old_url, new_url)

    async def _compare_and_set(self, stream_id: str, data: dict, on_win, fallback, func, *args, **kwargs):
        """``func(store, stream_id, ...)`` -> (won, stored); when the store cannot answer, this
        worker counts itself the winner (``fallback`` as the stored value)."""
        try:
            won, stored = await self._run(func, self.svc.store, stream_id, *args, **kwargs)
        except Exception:
            log.exception("stream %s: switch not recorded", stream_id)
            won, stored = True, fallback
        if won:
            if on_win is not None:
                on_win()
            self.svc.hooks.emit("failover_triggered", stream_id, data)
        return won, stored

    def switch_later(self, stream_id: str, old: int, new: int, *, count: bool, data: dict,
                     on_win=None) -> None:
        self.svc.spawn(self.switch(stream_id, old, new, count=count, data=data, on_win=on_win))

    def manual_switch(self, stream_id: str, data: dict, on_win=None) -> None:
        """A switch the control face counted already: one worker announces it."""
        def claim(store, sid):
            stream = media_store.get_stream(store, sid)
            epoch = stream.failover_attempts if stream is not None else 0
            return media_store.claim_event(store, sid, "failover_triggered", epoch)
        self._later(claim, (stream_id,), "failover_triggered", stream_id, data, on_win)
