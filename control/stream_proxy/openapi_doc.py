"""The face's entries in the node's OpenAPI document."""
from __future__ import annotations

from control.openapi import path_param, query
from control.stream_proxy.bodies import EVENTS

TAG = "stream proxy"

STREAM_BODY = {
    "type": "object", "required": ["url"],
    "properties": {
        "url": {"type": "string", "format": "uri", "description": "primary upstream URL (http/https)"},
        "failover_urls": {"type": "array", "items": {"type": "string", "format": "uri"}},
        "user_agent": {"type": "string"},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "strict_live_ts": {"type": "boolean"},
        "use_sticky_session": {"type": "boolean"},
        "metadata": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}},
    },
}
CREATED = {
    "type": "object",
    "properties": {k: {"type": t} for k, t in (
        ("stream_id", "string"), ("primary_url", "string"), ("failover_urls", "array"),
        ("user_agent", "string"), ("stream_type", "string"), ("stream_endpoint", "string"),
        ("playlist_url", "string"), ("direct_url", "string"), ("message", "string"),
        ("metadata", "object"))},
}
STREAM = {
    "type": "object",
    "properties": {k: {"type": t} for k, t in (
        ("stream_id", "string"), ("original_url", "string"), ("current_url", "string"),
        ("user_agent", ["string", "null"]), ("client_count", "integer"),
        ("total_bytes_served", "integer"), ("total_segments_served", "integer"),
        ("error_count", "integer"), ("is_active", "boolean"), ("has_failover", "boolean"),
        ("failover_urls", "array"), ("current_failover_index", "integer"),
        ("failover_attempts", "integer"), ("last_failover_time", ["string", "null"]),
        ("stream_type", "string"), ("created_at", "string"), ("last_access", "string"),
        ("metadata", "object"), ("upstream_state", "string"))},
}
CLIENT = {
    "type": "object",
    "properties": {k: {"type": t} for k, t in (
        ("client_id", "string"), ("stream_id", "string"), ("user_agent", "string"),
        ("ip_address", "string"), ("username", ["string", "null"]), ("bytes_served", "integer"),
        ("segments_served", "integer"), ("created_at", "string"), ("last_access", "string"),
        ("is_connected", "boolean"))},
}
TRANSCODE_BODY = {
    "type": "object", "required": ["url"],
    "properties": {
        "url": {"type": "string", "format": "uri"},
        "profile": {"type": "string", "description": "default, hq, lowlatency, 720p, 1080p, hevc, audio, "
                                                      "a profile of media.transcodeProfiles, or a custom "
                                                      "FFmpeg argument template starting with '-' "
                                                      "when media.customTranscodeTemplates is true "
                                                      "(allow-listed options and filters only)"},
        "profile_variables": {"type": "object", "additionalProperties": {"type": ["string", "number"]}},
        "failover_urls": {"type": "array", "items": {"type": "string", "format": "uri"}},
        "user_agent": {"type": "string"},
        "metadata": {"type": "object"},
    },
}
WEBHOOK_BODY = {
    "type": "object", "required": ["url"],
    "properties": {
        "url": {"type": "string", "format": "uri"},
        "events": {"type": "array", "items": {"type": "string", "enum": list(EVENTS)}},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "timeout": {"type": "number", "minimum": 0.1, "maximum": 300, "default": 10},
        "retry_attempts": {"type": "integer", "minimum": 0, "maximum": 10, "default": 3},
    },
}
AUTH_ERRORS = {401: "media.apiToken is set and no token was given",
               403: "wrong token"}


def document(api) -> None:
    api.doc["components"]["securitySchemes"]["mediaToken"] = {
        "type": "apiKey", "in": "header", "name": "X-API-Token",
        "description": "media.apiToken (or ?api_token=); only when configured"}
    stream_ref = api.schema("MediaStream", STREAM)
    client_ref = api.schema("MediaClient", CLIENT)
    created_ref = api.schema("MediaStreamCreated", CREATED)
    sid = path_param("stream_id")

    def add(method, path, summary, **kw):
        errors = dict(AUTH_ERRORS)
        errors.update(kw.pop("errors", {}))
        api.add(method, path, summary, tag=TAG, secured=False, errors=errors, **kw)
        api.doc["paths"][path][method.lower()]["security"] = [{"mediaToken": []}, {}]

    add("POST", "/streams", "Register an upstream stream (same URL twice: the same stream)",
        body=api.schema("MediaStreamCreate", STREAM_BODY), response=created_ref,
        errors={400: "bad body"})
    add("GET", "/streams", "List streams with live figures",
        response={"type": "object", "properties": {"streams": {"type": "array", "items": stream_ref},
                                                   "total": {"type": "integer"}}})
    add("GET", "/streams/by-metadata", "Streams whose metadata field equals a value",
        params=[query("field", {"type": "string"}, required=True),
                query("value", {"type": "string"}, required=True),
                query("active_only", {"type": "boolean", "default": True})],
        errors={400: "missing field or value"})
    add("GET", "/streams/{stream_id}", "One stream and its connected clients", params=[sid],
        errors={404: "unknown stream"})
    add("DELETE", "/streams/{stream_id}", "Remove a stream and disconnect its clients", params=[sid],
        errors={404: "unknown stream"})
    add("POST", "/streams/{stream_id}/failover", "Switch to the next URL now", params=[sid],
        errors={400: "no failover URLs", 404: "unknown stream"})
    add("POST", "/transcode", "Register a stream transcoded by FFmpeg with a named profile",
        body=api.schema("MediaTranscodeCreate", TRANSCODE_BODY),
        errors={400: "bad body, unknown profile or bad variables"})
    clients = {"type": "object", "properties": {"total_clients": {"type": "integer"},
                                                "clients": {"type": "array", "items": client_ref}}}
    add("GET", "/stats", "Totals, every stream and every client")
    add("GET", "/stats/detailed", "Totals with connection, failover, performance and error breakdowns")
    add("GET", "/stats/performance", "Per-stream throughput, cache hit rate, fan-out, failovers, errors")
    add("GET", "/stats/streams", "Every stream")
    add("GET", "/stats/clients", "Every client", response=clients)
    add("GET", "/clients", "Every client", response=clients)
    add("GET", "/clients/{client_id}", "One client", params=[path_param("client_id")],
        response=client_ref, errors={404: "unknown client"})
    add("DELETE", "/hls/{stream_id}/clients/{client_id}", "Disconnect a viewer",
        params=[sid, path_param("client_id")], errors={404: "unknown stream or client"})
    add("GET", "/health", "Liveness with counts (asks the token, as m3u-proxy does)")
    add("POST", "/webhooks", "Register (or replace) a webhook", body=api.schema("MediaWebhook", WEBHOOK_BODY),
        errors={400: "bad body"})
    add("GET", "/webhooks", "List webhooks")
    add("DELETE", "/webhooks", "Remove a webhook",
        params=[query("webhook_url", {"type": "string"}, required=True)], errors={404: "unknown webhook"})
    add("POST", "/webhooks/test", "Send a test stream_started event now (with the hook's retries)",
        params=[query("webhook_url", {"type": "string"}, required=True)], errors={404: "unknown webhook"})
