"""The Traffic Stats API's bodies in plain Python: the spec ``fastpath.views.traffic_view`` is
tested against (``tests/shm/test_traffic_view.py``)."""
from __future__ import annotations

import json

from fastpath.control.traffic_format import rfc3339_nano
from fastpath.shm import KIND_TCP_STREAM, STATE_NAMES
from fastpath.store.ledger import since


def _compact(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def since_baseline(totals: dict, marks: dict) -> dict[str, tuple[int, int]]:
    """``{id: (tx, rx)}`` since the marks (the ledger's rule per direction)."""
    return {uid: since(t, marks.get(uid)) for uid, t in totals.items()}


def traffic_json(counted: dict, listed=()) -> bytes:
    """``/traffic`` from ``{id: (tx, rx)}``: ids sorted, fields in the reference's order."""
    out = {uid: {"tx": tx, "rx": rx} for uid, (tx, rx) in counted.items() if tx or rx}
    for uid in listed:
        out.setdefault(uid, {"tx": 0, "rx": 0})
    return json.dumps(dict(sorted(out.items())), separators=(",", ":"), ensure_ascii=False).encode()


def online_json(live: dict) -> bytes:
    """``/online`` from ``scan_users`` records."""
    return _compact({uid: rec[2] for uid, rec in live.items() if rec[2] > 0}).encode()


def stream_records(node) -> list[dict]:
    """TCP streams in the reference's field order, sorted by auth, connection, stream."""
    rows = []
    for s in node.slots([KIND_TCP_STREAM]):
        state = STATE_NAMES[s["state"]] if s["state"] < len(STATE_NAMES) else "closed"
        rows.append({
            "state": state, "auth": s["key"], "connection": s["conn_id"] & 0xFFFFFFFF,
            "stream": s["stream_id"], "req_addr": s["text_b"], "hooked_req_addr": "",
            "tx": s["tx"], "rx": s["rx"],
            "initial_at": rfc3339_nano(s["created_ns"]),
            "last_active_at": rfc3339_nano(s["last_active_ns"]),
            "_initial_ns": s["created_ns"], "_last_ns": s["last_active_ns"],
        })
    rows.sort(key=lambda r: (r["auth"], r["connection"], r["stream"]))
    return rows


def streams_json(rows: list[dict]) -> bytes:
    """``/dump/streams`` JSON from ``stream_records``."""
    rows = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    return (json.dumps({"streams": rows}, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
