"""Inbounds a control face asked for at run time, in a worker: a PasarGuard panel's ``Start``
(setting ``SETTING``) and the native API's ``/api/v1/inbounds`` (setting ``API_SETTING``).

The face keeps its list in the store (node.yaml-form entries, checked there before they were
saved) and broadcasts ``inbounds_changed`` (``{"set": "api"}`` for the native API's list, the
panel's otherwise); each worker then opens what
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
API_SETTING = "api.inbounds"


class StoredInbounds:
    """One stored list of inbounds (``setting``), followed by this worker."""

    def __init__(self, ctx, service, setting: str = SETTING) -> None:
        self.ctx = ctx
        self.service = service
        self.setting = setting
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
        raw = self.ctx.store.get_setting(self.setting, []) or []
        try:
            wanted = {s.tag: s for s in parse_inbounds_config(raw)}
        except ConfigError as exc:
            log.error("stored inbounds (%s) refused: %s", self.setting, exc)
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
