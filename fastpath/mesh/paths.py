"""Exit paths as users and rules name them: ``"b"`` (one hop) or ``"b/c/d"`` (hop by hop),
checked once where they are written, so the data plane can trust what it reads.

A path names this node's client first, then each next node's client in turn (the names are
the receiving node's own).  Refused: empty hops, a node named twice (the path revisits it),
this node's own names, a first hop that is not a client of this node, names after the first
with "_" (the relay address ends a name at its first "_", ``fastpath.mesh.wire``), and more
hops than ``MAX_HOPS``.

The addresses paths end at, and every stream and datagram names, are "host:port" text:
``split_address`` / ``join_address`` are the one parser and writer, used by the data plane and
by the faces that check an exit client's ``addr`` (``control/hy2scale/clients.py``).
"""
from __future__ import annotations

import re

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
LATER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,31}$")
MAX_HOPS = 8
MAX_PATHS = 16
EXIT_MODES = ("", "direct", "quality", "aggregate")


class PathError(ValueError):
    """Why a path or a set of paths cannot be used (the 400 message)."""


def hops(path: str) -> tuple[str, ...]:
    return tuple(path.split("/"))


def check_path(path, own_names=(), clients=None) -> tuple[str, ...]:
    """The hops of ``path``, or ``PathError``.  ``clients``: this node's client names (None:
    not checked)."""
    if not isinstance(path, str) or not path:
        raise PathError("an exit path must be a non-empty string")
    parts = hops(path)
    if len(parts) > MAX_HOPS:
        raise PathError(f"exit path {path!r} has more than {MAX_HOPS} hops")
    for i, p in enumerate(parts):
        if not p:
            raise PathError(f"exit path {path!r} has an empty hop")
        if not (NAME if i == 0 else LATER_NAME).match(p):
            raise PathError(f"exit path {path!r}: hop {p!r} is not a node name"
                            + (" (names after the first hop may not contain '_')" if "_" in p else ""))
    if len(set(parts)) != len(parts):
        raise PathError(f"exit path {path!r} revisits a node")
    own = [p for p in parts if p in set(own_names)]
    if own:
        raise PathError(f"exit path {path!r} revisits this node ({own[0]!r})")
    if clients is not None and parts[0] not in clients:
        raise PathError(f"exit {parts[0]!r} is not a client of this node (see /clients)")
    return parts


def check_paths(paths, mode: str, own_names=(), clients=None) -> tuple[list[str], str]:
    """A user's or rule's ``exit_paths`` and ``exit_mode``, checked: (paths, mode).  Several
    paths need a mode that chooses among them (quality or aggregate); aggregate needs every
    path to end at the same node, as the reference requires (one exit, several ways there)."""
    if mode not in EXIT_MODES:
        raise PathError(f"exit_mode must be one of {', '.join(repr(m) for m in EXIT_MODES)}")
    paths = [p for p in paths if p]
    if len(paths) > MAX_PATHS:
        raise PathError(f"at most {MAX_PATHS} exit paths")
    if len(set(paths)) != len(paths):
        raise PathError("exit_paths lists a path twice")
    if len(paths) > 1 and mode not in ("quality", "aggregate"):
        raise PathError("several exit paths need exit_mode 'quality' or 'aggregate'")
    parsed = [check_path(p, own_names, clients) for p in paths]
    if not paths:
        return [], ""
    if mode == "aggregate" and len({p[-1] for p in parsed}) > 1:
        raise PathError("aggregate mode needs every path to end at the same exit node, got "
                        + " and ".join(sorted({repr(p[-1]) for p in parsed})))
    return paths, mode


def route_of(meta) -> tuple[tuple[str, ...], str] | None:
    """(paths, mode) of a stored user's meta, None when its traffic exits here."""
    if not isinstance(meta, dict):
        return None
    paths = meta.get("exit_paths")
    paths = [p for p in paths if isinstance(p, str) and p] if isinstance(paths, list) else []
    via = meta.get("exit_via")
    if not paths and isinstance(via, str) and via:
        paths = [via]
    if not paths:
        return None
    mode = meta.get("exit_mode") if meta.get("exit_mode") in ("quality", "aggregate") else ""
    return tuple(paths), mode


# -- "host:port" addresses -------------------------------------------------------------------
def split_address(address: str) -> tuple[str, int]:
    """"host:port" or "[v6]:port" → (host, port); ValueError otherwise."""
    if address.startswith("["):
        host, sep, port = address[1:].partition("]:")
    else:
        host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"bad address {address!r}")
    return host, int(port)


def join_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
