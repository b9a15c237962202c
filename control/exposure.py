"""What a control API reachable beyond loopback asks of its callers, in one start-up line.

A node whose control port is on loopback trusts the machine; once it listens beyond, every face
must ask for a credential, and the operator should read at start which one each face asks for.
"""
from __future__ import annotations


def exposure_line(config) -> str | None:
    """One line naming each face's credential, or None on loopback without a token."""
    control = config.control
    if control.on_loopback and not control.token:
        return None
    where = f"{control.host}:{control.port}"
    notes = ["native API and /metrics ask the control token"]
    ts = config.traffic_stats
    notes.append("Traffic Stats routes ask " + ("trafficStats.secret" if ts.secret else
                                                 "the control token (trafficStats.secret unset)"))
    media = config.sections.get("media")
    notes.append("the stream API asks " + ("media.apiToken" if getattr(media, "api_token", None)
                                            else "the control token (media.apiToken unset)"))
    scale = config.sections.get("scale")
    if scale is None or getattr(scale, "enabled", True):
        if not control.on_loopback:
            notes.append("HY2 SCALE serves only the password change while admin has the default "
                         "password")
    return f"control API on {where}: " + "; ".join(notes)
