"""The data plane's event loop: uvloop when installed, with a microsecond clock.

uvloop's ``loop.time()`` has millisecond resolution; aioquic computes its timers from it and
spins on sub-millisecond deadlines, which cut QUIC throughput by an order of magnitude.  The
subclass returns ``time.monotonic()`` (the same clock libuv uses, at full resolution), so
aioquic sees precise time while libuv keeps its own timer wheel.
"""
from __future__ import annotations

import asyncio
import time


def new_event_loop(use_uvloop: bool = True) -> asyncio.AbstractEventLoop:
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            class MicrosecondLoop(uvloop.Loop):
                def time(self) -> float:
                    return time.monotonic()

            return MicrosecondLoop()
    return asyncio.new_event_loop()


def run(main, *, use_uvloop: bool = True):
    """asyncio.run() on the data plane's loop."""
    loop = new_event_loop(use_uvloop)
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
