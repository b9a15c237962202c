"""Answer bodies of the HY2 SCALE face, as its handlers build them (``users.py``,
``clients.py``, ``proxies.py``, ``node_info.py``, ``topology.py``, ``sessions.py``,
``mesh_api.py``, ``tls_store.py``, ``extras.py``, ``layout.py``, ``backup.py``): the
reference's shapes with this node's values, for the OpenAPI document
(``openapi_doc.RESPONSES``) and its conformance test."""
from __future__ import annotations

from fastpath.control.openapi import (
    ANY_OBJECT, BOOLEAN, INTEGER, NUMBER, STRING, array, map_of, nullable, obj,
)
from fastpath.control.hy2scale.ui_settings import KINDS

STRINGS = array(STRING)
EXIT_MODE = {"type": "string", "enum": ["", "direct", "quality", "aggregate"]}
OK = obj({"status": {"const": "ok"}})
OK_ID = obj({"status": {"const": "ok"}, "id": STRING})

USER = obj({
    "id": STRING, "username": STRING, "password": STRING, "exit_via": STRING, "exit_paths": STRINGS,
    "exit_mode": EXIT_MODE, "traffic_limit": INTEGER, "traffic_limit_gb": NUMBER,
    "expiry": {"type": "string", "description": "ISO 8601, \"\" = never"},
    "expiry_date": {"type": "string", "description": "YYYY-MM-DD, \"\" = never"},
    "enabled": BOOLEAN, "created": STRING, "traffic_used": INTEGER, "online": INTEGER,
}, description="a user of another face is listed under its id with no password and no exit")
DELETED_USER = obj({"ok": {"const": True}, "id": STRING})
LOGIN = obj({"token": {"type": "string", "pattern": "^[0-9a-f]{64}$"}, "force_password_change": BOOLEAN})
PASSWORD = obj({"ok": {"const": True}, "username": STRING, "force_password_change": BOOLEAN,
                "message": STRING})
BUILD_ID = obj({"build_id": STRING})
NAME_VERSION = obj({"name": STRING, "version": STRING})
BUILD_INFO = obj({"version": STRING, "license": STRING, "repository": STRING, "python": STRING,
                  "go_deps": array(ANY_OBJECT), "python_deps": array(NAME_VERSION),
                  "natives": array(obj({"name": STRING, "file": STRING}))})
_UI = {k: {str: STRING, bool: BOOLEAN, int: INTEGER}[kind] for k, kind in KINDS.items()}
UI_SETTINGS = obj(_UI)
UI_SETTINGS_PUT = obj({**_UI, "status": {"const": "ok"}, "note": STRING, "applied": STRINGS,
                       "not_applicable": map_of(STRING), "ignored": STRINGS})
PORT_ENTRY = obj({"port": INTEGER, "proto": {"type": "string", "enum": ["", "tcp", "udp"]}, "desc": STRING})
CHECK_PORTS = obj({"conflicts": array(PORT_ENTRY), "results": map_of(BOOLEAN)})
_PEER_COMMON = {"name": STRING, "direction": STRING, "exit_node": BOOLEAN, "connected": BOOLEAN,
                "disabled": BOOLEAN, "nested": BOOLEAN, "native": BOOLEAN, "version": STRING,
                "latency_ms": INTEGER, "tx_rate": INTEGER, "rx_rate": INTEGER, "max_rate": INTEGER,
                "is_self": BOOLEAN, "children": array(ANY_OBJECT), "addr": STRING}
TOPOLOGY = array({"anyOf": [
    obj({**_PEER_COMMON, "node_id": STRING, "display_name": STRING}, description="this node (first)"),
    obj({**_PEER_COMMON, "addrs": STRINGS}, optional={"error": STRING}, description="an outbound peer"),
]})
STATS = obj({"tx_bytes": INTEGER, "rx_bytes": INTEGER, "tx_rate": INTEGER, "rx_rate": INTEGER,
             "conns": INTEGER, "exit_clients": INTEGER})
CONFLICTS = obj({}, extra=True, description="users sharing a password per inbound: always {} here")
SS_TAB = obj({"listen": STRING, "enabled": BOOLEAN, "method": STRING, "capable": BOOLEAN},
             optional={"managed_by": {"type": "string", "enum": ["config", "api"]}, "tag": STRING,
                       "reason": STRING, "exit_via": STRING, "exit_paths": STRINGS, "exit_mode": EXIT_MODE})
SYSTEM_ARCH = obj({"os": STRING, "arch": STRING, "version": STRING, "binary": STRING, "in_docker": BOOLEAN,
                   "python": STRING})
RESOLVE = obj({"name": STRING, "exit_via": STRING, "ips": STRINGS}, optional={"error": STRING})
PEER_HEALTH = obj({"peers": array(obj({
    "name": STRING, "direction": STRING, "connected": BOOLEAN, "disabled": BOOLEAN, "latency_ms": INTEGER,
    "tx_bytes": INTEGER, "rx_bytes": INTEGER, "streams": INTEGER, "error": STRING}))})
PEER_REBINDS = obj({"peers": array(obj({"name": STRING, "direction": STRING, "rebind_checks": {"const": 0}}))})
PEER_LATENCY = obj({"peers": array(obj({"name": STRING, "direction": STRING, "latency_ms": INTEGER,
                                        "history": array(NUMBER)}))})
PROXY = obj({"id": STRING, "protocol": STRING, "listen": STRING, "enabled": BOOLEAN, "tls_cert": STRING,
             "method": STRING, "exit_via": STRING, "exit_paths": STRINGS, "exit_mode": EXIT_MODE,
             "managed_by": {"type": "string", "enum": ["config", "api"]}},
            optional={"auth": {}}, extra=True,
            description="a listener of the node config (managed_by config) or of this API")
CERT = obj({"id": STRING, "name": STRING, "subject": STRING, "issuer": STRING,
            "not_after": {"type": "string", "format": "date"}, "is_ca": BOOLEAN, "cert_file": STRING},
           optional={"key_file": STRING, "ca_parent_id": STRING})
CERT_DONE = obj({**CERT["properties"], "status": {"const": "ok"}},
                optional={"key_file": STRING, "ca_parent_id": STRING})
CERT_DONE["required"] = [*CERT["required"], "status"]
PEM = obj({"cert": STRING, "key": {"const": ""}, "has_key": BOOLEAN})
RULE = obj({"id": STRING, "name": STRING, "type": {"type": "string", "enum": ["ip", "domain"]},
            "targets": STRINGS, "exit_via": STRING, "exit_paths": STRINGS, "exit_mode": EXIT_MODE,
            "enabled": BOOLEAN, "priority": INTEGER, "use_tun": BOOLEAN})
RULES = obj({"available": {"const": True}, "rules": array(RULE)})
NESTED_PEERS = array(ANY_OBJECT, description="the peers nested discovery found below the client")
INTERNAL_PEERS = array(ANY_OBJECT, description="this node's peer list as other nodes fetch it")
MESH_PATHS = obj({"workers": array(ANY_OBJECT)}, description="per worker: probed exit paths")
DEVICE = obj({"key": STRING, "username": STRING, "user_id": STRING, "remote_ip": STRING,
              "protocol": STRING, "connect_at": STRING, "duration": INTEGER, "conn_count": INTEGER,
              "tx_bytes": INTEGER, "rx_bytes": INTEGER})
SESSIONS = obj({"devices": array(DEVICE), "total": INTEGER})
SESSION_CLOSED = obj({"ok": {"const": True}, "key": STRING, "closed": INTEGER, "refused_for": NUMBER})
SERVER = obj({"listen": STRING, "password": STRING, "tls_cert": STRING, "tls_key": STRING})
NODE = obj({"node_id": STRING, "name": STRING, "exit_node": BOOLEAN, "hy2_user_auth": BOOLEAN,
            "compat": BOOLEAN, "limited": BOOLEAN, "server": SERVER,
            "server_effective": obj({"listen": STRING, "tls_cert": STRING, "tls_key": STRING}),
            "version": STRING, "tx_bytes": INTEGER, "rx_bytes": INTEGER})
NODE_TRAFFIC = obj({"tx_bytes": INTEGER, "rx_bytes": INTEGER})
LAYOUT = obj({"positions": map_of(obj({"x": NUMBER, "y": NUMBER}, extra=True))})
EVENTS = {"type": "string", "description": "text/event-stream: `data: {positions}` on connect and "
                                           "after every change, `: ping` between"}
CLIENT = obj({
    "name": STRING, "addr": nullable(STRING), "addrs": STRINGS, "password": {"type": "string", "description": "masked"},
    "sni": nullable(STRING), "insecure": nullable(BOOLEAN), "ca": nullable(STRING), "max_tx": INTEGER,
    "max_rx": INTEGER, "disabled": BOOLEAN, "init_stream_window": INTEGER, "max_stream_window": INTEGER,
    "init_conn_window": INTEGER, "max_conn_window": INTEGER, "fast_open": BOOLEAN,
    "bbr_profile": STRING, "conn_mode": STRING,
    "not_applied": {**STRINGS, "description": "the fields stored but not applied by this node"}})
DELETED_CLIENT = obj({"ok": {"const": True}, "name": STRING})
PEERS = array({"anyOf": [
    obj({"name": STRING, "direction": {"const": "local"}, "latency_ms": {"const": 0}, "is_self": {"const": True}}),
    obj({"name": STRING, "direction": {"const": "outbound"}, "connected": BOOLEAN,
         "latency_ms": nullable(NUMBER), "nested": BOOLEAN, "version": STRING, "tx_rate": INTEGER,
         "rx_rate": INTEGER, "children": array(ANY_OBJECT), "disabled": BOOLEAN, "addr": STRING},
        optional={"error": STRING}),
]})
BACKUP = obj({"format": STRING, "version": INTEGER, "created": STRING, "users": array(ANY_OBJECT),
              "node": ANY_OBJECT, "ui": ANY_OBJECT, "layout": obj({"positions": ANY_OBJECT}),
              "clients": array(ANY_OBJECT), "rules": array(ANY_OBJECT), "peers": ANY_OBJECT,
              "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"}})
RESTORED = obj({"ok": {"const": True}, "users": INTEGER, "clients": INTEGER})
NOT_SUPPORTED = obj({"error": STRING, "message": STRING, "capable": {"const": False}},
                    description="501: what is missing here (the reference UI shows error)")


# -- request bodies: what each handler reads (``extra``: keys it ignores are allowed) --------
SHA256 = {"type": "string", "pattern": "^[0-9a-fA-F]{64}$", "description": "hex SHA-256 of the password"}
NSTRING = nullable(STRING)
PASSWORD_BODY = obj({"current_password": SHA256},
                    optional={"new_username": NSTRING, "new_password": nullable(SHA256)},
                    description="new_username, new_password or both")
UI_BODY = {"type": "object", "properties": {k: nullable(s) for k, s in _UI.items()},
           "description": "the keys to change (null: not given); unknown keys are ignored"}
_PORT_ITEM = {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 65535},
                        obj({"port": {"type": "integer", "minimum": 1, "maximum": 65535}},
                            optional={"proto": {"type": ["string", "null"], "enum": ["", "tcp", "udp", None]},
                                      "desc": NSTRING})]}
CHECK_PORTS_BODY = {"anyOf": [array(_PORT_ITEM, maxItems=256),
                              obj({"ports": array(_PORT_ITEM, maxItems=256)})]}
_EXITS = {"exit_via": NSTRING, "exit_paths": nullable(STRINGS), "exit_mode": NSTRING}
SS_BODY = {"type": "object", "properties": {"listen": NSTRING, "enabled": nullable(BOOLEAN),
                                            "method": NSTRING, **_EXITS}}
PROXY_BODY = {"type": "object", "properties": {
    "id": NSTRING, "protocol": {"type": ["string", "null"], "enum": ["", "socks5", "http", "shadowsocks", None]},
    "listen": {"type": ["string", "null"], "description": "host:port (required to create)"},
    "tls_cert": NSTRING, "method": NSTRING, "enabled": nullable(BOOLEAN), **_EXITS}}
_CERT_ID = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"}
_DAYS = {"type": ["integer", "null"], "minimum": 0}
TLS_IMPORT_BODY = obj({"id": _CERT_ID, "cert": {"type": "string", "description": "PEM"}},
                      optional={"name": NSTRING, "key": {"type": ["string", "null"],
                                                         "description": "PEM; must match the certificate"}},
                      extra=True)
TLS_IMPORT_PATH_BODY = obj({"id": _CERT_ID, "cert_path": STRING},
                           optional={"name": NSTRING, "key_path": NSTRING}, extra=True,
                           description="paths inside the data dir's tls-import/ or the allowed directories")
TLS_GENERATE_BODY = obj({"id": _CERT_ID, "domains": array(STRING, minItems=1)},
                        optional={"name": NSTRING, "days": _DAYS, "is_ca": nullable(BOOLEAN)}, extra=True)
TLS_SIGN_BODY = obj({"ca_id": _CERT_ID, "id": _CERT_ID, "cn": STRING},
                    optional={"name": NSTRING, "days": _DAYS}, extra=True)
RULE_BODY = {"type": "object", "required": ["type", "targets"], "properties": {
    "id": NSTRING, "name": STRING, "type": {"type": "string", "enum": ["ip", "domain"]},
    "targets": STRINGS, **_EXITS, "enabled": BOOLEAN, "priority": nullable(INTEGER)},
    "description": "exit_via or exit_paths is required; unknown keys are ignored"}
ENABLED_BODY = obj({"enabled": BOOLEAN}, extra=True)
TOGGLE_BODY = {"type": "object", "properties": {"enabled": nullable(BOOLEAN)},
               "description": "the state wanted; no body (or null) flips it"}
DISABLED_BODY = obj({"disabled": BOOLEAN}, extra=True)
NODE_BODY = {"type": "object", "additionalProperties": False, "properties": {
    "name": STRING, "exit_node": BOOLEAN, "hy2_user_auth": BOOLEAN, "compat": BOOLEAN, "limited": BOOLEAN,
    "server": {"type": "object", "additionalProperties": False,
               "properties": {k: STRING for k in ("listen", "password", "tls_cert", "tls_key")}},
    **{k: {"description": "read-only: echoed back from GET, ignored"}
       for k in ("node_id", "version", "server_effective", "tx_bytes", "rx_bytes")}}}
RESTORE_BODY = obj({"format": {"const": "fastpath-hy2scale-backup"}, "version": {"enum": [1, 2, 3]},
                    "users": array(ANY_OBJECT), "node": ANY_OBJECT, "ui": ANY_OBJECT, "layout": ANY_OBJECT},
                   optional={"sha256": STRING, "clients": array(ANY_OBJECT), "rules": array(ANY_OBJECT),
                             "peers": ANY_OBJECT, "created": STRING}, extra=True,
                   description="a document of GET /backup, whole")
