"""Panel users → rows of the node's user table, and the checks that run before any is written.

A panel user (``service.User``) becomes a table user of source ``pasarguard``: ``email`` is its
id (and its name in every statistic), ``proxies.hysteria.auth`` its Hysteria 2 secret (a user
without one stays in the table and the statistics but cannot use the Hysteria 2 listener), and
``inbounds`` where it may connect.  Inbound tags are translated to the node's own names: the
panel's tags of Hysteria inbounds (read from the backend config it sends with Start, when that
is an Xray-style JSON config) and the configured ``inboundTag`` all name the node's Hysteria 2
listener.  The panel's own list is kept in ``meta["panel_inbounds"]``.

A user whose inbound list is empty (after ``exclude_inbounds``) is a removal: the panel removes
disabled, expired and over-limit users that way.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterable

from fastpath.control.pasarguard.errors import bad_request, refused
from fastpath.store import User

SOURCE = "pasarguard"
HYSTERIA_PROTOCOLS = ("hysteria", "hysteria2")
KEY_MAX_BYTES = 63   # a counter-table key holds 63 bytes; a longer id would be cut in statistics


@dataclass
class InboundMap:
    """How the panel's inbound tags map to the node's own."""
    node_tag: str
    aliases: set[str] = field(default_factory=set)
    excluded: set[str] = field(default_factory=set)

    @classmethod
    def from_backend(cls, node_tag: str, config_text: str, exclude: Iterable[str]) -> "InboundMap":
        return cls(node_tag=node_tag, aliases=hysteria_tags(config_text), excluded=set(exclude))

    def translate(self, tags: Iterable[str]) -> list[str]:
        out: list[str] = []
        for tag in tags:
            if tag in self.excluded:
                continue
            name = self.node_tag if tag == self.node_tag or tag in self.aliases else tag
            if name not in out:
                out.append(name)
        return out

    def to_json(self) -> dict:
        return {"aliases": sorted(self.aliases), "excluded": sorted(self.excluded)}

    @classmethod
    def from_json(cls, node_tag: str, data: dict) -> "InboundMap":
        return cls(node_tag=node_tag, aliases=set(data.get("aliases") or ()),
                   excluded=set(data.get("excluded") or ()))


def hysteria_tags(config_text: str) -> set[str]:
    """Tags of the Hysteria inbounds of an Xray-style JSON config; empty for anything else (the
    node runs its own data plane, so the rest of that config is not used)."""
    try:
        config = json.loads(config_text) if config_text and config_text.strip() else {}
    except ValueError:
        return set()
    inbounds = config.get("inbounds") if isinstance(config, dict) else None
    tags: set[str] = set()
    for inbound in inbounds if isinstance(inbounds, list) else ():
        if isinstance(inbound, dict) and str(inbound.get("protocol", "")).lower() in HYSTERIA_PROTOCOLS:
            tag = inbound.get("tag")
            if isinstance(tag, str) and tag:
                tags.add(tag)
    return tags


@dataclass
class Change:
    """One panel user, converted: ``user`` is None for a removal of ``user_id``."""
    user_id: str
    user: User | None


def convert(messages, inbound_map: InboundMap) -> list[Change]:
    """Check every message (all or nothing) and convert it; raises a 400 naming the first bad one."""
    out: list[Change] = []
    translated: dict[tuple, list[str]] = {}     # users share a few inbound lists: translate each once
    for number, msg in enumerate(messages, 1):
        email = msg.email
        if not email:
            raise bad_request(f"user #{number} has no email")
        if len(email) * 4 > KEY_MAX_BYTES and len(email.encode("utf-8")) > KEY_MAX_BYTES:
            raise bad_request(f"user #{number}: email longer than {KEY_MAX_BYTES} bytes: {email[:80]!r}")
        tags = tuple(msg.inbounds)
        inbounds = translated.get(tags)
        if inbounds is None:
            inbounds = translated[tags] = inbound_map.translate(tags)
        if not inbounds:
            out.append(Change(email, None))
            continue
        secret = msg.proxies.hysteria.auth or None
        out.append(Change(email, User(id=email, auth_secret=secret, inbounds=list(inbounds), source=SOURCE,
                                      meta={"panel_inbounds": list(tags),
                                            "proxies": proxy_credentials(msg.proxies)})))
    return out


def proxy_credentials(proxies) -> dict:
    """The user's credentials of the other protocols, as the inbounds read them
    (``fastpath/inbounds/credentials.py``).  Every protocol gets an entry, empty when the panel
    gave none, so a panel user is never found by a credential derived from its Hysteria auth."""
    return {"vmess": {"id": proxies.vmess.id},
            "vless": {"id": proxies.vless.id, "flow": proxies.vless.flow},
            "trojan": {"password": proxies.trojan.password},
            "shadowsocks": {"password": proxies.shadowsocks.password,
                            "method": proxies.shadowsocks.method}}


def last_wins(changes: list[Change]) -> list[Change]:
    """A delta naming one user twice keeps the later change (a stream of updates)."""
    latest = {c.user_id: c for c in changes}
    return list(latest.values())


def check_full_set(changes: list[Change], existing: list[User]) -> list[User]:
    """The users of a full replacement; refuses ids or secrets that clash with users the panel
    does not own (``existing`` needs to hold at least those), and secrets used twice."""
    ids: set[str] = set()
    for change in changes:
        if change.user_id in ids:
            raise bad_request(f"user {change.user_id!r} appears twice in the user set")
        ids.add(change.user_id)
    users = [c.user for c in changes if c.user is not None]
    foreign_ids = {u.id: u.source for u in existing if u.source != SOURCE}
    foreign_secrets = {u.auth_secret: u.id for u in existing if u.source != SOURCE and u.auth_secret}
    seen: dict[str, str] = {}
    for user in users:
        if user.id in foreign_ids:
            raise refused(f"user id {user.id!r} belongs to a {foreign_ids[user.id]} user of this node")
        secret = user.auth_secret
        if secret:
            if secret in foreign_secrets:
                raise refused(f"user {user.id!r}: its Hysteria auth is already used by another user of this node")
            if secret in seen:
                raise refused(f"users {seen[secret]!r} and {user.id!r} have the same Hysteria auth")
            seen[secret] = user.id
    return users


def check_delta(changes: list[Change], source_of: dict[str, str], owner_of: dict[str, str]) -> None:
    """Refuse a delta that would clash with users outside it.  ``source_of``: id → source of
    the table's users named in the delta; ``owner_of``: secret → id of the table's users holding
    a secret the delta gives out."""
    touched = {c.user_id for c in changes}
    seen: dict[str, str] = {}
    for change in changes:
        source = source_of.get(change.user_id)
        if source is not None and source != SOURCE:
            raise refused(f"user id {change.user_id!r} belongs to a {source} user of this node")
        user = change.user
        if user is None or not user.auth_secret:
            continue
        secret = user.auth_secret
        if secret in seen:
            raise refused(f"users {seen[secret]!r} and {user.id!r} have the same Hysteria auth")
        seen[secret] = user.id
        owner = owner_of.get(secret)
        if owner is not None and owner != user.id and owner not in touched:
            raise refused(f"user {user.id!r}: its Hysteria auth is already used by another user of this node")


class ChunkAssembler:
    """Users of a chunked sync, put together by chunk ``index`` once the ``last`` chunk came.

    Chunks may arrive in any order before the last one; a user named in two chunks keeps the
    change of the higher index.  Missing indexes, an index past the last one, or no users at
    all refuse the whole sync (400) before anything is applied.
    """

    def __init__(self):
        self.chunks: dict[int, list] = {}
        self.last_index: int | None = None

    def add(self, chunk) -> bool:
        """Take one ``UsersChunk``; True once the last one was seen (stop reading)."""
        self.chunks.setdefault(chunk.index, []).extend(chunk.users)
        if chunk.last:
            self.last_index = chunk.index
        return chunk.last

    def users(self) -> list:
        if self.last_index is None:
            raise bad_request("missing final chunk indicator")
        beyond = sorted(i for i in self.chunks if i > self.last_index)
        if beyond:
            raise bad_request(f"chunk index {beyond[0]} comes after the last index {self.last_index}")
        if len(self.chunks) != self.last_index + 1:   # every index is <= last: one is missing
            missing = next(i for i in range(len(self.chunks) + 1) if i not in self.chunks)
            raise bad_request(f"missing chunk index {missing}")
        out: list = []
        for index in range(self.last_index + 1):
            out.extend(self.chunks[index])
        if not out:
            raise bad_request("no users received")
        return out
