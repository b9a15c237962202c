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


def test_a_listener_with_paths_and_a_mode_routes_as_a_user_would(tmp_path):
    """A HY2 SCALE proxy row's exit_paths / exit_mode become the listener's route, multi-hop
    paths included; the prober probes the paths of a listener's quality route."""
    from fastpath.inbounds.live import proxy_settings
    from fastpath.store.proxy_listeners import replace_proxy_listeners
    users = SimpleNamespace(by_id={"u1": SimpleNamespace(meta={"exit_via": "b"})})
    mesh = _mesh(tmp_path, users=users)
    row = {"id": "p", "protocol": "socks5", "listen": "127.0.0.1:1080", "enabled": True,
           "exit_via": "b/c", "exit_paths": ["b/c", "d"], "exit_mode": "quality"}
    core = InboundCore(proxy_settings(row, tmp_path), users, None, mesh)
    assert core.route_of("u1", "1.2.3.4") == (("b/c", "d"), "quality")
    one = InboundCore(proxy_settings({**row, "exit_paths": ["b/c"], "exit_mode": ""}, tmp_path), users, None, mesh)
    assert one.route_of("u1", "1.2.3.4") == (("b/c",), "")
    assert mesh.probed_paths() == set()
    assert replace_proxy_listeners(mesh.store, [row])
    assert mesh.probed_paths() == {"b/c", "d"}
    assert replace_proxy_listeners(mesh.store, [{**row, "enabled": False}])
    assert mesh.probed_paths() == set()


def test_direct_egress_routes_nothing_and_fails_closed():
    assert DIRECT.exit_of("u1", "example.com") is None
    assert DIRECT.exit_of("u1", "example.com", via="b") == (("b",), "")
    with pytest.raises(OSError):
        asyncio.run(DIRECT.open_socket((("b",), ""), "example.com:80", None))
