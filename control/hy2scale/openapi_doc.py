"""The face's entries in the node's OpenAPI document (tag ``hy2scale``).

Its routes use the face's own tokens (``POST /scale/api/login``), declared as the security
scheme ``hy2scale`` rather than the node's bearer token."""
from __future__ import annotations

from fastpath.control.openapi import path_param, query
from fastpath.control.hy2scale import schemas as S

TAG = "hy2scale"
# The shapes answers share, named once in the document (``document`` registers them).
USER_VIEW_REF = {"$ref": "#/components/schemas/Hy2ScaleUserView"}
CLIENT_VIEW_REF = {"$ref": "#/components/schemas/Hy2ScaleClientView"}
PROXY_REF = {"$ref": "#/components/schemas/Hy2ScaleProxy"}
CERT_REF = {"$ref": "#/components/schemas/Hy2ScaleCertificate"}
B = "/scale/api"

USER = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "pattern": "^[0-9a-f]{8}$", "readOnly": True},
        "username": {"type": "string"}, "password": {"type": "string"},
        "exit_via": {"type": "string", "description": "the first of exit_paths (alone: the one path)"},
        "exit_paths": {"type": "array", "items": {"type": "string"},
                       "description": "paths of the mesh (b or b/c/...), each starting at an enabled client"},
        "exit_mode": {"type": "string", "enum": ["", "direct", "quality", "aggregate"],
                      "description": "with several paths: quality or aggregate"},
        "traffic_limit": {"type": "integer", "minimum": 0, "description": "bytes (tx+rx), 0 = unlimited"},
        "traffic_limit_gb": {"type": "number", "minimum": 0, "description": "GiB; wins over traffic_limit"},
        "traffic_used": {"type": "integer", "readOnly": True},
        "expiry": {"type": ["string", "number", "null"], "description": "ISO 8601, unix seconds, \"\" = never"},
        "expiry_date": {"type": "string", "description": "YYYY-MM-DD (00:00 UTC); wins over expiry"},
        "enabled": {"type": "boolean"},
        **{k: {"description": "read-only: echoed back from a listing, ignored"}
           for k in ("online", "created", "tx_bytes", "rx_bytes")},
    },
    "additionalProperties": False,
}
CLIENT = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$"},
        "addr": {"type": "string", "description": "host:port of the peer's Hysteria 2 listener"},
        "addrs": {"type": "array", "items": {"type": "string"}, "description": "tried in order when addr fails"},
        "password": {"type": "string", "description": "Hysteria 2 auth; masked in answers"},
        "sni": {"type": "string"}, "insecure": {"type": "boolean"},
        "ca": {"type": "string", "description": "CA certificate(s) of the peer as PEM text; a file path only inside scale.caDir"},
        "max_tx": {"type": "integer", "minimum": 0, "description": "bytes/s (the reference UI sends Mbit/s x 125000), 0 = not announced"},
        "max_rx": {"type": "integer", "minimum": 0, "description": "bytes/s, 0 = not announced"},
        "disabled": {"type": "boolean"},
        "init_stream_window": {"type": "integer", "minimum": 0, "description": "stored, not applied yet"},
        "max_stream_window": {"type": "integer", "minimum": 0, "description": "stored, not applied yet"},
        "init_conn_window": {"type": "integer", "minimum": 0, "description": "stored, not applied yet"},
        "max_conn_window": {"type": "integer", "minimum": 0, "description": "stored, not applied yet"},
        "fast_open": {"type": "boolean", "description": "stored, not applied yet"},
        "bbr_profile": {"type": "string", "enum": ["", "standard", "conservative", "aggressive"],
                        "description": "stored, no counterpart here"},
        "conn_mode": {"type": "string", "enum": ["", "quality", "aggregate"], "description": "stored, no counterpart here"},
        **{k: {"description": "read-only: echoed back from a listing, ignored"}
           for k in ("connected", "latency_ms", "not_applied")},
    },
    "additionalProperties": False,
}
LOGIN = {"type": "object", "required": ["username", "password"],
         "properties": {"username": {"type": "string"},
                        "password": {"type": "string", "description": "hex SHA-256 of the password"}}}
LAYOUT = {"type": "object", "properties": {"positions": {"type": "object", "additionalProperties": {
    "type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}}}}}}

ROUTES = [
    ("POST", "/login", "Log in: {token, force_password_change} (10 failures per address and 5 min, then 429)",
     LOGIN, False, []),
    ("GET", "/build-id", "Build id (public)", None, False, []),
    ("GET", "/build-info", "Version, Python dependencies, compiled modules", None, True, []),
    ("PUT", "/settings/password", "Change admin username/password (SHA-256 hex); revokes every token",
     S.PASSWORD_BODY, True, []),
    ("GET", "/settings/ui", "The reference's UI settings document (listen, session_timeout_h, nested limits, "
     "dns_resolver_*...)", None, True, []),
    ("PUT", "/settings/ui", "Change the given keys; unknown keys ignored; answer says applied/not_applicable",
     S.UI_BODY, True, []),
    ("POST", "/check-ports", "Ports in use: [{port, proto, desc}] or {ports: [...]} -> {conflicts, results}",
     S.CHECK_PORTS_BODY, True, []),
    ("GET", "/topology", "This node (local, inbound peers as children), then each outbound peer "
     "(addr, addrs, connected, latency_ms, tx_rate, rx_rate, max_rate in B/s)", None, True, []),
    ("GET", "/stats", "{tx_bytes, rx_bytes, tx_rate, rx_rate, conns, exit_clients}", None, True, []),
    ("GET", "/users/conflicts", "Users sharing a password on a password-only inbound ({} here)", None, True, []),
    ("GET", "/ss", "The Shadowsocks tab {listen, enabled, method}: the config's inbound, else proxy 'ss'",
     None, True, []),
    ("PUT", "/ss", "Change the tab's listener (proxy 'ss', live); 501 when the config sets it",
     S.SS_BODY, True, []),
    ("GET", "/system/arch", "{os, arch, version, binary, in_docker}", None, True, []),
    ("GET", "/diag/resolve", "Resolve ?name= with the node's resolver: {name, exit_via, ips[, error]}", None, True, []),
    ("GET", "/diag/peer-health", "{peers: [...]} per outbound peer", None, True, []),
    ("GET", "/diag/peer-rebinds", "{peers: [...]} (no rebind probes here: 0)", None, True, []),
    ("GET", "/diag/peer-latency", "{peers: [...]} current latency_ms", None, True, []),
    ("GET", "/proxies", "Proxy listeners: the node config's (managed_by config), then the API's", None, True, []),
    ("POST", "/proxies", "Create {id?, protocol: socks5|http|shadowsocks, listen, enabled, method?, tls_cert?, "
     "exit_via?}; started live in every worker (409 if a worker cannot bind it)", S.PROXY_BODY, True, []),
    ("GET", "/proxies/{proxy_id}", "One proxy listener", None, True, ["proxy_id"]),
    ("PUT", "/proxies/{proxy_id}", "Change the given fields (moved/enabled/disabled live); creates it if missing",
     S.PROXY_BODY, True, ["proxy_id"]),
    ("DELETE", "/proxies/{proxy_id}", "Stop and remove a proxy listener", None, True, ["proxy_id"]),
    ("GET", "/tls", "Stored certificates {id, name, subject, issuer, not_after, is_ca, key_file?}", None, True, []),
    ("POST", "/tls/import", "Import {id, name, cert, key?} (PEM; the key must match)", S.TLS_IMPORT_BODY, True, []),
    ("POST", "/tls/import-path", "Import {id, name, cert_path, key_path?} from the allowed directories",
     S.TLS_IMPORT_PATH_BODY, True, []),
    ("POST", "/tls/generate", "Self-signed {id, name, domains[], days?, is_ca?}", S.TLS_GENERATE_BODY, True, []),
    ("POST", "/tls/sign", "Issue {ca_id, id, name, cn, days?} from a stored CA", S.TLS_SIGN_BODY, True, []),
    ("GET", "/tls/{cert_id}/pem", "{cert, key: \"\", has_key}: keys never leave the node", None, True, ["cert_id"]),
    ("DELETE", "/tls/{cert_id}", "Delete a stored certificate and its key", None, True, ["cert_id"]),
    ("GET", "/rules", "{available: true, rules}: routing rules by CIDR/range or domain suffix", None, True, []),
    ("POST", "/rules", "Add {id?, name, type: ip|domain, targets[], exit_via|exit_paths, exit_mode, enabled, "
     "priority}", S.RULE_BODY, True, []),
    ("GET", "/rules/{rule_id}", "One rule", None, True, ["rule_id"]),
    ("PUT", "/rules/{rule_id}", "Replace a rule (checked whole first)", S.RULE_BODY, True, ["rule_id"]),
    ("DELETE", "/rules/{rule_id}", "Delete a rule", None, True, ["rule_id"]),
    ("PUT", "/rules/{rule_id}/toggle", "{enabled: bool}", S.ENABLED_BODY, True, ["rule_id"]),
    ("PUT", "/peers/{path}/nested", "{enabled}: publish/fetch the peers below a client (b) or a node below "
     "one (b/c)", S.ENABLED_BODY, True, ["path"]),
    ("PUT", "/peers/{path}/disable", "Not supported (501): disable the client instead "
     "(PUT /clients/{name}/disable)", None, True, ["path"]),
    ("GET", "/peers/{path}/peers", "What nested discovery found below a client", None, True, ["path"]),
    ("GET", "/internal/peers", "This node's peer list for other nodes; needs the node password "
     "(Bearer or Basic)", None, False, []),
    ("GET", "/diag/paths", "Probed exit paths per worker: healthy, latency_ms, opened, probes", None, True, []),
    ("GET", "/users", "List users with live traffic_used", None, True, []),
    ("POST", "/users", "Create a user (Hysteria 2 auth: username:password)", USER, True, []),
    ("GET", "/users/{user_id}", "One user", None, True, ["user_id"]),
    ("PUT", "/users/{user_id}", "Change the given fields of a user", USER, True, ["user_id"]),
    ("DELETE", "/users/{user_id}", "Delete a user", None, True, ["user_id"]),
    ("PUT", "/users/{user_id}/toggle", "Enable/disable (a disabled user is cut off at once)", S.TOGGLE_BODY,
     True, ["user_id"]),
    ("PUT", "/users/{user_id}/reset-traffic", "Restart the count toward the traffic limit", None, True, ["user_id"]),
    ("GET", "/sessions", "Connected devices (user, remote ip, protocol): {devices, total}", None, True, []),
    ("DELETE", "/sessions/{key}", "Close a device's connections and refuse it for 60 s", None, True, ["key"]),
    ("GET", "/node", "Node identity, stored and effective server settings, traffic totals", None, True, []),
    ("PUT", "/node", "Change the given node fields", S.NODE_BODY, True, []),
    ("GET", "/node/traffic", "Traffic totals {tx_bytes, rx_bytes}", None, True, []),
    ("GET", "/graph-layout", "The graph layout {positions}", None, True, []),
    ("PUT", "/graph-layout", "Replace the graph layout", LAYOUT, True, []),
    ("GET", "/graph-layout/stream", "SSE: the layout on connect and after every change; ?token= accepted",
     None, True, []),
    ("GET", "/clients", "Outbound peers (passwords masked)", None, True, []),
    ("POST", "/clients", "Add an outbound peer; workers dial it without a restart", CLIENT, True, []),
    ("GET", "/clients/{name}", "One outbound peer", None, True, ["name"]),
    ("PUT", "/clients/{name}", "Change the given fields (409 to rename one that is a user's exit)", CLIENT,
     True, ["name"]),
    ("DELETE", "/clients/{name}", "Remove an outbound peer (409 while a user exits through it)", None, True,
     ["name"]),
    ("PUT", "/clients/{name}/disable", "{disabled: bool}; users exiting through it then fail, never go direct",
     S.DISABLED_BODY, True, ["name"]),
    ("GET", "/peers", "This node, then each client: connected, latency_ms, tx_rate, rx_rate (B/s)",
     None, True, []),
    # The reference UI sends some changes as POST: the same resources answer both.
    ("POST", "/settings/check-ports", "Same as POST /check-ports (the path the UI's settings page uses)",
     S.CHECK_PORTS_BODY, True, []),
    ("POST", "/users/{user_id}/toggle", "Same as PUT", S.TOGGLE_BODY, True, ["user_id"]),
    ("POST", "/users/{user_id}/reset-traffic", "Same as PUT", None, True, ["user_id"]),
    ("POST", "/clients/{name}/disable", "Same as PUT", S.DISABLED_BODY, True, ["name"]),
    ("GET", "/backup", "The face's state as a JSON document with a SHA-256", None, True, []),
    ("POST", "/restore", "Restore a backup: all checked first, applied in one transaction",
     S.RESTORE_BODY, True, []),
]


# The success answer of each route: its schema (a 200 of JSON), or (status, schema), or
# (media type, schema).  A route missing here stops the app from being built.
RESPONSES = {
    ("POST", "/login"): S.LOGIN, ("GET", "/build-id"): S.BUILD_ID, ("GET", "/build-info"): S.BUILD_INFO,
    ("PUT", "/settings/password"): S.PASSWORD, ("GET", "/settings/ui"): S.UI_SETTINGS,
    ("PUT", "/settings/ui"): S.UI_SETTINGS_PUT, ("POST", "/check-ports"): S.CHECK_PORTS,
    ("POST", "/settings/check-ports"): S.CHECK_PORTS, ("GET", "/topology"): S.TOPOLOGY,
    ("GET", "/stats"): S.STATS, ("GET", "/users/conflicts"): S.CONFLICTS, ("GET", "/ss"): S.SS_TAB,
    ("PUT", "/ss"): {"anyOf": [S.OK, S.SS_TAB]}, ("GET", "/system/arch"): S.SYSTEM_ARCH,
    ("GET", "/diag/resolve"): S.RESOLVE, ("GET", "/diag/peer-health"): S.PEER_HEALTH,
    ("GET", "/diag/peer-rebinds"): S.PEER_REBINDS, ("GET", "/diag/peer-latency"): S.PEER_LATENCY,
    ("GET", "/proxies"): S.array(PROXY_REF), ("POST", "/proxies"): S.OK_ID,
    ("GET", "/proxies/{proxy_id}"): PROXY_REF, ("PUT", "/proxies/{proxy_id}"): S.OK_ID,
    ("DELETE", "/proxies/{proxy_id}"): S.OK, ("GET", "/tls"): S.array(CERT_REF),
    ("POST", "/tls/import"): S.CERT_DONE, ("POST", "/tls/import-path"): S.CERT_DONE,
    ("POST", "/tls/generate"): S.CERT_DONE, ("POST", "/tls/sign"): S.CERT_DONE,
    ("GET", "/tls/{cert_id}/pem"): S.PEM, ("DELETE", "/tls/{cert_id}"): S.OK_ID,
    ("GET", "/rules"): S.RULES, ("POST", "/rules"): S.OK_ID, ("GET", "/rules/{rule_id}"): S.RULE,
    ("PUT", "/rules/{rule_id}"): S.OK, ("DELETE", "/rules/{rule_id}"): S.OK,
    ("PUT", "/rules/{rule_id}/toggle"): S.OK, ("PUT", "/peers/{path}/nested"): S.OK,
    ("PUT", "/peers/{path}/disable"): (501, S.NOT_SUPPORTED),
    ("GET", "/peers/{path}/peers"): S.NESTED_PEERS, ("GET", "/internal/peers"): S.INTERNAL_PEERS,
    ("GET", "/diag/paths"): S.MESH_PATHS, ("GET", "/users"): S.array(USER_VIEW_REF),
    ("POST", "/users"): (201, USER_VIEW_REF), ("GET", "/users/{user_id}"): USER_VIEW_REF,
    ("PUT", "/users/{user_id}"): USER_VIEW_REF, ("DELETE", "/users/{user_id}"): S.DELETED_USER,
    ("PUT", "/users/{user_id}/toggle"): USER_VIEW_REF, ("POST", "/users/{user_id}/toggle"): USER_VIEW_REF,
    ("PUT", "/users/{user_id}/reset-traffic"): USER_VIEW_REF,
    ("POST", "/users/{user_id}/reset-traffic"): USER_VIEW_REF,
    ("GET", "/sessions"): S.SESSIONS, ("DELETE", "/sessions/{key}"): S.SESSION_CLOSED,
    ("GET", "/node"): S.NODE, ("PUT", "/node"): S.NODE, ("GET", "/node/traffic"): S.NODE_TRAFFIC,
    ("GET", "/graph-layout"): S.LAYOUT, ("PUT", "/graph-layout"): S.LAYOUT,
    ("GET", "/graph-layout/stream"): ("text/event-stream", S.EVENTS),
    ("GET", "/clients"): S.array(CLIENT_VIEW_REF), ("POST", "/clients"): (201, CLIENT_VIEW_REF),
    ("GET", "/clients/{name}"): CLIENT_VIEW_REF, ("PUT", "/clients/{name}"): CLIENT_VIEW_REF,
    ("DELETE", "/clients/{name}"): S.DELETED_CLIENT, ("PUT", "/clients/{name}/disable"): CLIENT_VIEW_REF,
    ("POST", "/clients/{name}/disable"): CLIENT_VIEW_REF, ("GET", "/peers"): S.PEERS,
    ("GET", "/backup"): S.BACKUP, ("POST", "/restore"): S.RESTORED,
}
# Answered 501 by some requests (``capable: false``) rather than by a 4xx.
PARTLY_SUPPORTED = {("PUT", "/ss"): "the Shadowsocks inbound is set in the node config"}
# Query parameters, by route.
QUERIES = {("GET", "/diag/resolve"): [
    query("name", {"type": "string"}, "the host name to resolve", required=True),
    query("exit_via", {"type": "string"}, "a client to resolve through (not supported: answers error)")],
    ("GET", "/graph-layout/stream"): [
    query("token", {"type": "string"}, "the login token, for an EventSource that cannot send headers")]}
ERRORS = {400: "invalid body", 401: "no or expired token", 403: "the default password is still in use "
          "on a node reachable beyond loopback", 404: "unknown id", 409: "the change clashes with the "
          "face's state (a name taken, a client in use)", 413: "body too large"}
PUBLIC_ERRORS = {400: "invalid body", 401: "wrong credentials", 403: "no node password set (internal peers)",
                 429: "too many failed logins"}


def document(api) -> None:
    api.doc["components"]["securitySchemes"]["hy2scale"] = {
        "type": "http", "scheme": "bearer", "description": "token from POST /scale/api/login"}
    for ref, schema in ((USER_VIEW_REF, S.USER), (CLIENT_VIEW_REF, S.CLIENT), (PROXY_REF, S.PROXY),
                        (CERT_REF, S.CERT)):
        api.schema(ref["$ref"].rsplit("/", 1)[1], schema)
    not_supported = api.schema("Hy2ScaleNotSupported", S.NOT_SUPPORTED)
    user_ref = api.schema("Hy2ScaleUser", USER)
    client_ref = api.schema("Hy2ScaleClient", CLIENT)
    for method, path, summary, body, secured, params in ROUTES:
        if body is USER:
            body = user_ref
        elif body is CLIENT:
            body = client_ref
        answer = RESPONSES[(method, path)]
        status, content_type = 200, "application/json"
        if isinstance(answer, tuple):
            first, answer = answer
            if isinstance(first, int):
                status = first
            else:
                content_type = first
        op = api.add(method, B + path, summary, tag=TAG, body=body, secured=False,
                     params=[path_param(p) for p in params] + QUERIES.get((method, path), []),
                     response=answer, status=status,
                     content_type=content_type, errors=ERRORS if secured else PUBLIC_ERRORS)
        if body is S.TOGGLE_BODY:
            op["requestBody"]["required"] = False
        why = PARTLY_SUPPORTED.get((method, path))
        if why:
            op["responses"]["501"] = {"description": f"not supported: {why}",
                                      "content": {"application/json": {"schema": not_supported}}}
        if secured:
            op["security"] = [{"hy2scale": []}]
