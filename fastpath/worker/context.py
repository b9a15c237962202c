"""What a data-plane service gets from its worker: config, counters, users, egress, commands.

Services (Hysteria 2, media relay) are started by the worker with ``await start(ctx)`` and
depend only on this object, never on the supervisor or the control API.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from fastpath.config import NodeConfig
from fastpath.store import StateStore
from fastpath.worker.egress import DIRECT, Egress
from fastpath.worker.user_directory import UserDirectory

CommandHandler = Callable[[dict], Awaitable[Any]]


@dataclass
class WorkerContext:
    shard: int
    config: NodeConfig
    table: Any                 # fastpath.shm.CounterTable (the whole segment, for readers)
    counters: Any              # fastpath.shm.ShardWriter of this worker's shard
    store: StateStore
    users: UserDirectory
    egress: Egress = DIRECT    # where users' traffic leaves: here, or through an exit peer
    hy2_socket: Any = None     # the shard's bound UDP socket, inherited from the supervisor
    reset_key: bytes | None = None   # the node's stateless-reset key (secrets.json)
    commands: dict[str, CommandHandler] = field(default_factory=dict)

    def on_command(self, name: str, handler: CommandHandler) -> None:
        """Register ``handler(args) -> result`` for a command fanned out by the supervisor.
        Several services may register the same command; their results are listed."""
        previous = self.commands.get(name)
        if previous is None:
            self.commands[name] = handler
            return

        async def both(args, _a=previous, _b=handler):
            first = await _a(args)
            second = await _b(args)
            return _merge(first, second)

        self.commands[name] = both


def _merge(a, b):
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a + b
    if isinstance(a, dict) and isinstance(b, dict):
        return {**a, **b}
    return [a, b]
