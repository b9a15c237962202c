"""The one egress seam: the worker's MeshEgress is the Egress the Hysteria 2 server and the
proxy inbounds are given, and its route lookup is the same for both (a rule wins, then the
listener's exit_via, then the user's exit)."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from fastpath.inbounds.config import InboundSettings
from fastpath.inbounds.node_proxies import InboundCore
from fastpath.mesh.egress import RULES_KEY, MeshEgress
from fastpath.store import StateStore
from fastpath.worker.egress import DIRECT, Egress


def _mesh(tmp_path, rules=(), users=None):
    store = StateStore(tmp_path / "state.db")
    store.set_setting(RULES_KEY, list(rules))
    return MeshEgress(store, peers=None, users=users)


def test_the_mesh_is_the_egress_and_rules_win(tmp_path):
    users = SimpleNamespace(by_id={"u1": SimpleNamespace(meta={"exit_via": "b"}),
                                   "u2": SimpleNamespace(meta={})})
    mesh = _mesh(tmp_path, [{"id": "r", "type": "domain", "targets": ["example.com"],
                             "exit_paths": ["c/d"], "enabled": True}], users)
    assert isinstance(mesh, Egress)
    assert mesh.exit_of("u1", "1.2.3.4") == (("b",), "")
    assert mesh.exit_of("u2", "1.2.3.4") is None
    assert mesh.exit_of("u2", "www.example.com") == (("c/d",), "")
    assert mesh.exit_of("u1", "www.example.com") == (("c/d",), "")      # the rule wins
    assert mesh.exit_of("u2", "1.2.3.4", via="e") == (("e",), "")       # the listener's exit
    assert mesh.exit_of("u1", "example.com", via="e") == (("c/d",), "")

    core = InboundCore(InboundSettings("socks", ("127.0.0.1", 1080), "s", exit_via="e"), users,
                       None, mesh)
    assert core.route_of("u1", "1.2.3.4") == (("e",), "")
    assert core.route_of("u1", "example.com") == (("c/d",), "")
    assert InboundCore(InboundSettings("socks", ("127.0.0.1", 1080), "s"), users, None,
                       mesh).route_of("u1", "1.2.3.4") == (("b",), "")


def test_direct_egress_routes_nothing_and_fails_closed():
    assert DIRECT.exit_of("u1", "example.com") is None
    assert DIRECT.exit_of("u1", "example.com", via="b") == (("b",), "")
    with pytest.raises(OSError):
        asyncio.run(DIRECT.open_socket((("b",), ""), "example.com:80", None))
