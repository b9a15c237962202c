"""The HY2 SCALE face: a compatible REST API under ``/scale/api/`` on the control port.

It adapts the reference's routes onto the one node model: its users are rows of the node's
user table (``users.py``), its sessions are read from the shared-memory connection slots
(``sessions.py``), its settings, tokens, layout and clients (outbound peers, ``clients.py``;
the peer list, ``peers.py``) are settings rows of the state store.  Auth:
``auth.py``; what is not supported answers 501 from one table (``unsupported.py``).
Config: the optional ``scale`` section (``config.py``).
"""
from __future__ import annotations

import falcon

from fastpath.control.hy2scale import unsupported
from fastpath.control.hy2scale.auth import Auth, Login, Password, scale_rule
from fastpath.control.hy2scale.backup import Backup, Restore
from fastpath.control.hy2scale.clients import ClientBook, ClientDisable, ClientItem, Clients
from fastpath.control.hy2scale.extras import (
    DiagPeers,
    DiagResolve,
    Shadowsocks,
    SystemArch,
    UserConflicts,
)
from fastpath.control.hy2scale.face import BASE, ScaleFace
from fastpath.control.hy2scale.layout import Layout, LayoutStream
from fastpath.control.hy2scale.mesh_api import (
    InternalPeers,
    MeshPaths,
    PeerPaths,
    RuleBook,
    Rules,
    RuleItem,
    RuleToggle,
)
from fastpath.control.hy2scale.node_info import (
    BuildId,
    BuildInfo,
    CheckPorts,
    Node,
    NodeSettings,
    NodeTraffic,
    UiSettings,
)
from fastpath.control.hy2scale.openapi_doc import document
from fastpath.control.hy2scale.peers import Peers
from fastpath.control.hy2scale.remote import PREFIX as REMOTE_PREFIX, RemoteProxy
from fastpath.control.hy2scale.proxies import Proxies, ProxyBook, ProxyItem, ShadowsocksTab
from fastpath.control.hy2scale.sessions import Devices, SessionItem, Sessions
from fastpath.control.hy2scale.tls_store import TlsAction, TlsItem, TlsList, TlsPem, TlsStore
from fastpath.control.hy2scale.topology import Stats, Topology
from fastpath.control.hy2scale.users import (
    UserBook,
    UserItem,
    UserResetTraffic,
    Users,
    UserToggle,
)


def register(app: falcon.App, node):
    face = ScaleFace(node)
    if not face.settings.enabled:
        return None
    auth = Auth(face)
    node.admin_sessions.append(auth.session_opens_node)
    book = UserBook(face)
    devices = Devices(face, book.cache)
    node_settings = NodeSettings(face)
    layout = Layout(face)
    clients = ClientBook(face)
    proxies = ProxyBook(face, clients)
    tls = TlsStore(node.config.data_dir)
    rules = RuleBook(face)
    topology = Topology(clients, node_settings)
    routes = {
        "/login": Login(auth),
        "/settings/password": Password(auth),
        "/users": Users(book),
        "/users/conflicts": UserConflicts(),     # before /users/{user_id}: falcon prefers it
        "/users/{user_id}": UserItem(book),
        "/users/{user_id}/toggle": UserToggle(book),
        "/users/{user_id}/reset-traffic": UserResetTraffic(book),
        "/sessions": Sessions(devices),
        "/sessions/{key}": SessionItem(devices),
        "/node": Node(node_settings),
        "/node/traffic": NodeTraffic(face),
        "/build-id": BuildId(),
        "/build-info": BuildInfo(),
        "/settings/ui": UiSettings(face),
        "/check-ports": CheckPorts(),
        "/settings/check-ports": CheckPorts(),
        "/graph-layout": layout,
        "/graph-layout/stream": LayoutStream(layout, auth),
        "/clients": Clients(clients),
        "/clients/{name}": ClientItem(clients),
        "/clients/{name}/disable": ClientDisable(clients),
        "/peers": Peers(clients, node_settings),
        "/topology": topology,
        "/stats": Stats(face),
        "/ss": ShadowsocksTab(proxies, Shadowsocks(face)),
        "/system/arch": SystemArch(),
        "/diag/resolve": DiagResolve(clients),
        "/diag/peer-health": DiagPeers(clients, "health"),
        "/diag/peer-rebinds": DiagPeers(clients, "rebinds"),
        "/diag/peer-latency": DiagPeers(clients, "latency"),
        "/proxies": Proxies(proxies),
        "/proxies/{proxy_id}": ProxyItem(proxies),
        "/rules": Rules(rules),
        "/rules/{rule_id}": RuleItem(rules),
        "/rules/{rule_id}/toggle": RuleToggle(rules),
        "/peers/{rest:path}": PeerPaths(face, topology),
        "/internal/peers": InternalPeers(face),
        "/diag/paths": MeshPaths(face),
        "/tls": TlsList(tls),
        "/tls/import": TlsAction(tls, "import_pem"),
        "/tls/import-path": TlsAction(tls, "import_path"),
        "/tls/generate": TlsAction(tls, "generate"),
        "/tls/sign": TlsAction(tls, "sign"),
        "/tls/{cert_id}": TlsItem(tls),
        "/tls/{cert_id}/pem": TlsPem(tls),
        "/backup": Backup(face, node_settings),
        "/restore": Restore(face, node_settings),
    }
    for path, resource in routes.items():
        app.add_route(BASE + path, resource)
    remote = RemoteProxy(face)          # a peer's UI through the mesh: outside /scale/api
    app.add_route(REMOTE_PREFIX, remote)
    app.add_route(REMOTE_PREFIX + "/{rest:path}", remote)
    document(node.openapi)
    unsupported.register(app, node.openapi)
    return scale_rule(auth)
