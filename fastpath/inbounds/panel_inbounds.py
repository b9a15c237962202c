"""Inbounds a control face asked for at run time (PasarGuard ``Start``), in a worker.

The face keeps the list in the store (setting ``SETTING``: node.yaml-form entries, checked
there before they were saved) and broadcasts ``inbounds_changed``; each worker then opens what
is new, closes what went (its connections end) and keeps what is unchanged, connections and
all.  A worker that starts reads the same list, so the panel's inbounds outlive restarts as
its users do.  ``reconcile`` answers which tags are open and which could not be (a taken
port): the face undoes a Start that a worker could not follow.
"""
from __future__ import annotations

import logging

from fastpath.config.fields import ConfigError
from fastpath.inbounds.config import parse_inbounds_config

log = logging.getLogger("fastpath.inbounds")

SETTING = "pasarguard.inbounds"


class PanelInbounds:
    def __init__(self, ctx, service) -> None:
        self.ctx = ctx
        self.service = service
        self.open: dict[str, tuple] = {}        # tag -> (settings, core, server)

    def kick(self, ids) -> int:
        return sum(core.kick(ids) for _s, core, _srv in self.open.values())

    async def _close(self, tag: str) -> None:
        _settings, core, server = self.open.pop(tag)
        server.close()
        core.close_all()
        await server.wait_closed()
        log.info("inbound %s closed", tag)

    async def close(self) -> None:
        for tag in list(self.open):
            await self._close(tag)

    async def reconcile(self) -> dict:
        from fastpath.inbounds.service import open_listener
        raw = self.ctx.store.get_setting(SETTING, []) or []
        try:
            wanted = {s.tag: s for s in parse_inbounds_config(raw)}
        except ConfigError as exc:
            log.error("stored panel inbounds refused: %s", exc)
            return {"open": sorted(self.open), "errors": {"config": str(exc)}}
        for tag in [t for t, (s, _c, _v) in self.open.items() if wanted.get(t) != s]:
            await self._close(tag)
        errors = {}
        for tag, settings in wanted.items():
            if tag in self.open:
                continue
            try:
                core, server = await open_listener(settings, self.ctx)
            except (OSError, ValueError) as exc:
                log.error("inbound %s could not open on %s:%d: %s", tag, *settings.listen, exc)
                errors[tag] = str(exc)
                continue
            self.open[tag] = (settings, core, server)
        return {"open": sorted(self.open), "errors": errors}
