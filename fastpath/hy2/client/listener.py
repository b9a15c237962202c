"""What the client's local TCP listeners (SOCKS5, HTTP proxy, TCP forwards) share: an
``asyncio.start_server`` on ``listen`` that hands each accepted connection to ``_handle``."""
from __future__ import annotations

import asyncio


class TcpListener:
    """Subclasses set ``listen`` ((host, port)) and define ``async _handle(reader, writer)``."""

    server = None
    stream_limit = 64 * 1024        # the StreamReader's buffer limit (asyncio's default)

    async def start(self):
        self.server = await asyncio.start_server(self._handle, self.listen[0], self.listen[1],
                                                 limit=self.stream_limit)
        return self

    @property
    def address(self):
        return self.server.sockets[0].getsockname()[:2]

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
