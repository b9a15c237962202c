"""A user's exit, as its ``meta`` names it: one module for the face that stores it (HY2 SCALE's
``exit_via`` / ``exit_paths`` / ``exit_mode``) and the data plane that routes by it
(``fastpath.mesh.paths.route_of``, ``fastpath.mesh.egress``).

A user's traffic leaves along exit paths of the mesh: ``"b"`` (one hop, through this node's
client b) or ``"b/c"`` (hop by hop), several with a mode (``quality``, ``aggregate``) that
chooses among them.  ``check_exit`` says why a stored exit is refused (``ExitRefused``:
``supported`` False for what the node does not do, True for a name that is wrong); the paths
themselves are checked by ``fastpath.mesh.paths.check_paths``.
"""
from __future__ import annotations


class ExitRefused(Exception):
    """An exit the node will not store; ``supported`` False: not supported (a face answers
    501), True: supported but wrong here (400)."""

    def __init__(self, message: str, supported: bool):
        super().__init__(message)
        self.message = message
        self.supported = supported


def check_exit(meta: dict, clients: list, own: set, *, allow_disabled: bool = False) -> None:
    """A user's exit paths: each starts at an enabled client of this node (``clients``, the
    outbound peers; a restored backup may name a disabled one), revisits no node and names
    none of ``own`` (the names this node goes by), and several paths come with a mode that
    chooses among them.  Raises ``ExitRefused``."""
    from fastpath.mesh.paths import PathError, check_paths
    name = meta.get("exit_via") or ""
    paths = meta.get("exit_paths") or []
    if not name and not paths:
        return
    if paths and paths[0] != name:
        raise ExitRefused("exit_via must equal exit_paths[0]", True)
    if not paths:
        paths = [name]
    entries = {c.get("name"): c for c in clients if isinstance(c, dict)}
    try:
        check_paths(paths, meta.get("exit_mode") or "", own, set(entries))
    except PathError as exc:
        raise ExitRefused(str(exc), True) from None
    for path in paths:
        first = path.split("/")[0]
        if entries[first].get("disabled") and not allow_disabled:
            raise ExitRefused(f"exit {first!r} is a disabled client", True)
