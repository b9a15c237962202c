"""Go-compatible renderings the Traffic Stats API's clients parse: RFC 3339 timestamps with
trimmed nanoseconds, ``time.Duration.String()``, ``strconv.ParseBool``, and the text table of
``/dump/streams``."""
from __future__ import annotations

import datetime

GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})

TABLE_FORMAT = "%-8s %-12s %12s %8s %12s %12s %12s %12s %-16s %s\n"
TABLE_HEADER = ("State", "Auth", "Connection", "Stream", "TX-Bytes", "RX-Bytes", "Lifetime",
                "Last-Active", "Req-Addr", "Hooked-Req-Addr")


def go_bool(value: str | None) -> bool:
    """``strconv.ParseBool`` truthiness; anything unparsable counts as false, as in the
    reference."""
    return value in GO_TRUE


def rfc3339_nano(ns: int) -> str:
    """``time.RFC3339Nano`` in UTC: fraction with trailing zeros trimmed, ``Z`` suffix."""
    seconds, frac = divmod(int(ns), 1_000_000_000)
    stamp = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        stamp += "." + f"{frac:09d}".rstrip("0")
    return stamp + "Z"


def go_duration(ns: int) -> str:
    """``time.Duration.String()`` for a non-negative duration in nanoseconds."""
    ns = int(ns)
    if ns == 0:
        return "0s"
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return _fraction(ns, size) + unit
    hours, rem = divmod(ns, 3_600_000_000_000)
    minutes, rem = divmod(rem, 60_000_000_000)
    out = ""
    if hours:
        out += f"{hours}h"
    if hours or minutes:
        out += f"{minutes}m"
    return out + _fraction(rem, 1_000_000_000) + "s"


def _fraction(value: int, unit: int) -> str:
    whole, frac = divmod(value, unit)
    if not frac:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}." + f"{frac:0{digits}d}".rstrip("0")


def rounded_duration(ns: int) -> str:
    """The table's rounding: to the millisecond under 10 minutes, to the second above."""
    ns = max(0, int(ns))
    step = 1_000_000 if ns < 600_000_000_000 else 1_000_000_000
    return go_duration((ns + step // 2) // step * step)


def stream_table(streams: list[dict], now_ns: int) -> str:
    lines = [TABLE_FORMAT % TABLE_HEADER]
    for s in streams:
        lines.append(TABLE_FORMAT % (
            s["state"].upper(), s["auth"], "%08X" % s["connection"], s["stream"], s["tx"], s["rx"],
            rounded_duration(now_ns - s["_initial_ns"]), rounded_duration(now_ns - s["_last_ns"]),
            s["req_addr"] or "-", s["hooked_req_addr"] or "-"))
    return "".join(lines)
