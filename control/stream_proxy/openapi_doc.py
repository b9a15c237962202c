"""The face's entries in the node's OpenAPI document."""
from __future__ import annotations

from fastpath.control.openapi import HTML, INTEGER, array, obj, path_param, query
from fastpath.control.stream_proxy import schemas as S
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
    ref = {name: api.schema(name, schema) for name, schema in (
        ("MediaStream", S.STREAM), ("MediaClient", S.CLIENT), ("MediaStreamCreated", S.CREATED),
        ("MediaProxyStats", S.PROXY_STATS), ("MediaProxyError", S.PROXY_ERROR),
        ("HTTPValidationError", S.VALIDATION_ERROR))}
    stream_ref, client_ref, stats_ref = ref["MediaStream"], ref["MediaClient"], ref["MediaProxyStats"]
    sid = path_param("stream_id")
    field_value = [query("field", {"type": "string"}, required=True),
                   query("value", {"type": "string"}, required=True),
                   query("exclude_channel_id", {"type": "string"},
                         "keep the stream whose metadata id is this")]

    def add(method, path, summary, **kw):
        errors = dict(AUTH_ERRORS)
        errors.update(kw.pop("errors", {}))
        if kw.pop("invalid", None):
            errors[422] = "a field does not validate: detail lists them (FastAPI's shape)"
        if "body" in kw:
            errors[413] = "body too large"
        op = api.add(method, path, summary, tag=TAG, secured=False, errors=errors,
                     error_schema=ref["MediaProxyError"], **kw)
        if 422 in errors:
            op["responses"]["422"]["content"]["application/json"]["schema"] = ref["HTTPValidationError"]
        op["security"] = [{"mediaToken": []}, {}]

    def data_plane(path, summary, params, content_type, method="GET"):
        """A route of the media listener (not this port): its own ``servers`` entry."""
        api.add(method, path, summary, tag=TAG + " (media listener)", secured=False, params=params,
                errors={404: "unknown stream", 502: "the upstream failed",
                        503: "every URL of the stream failed before a byte was sent"},
                empty=method == "HEAD",
                response=None if method == "HEAD" else {"type": "string", "format": "binary"},
                content_type=content_type)
        api.doc["paths"][path]["servers"] = [{"url": "{media}", "description": "the media listener "
                                              "(media.listen or media.publicUrl)",
                                              "variables": {"media": {"default": "http://127.0.0.1:8085"}}}]

    def shaped(name, schema):
        """A named schema whose streams, clients and totals are references to their one
        entry (the document names each shape once)."""
        return api.schema(name, _with_refs(schema, {id(S.STREAM): stream_ref, id(S.CLIENT): client_ref,
                                                      id(S.PROXY_STATS): stats_ref}))

    add("POST", "/streams", "Register an upstream stream (same URL twice: the same stream)",
        body=api.schema("MediaStreamCreate", STREAM_BODY), response=ref["MediaStreamCreated"],
        invalid=True)
    add("GET", "/streams", "List streams with live figures",
        response=obj({"streams": array(stream_ref), "total": INTEGER}))
    add("GET", "/streams/by-metadata", "Streams whose metadata field equals a value",
        params=[query("field", {"type": "string"}, required=True),
                query("value", {"type": "string"}, required=True),
                query("active_only", {"type": "boolean", "default": True})],
        invalid=True, response=S.BY_METADATA)
    add("DELETE", "/streams/by-metadata", "Delete every stream whose metadata field equals a value "
        "(connection limits)", params=field_value, invalid=True, response=S.DELETED_BY_METADATA)
    add("DELETE", "/streams/oldest-by-metadata", "Delete the oldest matching stream (latest wins)",
        params=field_value, invalid=True, response=S.DELETED_OLDEST)
    add("GET", "/streams/{stream_id}", "One stream and its connected clients", params=[sid],
        errors={404: "unknown stream"}, response=shaped("MediaStreamItem", S.STREAM_ITEM))
    add("DELETE", "/streams/{stream_id}", "Remove a stream and disconnect its clients", params=[sid],
        errors={404: "unknown stream"}, response=S.MESSAGE)
    add("POST", "/streams/{stream_id}/failover", "Switch to the next URL now (the failover "
        "resolver's answer when the stream has one, else the next of failover_urls)", params=[sid],
        errors={400: "neither failover_urls nor failover_resolver_url", 404: "unknown stream",
                409: "the stream switched meanwhile", 502: "the resolver gave no URL and there are "
                "no failover_urls"}, response=S.FAILOVER)
    add("POST", "/transcode", "Register a stream transcoded by FFmpeg with a named profile",
        body=api.schema("MediaTranscodeCreate", TRANSCODE_BODY), response=S.TRANSCODE_CREATED,
        errors={400: "unknown profile"}, invalid=True)
    add("GET", "/transcode/profiles", "Transcoding profiles, their templates and default variables",
        response=S.PROFILES)
    add("GET", "/info", "Version, FFmpeg, transcoding profiles and configuration", response=S.INFO)
    add("POST", "/test-connection", "Whether the node reaches a URL (GET, 5 s; through the outbound rule)",
        body={"type": "object", "required": ["url"], "properties": {"url": {"type": "string", "format": "uri"}}},
        invalid=True, response=S.TESTED)
    add("GET", "/", "m3u-proxy's status to API clients; a browser gets the dashboard (or, on the "
        "Traffic Stats listener, its index page)",
        content={"application/json": shaped("MediaStatus", S.STATUS), "text/html": HTML})
    clients = shaped("MediaClients", S.CLIENTS)
    add("GET", "/stats", "Totals, every stream and every client", response=shaped("MediaStats", S.STATS))
    add("GET", "/stats/detailed", "Totals with connection, failover, performance and error breakdowns",
        response=shaped("MediaStatsDetailed", S.DETAILED))
    add("GET", "/stats/performance", "Per-stream throughput, cache hit rate, fan-out, failovers, errors",
        response=api.schema("MediaPerformance", S.PERFORMANCE))
    add("GET", "/stats/streams", "Every stream", response=shaped("MediaStatsStreams", S.STATS_STREAMS))
    add("GET", "/stats/clients", "Every client", response=clients)
    add("GET", "/clients", "Every client", response=clients)
    add("GET", "/clients/{client_id}", "One client", params=[path_param("client_id")],
        response=client_ref, errors={404: "unknown client"})
    add("DELETE", "/hls/{stream_id}/clients/{client_id}", "Disconnect a viewer",
        params=[sid, path_param("client_id")], errors={404: "unknown stream (an unknown viewer is a 200)"},
        response=S.DISCONNECTED)
    add("GET", "/health", "Liveness with counts (asks the token, as m3u-proxy does)",
        response=shaped("MediaHealth", S.HEALTH))
    add("POST", "/webhooks", "Register (or replace) a webhook", body=api.schema("MediaWebhook", WEBHOOK_BODY),
        invalid=True, response=S.WEBHOOK_ADDED)
    add("GET", "/webhooks", "List webhooks", response=S.WEBHOOKS)
    add("DELETE", "/webhooks", "Remove a webhook",
        params=[query("webhook_url", {"type": "string"}, required=True)], errors={404: "unknown webhook"},
        invalid=True, response=S.MESSAGE)
    add("POST", "/webhooks/test", "Send a test stream_started event now (with the hook's retries)",
        params=[query("webhook_url", {"type": "string"}, required=True)], errors={404: "unknown webhook"},
        invalid=True, response=S.WEBHOOK_TESTED)
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
    ref_param = query("r", {"type": "string"}, "signed reference", required=True)
    for name in ("segment", "segment.ts"):
        data_plane(f"/hls/{{stream_id}}/{name}", "One segment named by a reference from the stream's "
                   "own playlists (m3u-proxy takes ?url=&client_id= instead: a signed reference "
                   "keeps the node from fetching URLs a viewer names)", [sid, ref_param], "video/MP2T")


def _with_refs(schema, refs: dict):
    """``schema`` with every sub-schema that is one of ``refs``' (by identity) replaced by its
    reference."""
    if id(schema) in refs:
        return refs[id(schema)]
    if isinstance(schema, dict):
        return {k: _with_refs(v, refs) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_with_refs(v, refs) for v in schema]
    return schema
