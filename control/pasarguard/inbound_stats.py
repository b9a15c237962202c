"""Traffic per inbound tag for the panel's ``Inbounds`` / ``Inbound`` statistics.

Each worker tallies the bytes of each proxy inbound it runs (``InboundCore.totals``: the same
bytes the users are counted for) since that inbound opened in that process.  Those tallies
restart at 0 when a worker restarts or an inbound is re-opened by a new Start, so here they
become totals that only grow: a tally seen lower than last time (or under a new worker pid)
moves what was last seen of it into ``carried``.  The bytes of a worker killed between two
polls since the last poll are the only ones an inbound's total can miss; they stay in the
users' statistics, and in the Hysteria tag's share below, so the node's sum is kept.

The Hysteria tag (the node's own listener) gets the rest: all users' traffic minus the proxy
inbounds' totals.  The baselines of the panel's resets are ``accounting.py``'s.
"""
from __future__ import annotations

import logging

from fastpath.supervisor.command_channel import CommandError

log = logging.getLogger("fastpath.pasarguard")

SETTING = "pasarguard.inbound_tallies"


def _read(client, timeout: float = 5.0) -> list:
    try:
        results = client.call("broadcast", {"cmd": "inbound_totals", "args": {}, "timeout": timeout},
                              timeout + 2)
    except CommandError as exc:
        log.warning("inbound statistics: the workers did not answer: %s", exc)
        return []
    return results if isinstance(results, list) else []


def proxy_totals(store, client) -> dict[str, tuple[int, int]]:
    """tag -> (up, down) since the panel's inbounds were first counted on this node."""
    state = store.get_setting(SETTING, {}) or {}
    carried = {t: list(v) for t, v in (state.get("carried") or {}).items()}
    last = state.get("last") or {}
    now: dict = {}
    for shard, result in enumerate(_read(client)):
        if not isinstance(result, dict) or not isinstance(result.get("tags"), dict):
            now[str(shard)] = last.get(str(shard))      # not answering: keep what was seen
            continue
        before = last.get(str(shard)) or {}
        same_process = before.get("pid") == result.get("pid")
        for tag, seen in (before.get("tags") or {}).items():
            current = result["tags"].get(tag)
            if not same_process or current is None or current[0] < seen[0] or current[1] < seen[1]:
                c = carried.setdefault(tag, [0, 0])
                c[0] += seen[0]
                c[1] += seen[1]
        now[str(shard)] = {"pid": result.get("pid"), "tags": result["tags"]}
    store.set_setting(SETTING, {"carried": carried, "last": {k: v for k, v in now.items() if v}})
    totals = {tag: (v[0], v[1]) for tag, v in carried.items()}
    for entry in now.values():
        for tag, (up, down) in ((entry or {}).get("tags") or {}).items():
            t = totals.get(tag, (0, 0))
            totals[tag] = (t[0] + up, t[1] + down)
    return totals
