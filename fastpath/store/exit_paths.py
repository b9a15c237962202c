"""A user's exit, as its ``meta`` names it: one module for the face that stores it (HY2 SCALE's
``exit_via`` / ``exit_paths`` / ``exit_mode``) and the data plane that routes by it.

What the node supports is one hop: the user's traffic leaves through one enabled outbound peer
of this node.  ``check_exit`` says why anything else is refused (``ExitRefused``: ``supported``
False for what the node does not do, True for a name that is wrong); ``exit_name`` is what the
workers route by, and fails closed for a stored value the checks would refuse.
"""
from __future__ import annotations


class ExitRefused(Exception):
    """An exit the node will not store; ``supported`` False: not supported (a face answers
    501), True: supported but wrong here (400)."""

    def __init__(self, message: str, supported: bool):
        super().__init__(message)
        self.message = message
        self.supported = supported


def exit_name(meta) -> str | None:
    """The exit a user's ``meta`` names ("" / None: traffic exits here).  Several paths come
    back joined with "," and a multi-hop path keeps its "/": neither names a peer, so such a
    user fails closed rather than leaving directly."""
    if not isinstance(meta, dict):
        return None
    paths = meta.get("exit_paths")
    paths = [p for p in paths if isinstance(p, str) and p] if isinstance(paths, list) else []
    via = meta.get("exit_via")
    if len(paths) > 1:
        return ",".join(paths)
    if isinstance(via, str) and via:
        return via
    return paths[0] if paths else None


def check_exit(meta: dict, clients: list, own: set, *, allow_disabled: bool = False) -> None:
    """A user's exit must be one hop through one enabled client of this node (``clients``,
    the outbound peers; a restored backup may name a disabled one); ``own``: the names this
    node goes by.  Raises ``ExitRefused``."""
    name = meta.get("exit_via") or ""
    paths = meta.get("exit_paths") or []
    if not name and not paths:
        return
    if len(paths) > 1:
        raise ExitRefused("several exit paths are not supported: single-hop exits are", False)
    if paths and paths[0] != name:
        raise ExitRefused("exit_via must equal exit_paths[0]", True)
    if "/" in name:
        raise ExitRefused(f"multi-hop exit paths ({name!r}) are not supported: single-hop exits "
                          f"through one client of this node are", False)
    if meta.get("exit_mode") in ("quality", "aggregate"):
        raise ExitRefused(f"exit_mode {meta['exit_mode']!r} is not supported with exits: single-hop "
                          f"exits with exit_mode \"\" or \"direct\" are", False)
    if name in own:
        raise ExitRefused(f"exit {name!r} names this node itself", True)
    entry = next((c for c in clients if isinstance(c, dict) and c.get("name") == name), None)
    if entry is None:
        raise ExitRefused(f"exit {name!r} is not a client of this node (see /clients)", True)
    if entry.get("disabled") and not allow_disabled:
        raise ExitRefused(f"exit {name!r} is a disabled client", True)
