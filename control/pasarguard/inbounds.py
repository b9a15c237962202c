"""PasarGuard ``Start``: the panel's xray inbounds become this node's (beside Hysteria 2).

``build`` converts and checks them (``fastpath.inbounds.xray_inbounds`` and the node.yaml
checks, so both refuse the same things in the same words, naming the inbound tag), places
inline certificates under ``<dataDir>/pasarguard/tls/``, and refuses ports the node's own
listeners use.  ``apply`` stores the list and has every worker follow it; when one cannot (a
port taken on this host) the previous list is put back and the Start is refused, so nothing
is half applied.
"""
from __future__ import annotations

import asyncio
import logging
import os
import re
from pathlib import Path

from fastpath.control.pasarguard.errors import FaceError, Failure, bad_request
from fastpath.config.fields import ConfigError
from fastpath.inbounds.config import parse_inbounds_config
from fastpath.inbounds.panel_inbounds import SETTING
from fastpath.inbounds.xray_inbounds import Unserved, from_xray
from fastpath.supervisor.command_channel import CommandError

log = logging.getLogger("fastpath.pasarguard")

VISION = "xtls-rprx-vision"


def _safe(tag: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", tag)[:80] or "inbound"


def build(config_text: str, exclude, node_config) -> list[dict]:
    """The node.yaml-form entries of the panel's inbounds; a 400 naming what is not served."""
    try:
        converted = from_xray(config_text, exclude)
    except Unserved as exc:
        raise bad_request(str(exc)) from None
    tls_dir = Path(node_config.data_dir) / "pasarguard" / "tls"
    for entry in converted.entries:
        pem = converted.certificates.get(entry["tag"])
        if pem is None:
            continue
        tls_dir.mkdir(parents=True, exist_ok=True)
        base = tls_dir / _safe(entry["tag"])
        cert, key = base.with_suffix(".crt"), base.with_suffix(".key")
        cert.write_text(pem[0])
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(pem[1])
        entry["tls"] = {"cert": str(cert), "key": str(key)}
    try:
        settings = parse_inbounds_config(converted.entries)
    except ConfigError as exc:
        raise bad_request(f"{exc}") from None
    own = (getattr(node_config, "sections", None) or {}).get("inbounds") or []
    taken = {s.listen[1]: s.tag for s in own}
    for s in settings:
        if s.listen[1] in taken:
            raise bad_request(f"inbound {s.tag!r}: port {s.listen[1]} is already this node's "
                              f"inbound {taken[s.listen[1]]!r} (node.yaml)")
        for path in (s.cert, s.key):
            if path and not Path(path).is_file():
                raise bad_request(f"inbound {s.tag!r}: TLS file {path} does not exist on this node")
    return converted.entries


def check_flows(changes, entries: list[dict], failure=bad_request) -> None:
    """A user with the Vision flow on a VLESS inbound it may use: refused naming both (this
    node serves VLESS without a flow; see fastpath/inbounds/vless.py).  ``failure``: a 400 at
    Start; for a user sync ``errors.refused``, the answer with which the panel's client sets
    that user aside and delivers the others (any other error makes it resend the batch)."""
    vless = {e["tag"] for e in entries if e["type"] == "vless"}
    if not vless:
        return
    for change in changes:
        user = change.user
        if user is None:
            continue
        flow = ((user.meta.get("proxies") or {}).get("vless") or {}).get("flow") or ""
        if flow and flow != "none":
            tags = sorted(vless & set(user.inbounds))
            if tags:
                raise failure(f"inbound {tags[0]!r}: user {user.id!r} has VLESS flow {flow!r}, "
                                  "which this node does not serve (VLESS without a flow is served"
                                  f"{'; ' + VISION + ' needs a TLS layer the node can leave mid-stream' if flow == VISION else ''})")


def stored(store) -> list[dict]:
    return store.get_setting(SETTING, []) or []


async def apply(store, notifier, entries: list[dict], timeout: float = 15.0) -> None:
    """Store ``entries`` and wait for every worker to open them; put the old list back and
    raise if one could not (``notifier``: the face's, whose command client reaches the
    supervisor)."""
    client = notifier.client
    before = await asyncio.to_thread(stored, store)
    if before == entries:
        return
    await asyncio.to_thread(store.set_setting, SETTING, entries)
    errors = await _broadcast(client, timeout)
    if errors:
        await asyncio.to_thread(store.set_setting, SETTING, before)
        await _broadcast(client, timeout)
        tag, why = next(iter(errors.items()))
        raise bad_request(f"inbound {tag!r} could not open on this node: {why}")
    if entries or before:
        log.info("panel inbounds: %s", ", ".join(f"{e['tag']} ({e['type']} {e['listen']})"
                                                for e in entries) or "none")


async def _broadcast(client, timeout: float) -> dict:
    try:
        results = await asyncio.to_thread(client.call, "broadcast",
                                          {"cmd": "inbounds_changed", "args": {}, "timeout": timeout},
                                          timeout + 2)
    except CommandError as exc:
        raise FaceError(Failure.UNAVAILABLE, f"the data plane did not confirm the inbounds: {exc}") from None
    errors: dict = {}
    for result in results if isinstance(results, list) else []:
        if isinstance(result, dict):
            if "error" in result and isinstance(result["error"], str):
                errors.setdefault("worker", result["error"])
            errors.update(result.get("errors") or {})
        elif isinstance(result, list):           # several services answered: the inbounds' dict
            for part in result:
                if isinstance(part, dict):
                    errors.update(part.get("errors") or {})
    return errors
