"""The face's entries in the node's OpenAPI document."""
from __future__ import annotations

from fastpath.control.openapi import path_param, query
from fastpath.control.stream_proxy.bodies import EVENTS

TAG = "stream proxy"

RESOLVER_FIELD = {
    "type": ["string", "null"], "format": "uri",
    "description": "asked for the next URL whenever the current one fails (and on POST "
                   "/streams/{stream_id}/failover): a POST of JSON {current_url, metadata, "
                   "current_failover_index}, 10 s; next_url of a 2xx JSON answer becomes the "
                   "stream's URL.  No answer, an empty or a refused next_url: failover_urls are "
                   "walked instead (m3u-proxy would not fail over).  The URL and its answers pass "
                   "the outbound rule, as upstreams do"}

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
        "failover_resolver_url": RESOLVER_FIELD,
    },
}
CREATED = {
    "type": "object",
    "properties": {k: {"type": t} for k, t in (
        ("stream_id", "string"), ("primary_url", "string"), ("failover_urls", "array"),
        ("user_agent", "string"), ("stream_type", "string"), ("stream_endpoint", "string"),
        ("playlist_url", "string"), ("direct_url", "string"), ("message", "string"),
        ("metadata", "object"), ("viewer_url", "string"))},
    "description": "playlist_url and direct_url are relative (m3u-proxy's); viewer_url is the "
                   "absolute URL on the media listener",
}
# FastAPI's validation error body, as m3u-proxy answers a 422 (``message`` is ours).
VALIDATION_ERROR = {
    "type": "object",
    "properties": {
        "detail": {"type": "array", "items": {
            "type": "object", "required": ["type", "loc", "msg", "input"],
            "properties": {"type": {"type": "string"},
                           "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                           "msg": {"type": "string"}, "input": {}, "ctx": {"type": "object"}}}},
        "error": {"type": "string"}, "message": {"type": "string"},
    },
}
PROXY_STATS = {
    "type": "object",
    "properties": {k: {"type": "integer"} for k in (
        "total_streams", "active_streams", "total_clients", "active_clients",
        "total_bytes_served", "total_segments_served", "uptime_seconds")},
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
        ("metadata", "object"), ("headers", "object"), ("failover_resolver_url", ["string", "null"]),
        ("url_index", "integer"), ("relaying", "boolean"), ("upstream_state", "string"))},
    "description": "current_failover_index is a position in failover_urls (m3u-proxy's), on a "
                   "URL the failover resolver gave the number of its answers taken; url_index "
                   "counts the primary as 0 (the resolver's answer is the index after the list)",
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
        "failover_resolver_url": RESOLVER_FIELD,
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
    invalid_ref = api.schema("HTTPValidationError", VALIDATION_ERROR)
    stats_ref = api.schema("MediaProxyStats", PROXY_STATS)
    sid = path_param("stream_id")
    field_value = [query("field", {"type": "string"}, required=True),
                   query("value", {"type": "string"}, required=True),
                   query("exclude_channel_id", {"type": "string"},
                         "keep the stream whose metadata id is this")]

    def add(method, path, summary, **kw):
        errors = dict(AUTH_ERRORS)
        errors.update(kw.pop("errors", {}))
        invalid = kw.pop("invalid", None)
        api.add(method, path, summary, tag=TAG, secured=False, errors=errors, **kw)
        op = api.doc["paths"][path][method.lower()]
        op["security"] = [{"mediaToken": []}, {}]
        if invalid:
            op["responses"]["422"] = {"description": invalid,
                                      "content": {"application/json": {"schema": invalid_ref}}}

    def data_plane(path, summary, params, content_type, method="GET"):
        """A route of the media listener (not this port): its own ``servers`` entry."""
        api.add(method, path, summary, tag=TAG + " (media listener)", secured=False, params=params,
                errors={404: "unknown stream"},
                response=None if method == "HEAD" else {"type": "string", "format": "binary"},
                content_type=content_type)
        api.doc["paths"][path]["servers"] = [{"url": "{media}", "description": "the media listener "
                                              "(media.listen or media.publicUrl)",
                                              "variables": {"media": {"default": "http://127.0.0.1:8085"}}}]

    add("POST", "/streams", "Register an upstream stream (same URL twice: the same stream)",
        body=api.schema("MediaStreamCreate", STREAM_BODY), response=created_ref,
        invalid="a field does not validate (also a body that is not a JSON object)")
    add("GET", "/streams", "List streams with live figures",
        response={"type": "object", "properties": {"streams": {"type": "array", "items": stream_ref},
                                                   "total": {"type": "integer"}}})
    add("GET", "/streams/by-metadata", "Streams whose metadata field equals a value",
        params=[query("field", {"type": "string"}, required=True),
                query("value", {"type": "string"}, required=True),
                query("active_only", {"type": "boolean", "default": True})],
        invalid="missing field or value")
    add("DELETE", "/streams/by-metadata", "Delete every stream whose metadata field equals a value "
        "(connection limits)", params=field_value, invalid="missing field or value",
        response={"type": "object", "properties": {
            "message": {"type": "string"}, "deleted_streams": {"type": "array", "items": {"type": "string"}},
            "skipped_streams": {"type": "array"}, "deleted_count": {"type": "integer"}}})
    add("DELETE", "/streams/oldest-by-metadata", "Delete the oldest matching stream (latest wins)",
        params=field_value, invalid="missing field or value",
        response={"type": "object", "properties": {
            "message": {"type": "string"}, "deleted_stream": {"type": ["string", "null"]},
            "stream_age_seconds": {"type": "number"}, "deleted_count": {"type": "integer"}}})
    add("GET", "/streams/{stream_id}", "One stream and its connected clients", params=[sid],
        errors={404: "unknown stream"})
    add("DELETE", "/streams/{stream_id}", "Remove a stream and disconnect its clients", params=[sid],
        errors={404: "unknown stream"})
    add("POST", "/streams/{stream_id}/failover", "Switch to the next URL now (the failover "
        "resolver's answer when the stream has one, else the next of failover_urls)", params=[sid],
        errors={400: "neither failover_urls nor failover_resolver_url", 404: "unknown stream",
                409: "the stream switched meanwhile", 502: "the resolver gave no URL and there are "
                "no failover_urls"})
    add("POST", "/transcode", "Register a stream transcoded by FFmpeg with a named profile",
        body=api.schema("MediaTranscodeCreate", TRANSCODE_BODY),
        errors={400: "unknown profile"}, invalid="a field, the template or a variable does not validate")
    add("GET", "/transcode/profiles", "Transcoding profiles, their templates and default variables")
    add("GET", "/info", "Version, FFmpeg, transcoding profiles and configuration")
    add("POST", "/test-connection", "Whether the node reaches a URL (GET, 5 s; through the outbound rule)",
        body={"type": "object", "required": ["url"], "properties": {"url": {"type": "string", "format": "uri"}}},
        invalid="url missing or not an http(s) URL")
    add("GET", "/", "m3u-proxy's status (API clients; a browser gets the Traffic Stats index)",
        response={"type": "object", "properties": {"status": {"type": "string"}, "version": {"type": "string"},
                                                   "uptime": {"type": "integer"}, "stats": stats_ref}})
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
        params=[sid, path_param("client_id")], errors={404: "unknown stream (an unknown viewer is a 200)"})
    add("GET", "/health", "Liveness with counts (asks the token, as m3u-proxy does)",
        response={"type": "object", "properties": {
            "status": {"type": "string"}, "root_path": {"type": "string"},
            "version": {"type": "string", "description": "the m3u-proxy API version spoken"},
            "fastpath_version": {"type": "string"}, "uptime_seconds": {"type": "integer"},
            "stats": stats_ref}})
    add("POST", "/webhooks", "Register (or replace) a webhook", body=api.schema("MediaWebhook", WEBHOOK_BODY),
        invalid="a field does not validate")
    add("GET", "/webhooks", "List webhooks")
    add("DELETE", "/webhooks", "Remove a webhook",
        params=[query("webhook_url", {"type": "string"}, required=True)], errors={404: "unknown webhook"})
    add("POST", "/webhooks/test", "Send a test stream_started event now (with the hook's retries)",
        params=[query("webhook_url", {"type": "string"}, required=True)], errors={404: "unknown webhook"})
    # Viewer ids are the node's own: one per connection on a continuous stream, one per
    # (address, user agent, username) on HLS; m3u-proxy's ``client_id`` query is not read.
    user = query("username", {"type": "string"}, "the viewer's account name, shown in the client "
                 "lists (or an X-Username header)")
    data_plane("/stream/{stream_id}", "The continuous stream (MPEG-TS, or the transcoder's output; "
               "VOD with Range); one viewer per connection", [sid, user], "video/MP2T")
    data_plane("/stream/{stream_id}", "The stream's headers without a body (Content-Type, "
               "Access-Control-Allow-Origin: *, Accept-Ranges: none on a live stream)", [sid],
               "video/MP2T", method="HEAD")
    data_plane("/hls/{stream_id}/playlist.m3u8", "The HLS playlist, every URI rewritten through the node",
               [sid, user], "application/vnd.apple.mpegurl")
    ref = query("r", {"type": "string"}, "signed reference", required=True)
    for name in ("segment", "segment.ts"):
        data_plane(f"/hls/{{stream_id}}/{name}", "One segment named by a reference from the stream's "
                   "own playlists (m3u-proxy takes ?url=&client_id= instead: a signed reference "
                   "keeps the node from fetching URLs a viewer names)", [sid, ref], "video/MP2T")
