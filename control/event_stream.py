"""The control faces' server-sent event streams (the dashboard's live figures and log, HY2
SCALE's layout): each holds a thread of the control API for as long as a page keeps it open,
so a face keeps a bounded number of slots for them and answers 503 beyond, and a slot is given
back exactly once, when the server closes the body."""
from __future__ import annotations

import threading

import falcon


class HeldStream:
    """A response body that gives its stream slot back exactly once, when the server closes
    it (WSGI always calls close(), even when the body was never iterated)."""

    def __init__(self, events, release):
        self.events = events
        self._release = release

    def __iter__(self):
        return self

    def __next__(self):
        return next(self.events)

    def close(self):
        try:
            self.events.close()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()


def open_event_stream(resp, slots: threading.Semaphore, events, what: str,
                      wait: float = 0.0) -> None:
    """``events`` (a generator of encoded events) as ``resp``'s text/event-stream body,
    holding one of ``slots`` until it closes; 503 with Retry-After when no slot frees within
    ``wait`` seconds (``what`` names the streams in the message)."""
    got = slots.acquire(timeout=wait) if wait > 0 else slots.acquire(blocking=False)
    if not got:
        events.close()
        raise falcon.HTTPServiceUnavailable(
            title="too many streams", retry_after=5,
            description=f"every thread kept for {what} streams is in use (raise control.threads)")
    resp.content_type = "text/event-stream"
    resp.cache_control = ["no-cache"]
    resp.set_header("X-Accel-Buffering", "no")
    resp.stream = HeldStream(events, slots.release)
