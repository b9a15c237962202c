"""Answer bodies of the stream proxy face (m3u-proxy's shapes, as ``views.py``,
``stream_json.py``, ``streams.py``, ``monitor.py``, ``figures.py``, ``about.py`` and
``hooks.py`` build them), for the OpenAPI document and its conformance test."""
from __future__ import annotations

from fastpath.control.openapi import (
    ANY_OBJECT, BOOLEAN, INTEGER, NUMBER, STRING, array, map_of, nullable, obj,
)

NSTRING = nullable(STRING)
NNUMBER = nullable(NUMBER)
TEXT_MAP = map_of(STRING)

STREAM = obj({
    "stream_id": STRING, "original_url": STRING, "current_url": STRING, "user_agent": NSTRING,
    "client_count": INTEGER, "total_bytes_served": INTEGER, "total_segments_served": INTEGER,
    "error_count": INTEGER, "is_active": BOOLEAN, "has_failover": BOOLEAN,
    "failover_urls": array(STRING), "failover_resolver_url": NSTRING,
    "current_failover_index": INTEGER, "failover_attempts": INTEGER, "last_failover_time": NSTRING,
    "stream_type": {"type": "string", "enum": ["HLS", "Live Continuous", "VOD", "Transcoding"]},
    "created_at": STRING, "last_access": STRING, "metadata": ANY_OBJECT, "headers": TEXT_MAP,
    "url_index": INTEGER, "relaying": BOOLEAN, "strict_live_ts": BOOLEAN,
    "use_sticky_session": BOOLEAN,
    "upstream_state": STRING,
}, optional={"profile": STRING, "profile_variables": TEXT_MAP},
    description="current_failover_index is a position in failover_urls (m3u-proxy's); "
                "url_index counts the primary as 0; profile and profile_variables on a "
                "transcoded stream")
CLIENT = obj({
    "client_id": STRING, "stream_id": STRING, "user_agent": NSTRING, "ip_address": STRING,
    "username": NSTRING, "bytes_served": INTEGER, "segments_served": INTEGER,
    "created_at": NSTRING, "last_access": NSTRING, "is_connected": BOOLEAN,
})
_VIEWER_URLS = {"stream_endpoint": STRING, "direct_url": STRING, "viewer_url": STRING}
CREATED = obj({
    "stream_id": STRING, "primary_url": STRING, "failover_urls": array(STRING),
    "user_agent": NSTRING, "stream_type": {"type": "string", "enum": ["hls", "direct"]},
    **_VIEWER_URLS, "playlist_url": STRING, "message": STRING, "metadata": ANY_OBJECT,
}, description="playlist_url and direct_url are relative (m3u-proxy's); viewer_url is the "
               "absolute URL on the media listener")
TRANSCODE_CREATED = obj({
    "stream_id": STRING, "primary_url": STRING, "failover_urls": array(STRING),
    "user_agent": NSTRING, "stream_type": {"const": "transcoded"}, **_VIEWER_URLS,
    "playlist_url": {"type": "null"}, "format": STRING, "content_type": STRING, "profile": STRING,
    "profile_variables": TEXT_MAP, "ffmpeg_args": array(STRING), "message": STRING,
    "metadata": ANY_OBJECT,
})
PROXY_STATS = obj({k: INTEGER for k in (
    "total_streams", "active_streams", "total_clients", "active_clients",
    "total_bytes_served", "total_segments_served", "uptime_seconds")})
STATUS = obj({"status": STRING, "message": STRING, "version": STRING, "uptime": INTEGER,
              "stats": PROXY_STATS, "fastpath_version": STRING})
STREAM_ITEM = obj({"stream": STREAM, "clients": array(CLIENT), "client_count": INTEGER})
MESSAGE = obj({"message": STRING})
FAILOVER = obj({"message": STRING, "new_url": STRING, "failover_index": INTEGER, "url_index": INTEGER,
                "failover_attempts": INTEGER, "active_clients": INTEGER, "stream_type": STRING})
BY_METADATA = obj({
    "filter": obj({"field": STRING, "value": STRING}), "active_only": BOOLEAN,
    "matching_streams": array(obj({"stream_id": STRING, "client_count": INTEGER, "metadata": ANY_OBJECT,
                                   "last_access": STRING, "is_active": BOOLEAN, "url": STRING,
                                   "stream_type": STRING})),
    "total_matching": INTEGER, "total_clients": INTEGER})
DELETED_BY_METADATA = obj({
    "message": STRING, "deleted_streams": array(STRING),
    "skipped_streams": array(obj({"stream_id": STRING, "reason": STRING})),
    "deleted_count": INTEGER})
DELETED_OLDEST = obj({"message": STRING, "deleted_stream": NSTRING, "deleted_count": INTEGER},
                     optional={"stream_age_seconds": NUMBER})
PROFILES = obj({
    "profiles": array(obj({"name": STRING, "description": STRING,
                           "parameters": {"type": "string", "description": "the FFmpeg argument template"}})),
    "hardware_acceleration": obj({"available": BOOLEAN, "type": {"type": "null"}}),
    "default_variables": TEXT_MAP})
INFO = obj({
    "version": STRING, "fastpath_version": STRING, "ffmpeg_version": NSTRING,
    "hardware_acceleration": obj({"enabled": BOOLEAN, "type": NSTRING, "device": NSTRING,
                                  "ffmpeg_args": array(STRING)}),
    "redis": obj({"enabled": BOOLEAN}, extra=True, description="always off: no Redis here"),
    "transcoding": obj({"enabled": BOOLEAN, "profiles": TEXT_MAP}),
    "configuration": obj({"default_user_agent": NSTRING, "client_timeout": NUMBER,
                          "stream_timeout": NUMBER, "cleanup_interval": NUMBER,
                          "max_retries": nullable(INTEGER)}),
    "worker": obj({"worker_id": STRING, "heartbeat_interval": NUMBER, "multi_worker_mode": BOOLEAN}),
})
TESTED = obj({"success": BOOLEAN, "message": STRING, "url_tested": STRING},
             optional={"error": STRING, "status_code": INTEGER})
STATS = obj({**PROXY_STATS["properties"], "streams": array(STREAM), "clients": array(CLIENT)})
STATS_STREAMS = obj({"total_streams": INTEGER, "streams": array(STREAM)})
CLIENTS = obj({"total_clients": INTEGER, "clients": array(CLIENT)})
_BY_STREAM_ERRORS = array(obj({"stream_id": STRING, "error_count": INTEGER}))
POOL = obj({"upstream_connections": INTEGER, "connecting": INTEGER, "idle": INTEGER, "relays": INTEGER})
STREAM_PERFORMANCE = obj({
    "stream_id": STRING, "stream_type": STRING, "upstream_state": STRING, "current_url": STRING,
    "upstream_connections": INTEGER, "relays": INTEGER, "active_clients": INTEGER,
    "bytes_in": INTEGER, "bytes_out": INTEGER, "throughput_in_bps": NNUMBER,
    "throughput_out_bps": NNUMBER, "average_in_bps": NNUMBER, "average_out_bps": NNUMBER,
    "throughput_window_seconds": NNUMBER, "fanout_ratio": NNUMBER, "segments_served": INTEGER,
    "cache_hits": INTEGER, "cache_hit_rate": NNUMBER, "error_count": INTEGER,
    "failover_attempts": INTEGER, "last_failover_time": NSTRING, "seconds_since_activity": NNUMBER})
PERFORMANCE_METRICS = obj({
    "throughput_in_bps": NUMBER, "throughput_out_bps": NUMBER, "total_bytes_in": INTEGER,
    "total_bytes_out": INTEGER, "total_segments_served": INTEGER, "cache_hits": INTEGER,
    "cache_hit_rate": NNUMBER, "active_clients": INTEGER, "streams": array(STREAM_PERFORMANCE)})
FAILOVER_STATS = obj({
    "total_failovers": INTEGER, "streams_with_failover": INTEGER, "streams_on_backup": INTEGER,
    "by_stream": array(obj({"stream_id": STRING, "failover_attempts": INTEGER, "current_url": STRING,
                            "last_failover_time": NSTRING}))})
ERROR_STATS = obj({"total_errors": INTEGER, "streams_with_errors": INTEGER, "by_stream": _BY_STREAM_ERRORS})
PERFORMANCE = obj({"connection_pool": POOL, "performance_metrics": PERFORMANCE_METRICS,
                   "failover_stats": FAILOVER_STATS, "error_stats": ERROR_STATS, "timestamp": STRING})
DETAILED = obj({
    "proxy_stats": PROXY_STATS, "connection_pool_stats": POOL, "failover_stats": FAILOVER_STATS,
    "performance_metrics": PERFORMANCE_METRICS, "error_stats": ERROR_STATS,
    "stream_count": INTEGER, "client_count": INTEGER, "streams": array(STREAM),
    "clients": array(CLIENT), "timestamp": STRING})
DISCONNECTED = obj({"message": STRING, "closed": INTEGER})
HEALTH = obj({
    "status": {"const": "healthy"}, "root_path": STRING,
    "version": {"type": "string", "description": "the m3u-proxy API version spoken"},
    "uptime_seconds": INTEGER, "active_streams": INTEGER, "active_clients": INTEGER,
    "total_bytes_served": INTEGER, "stats": PROXY_STATS,
    "fastpath_version": STRING, "timestamp": STRING})
WEBHOOK = obj({"url": STRING, "events": array(STRING), "timeout": NUMBER, "retry_attempts": INTEGER,
               "headers": TEXT_MAP})
WEBHOOKS = obj({"webhooks": array(WEBHOOK)})
WEBHOOK_ADDED = obj({"message": STRING, "webhook_url": STRING, "events": array(STRING)})
WEBHOOK_TESTED = obj({"message": STRING, "event_id": STRING, "delivered": BOOLEAN, "attempts": INTEGER})
# Every error of the face (errors.py): FastAPI's ``detail`` (a text, or on a 422 the list of
# failed fields), and the node's ``error``/``message``.
VALIDATION_ITEM = obj({"type": STRING, "loc": array({"type": ["string", "integer"]}), "msg": STRING,
                       "input": {}}, optional={"ctx": ANY_OBJECT})
PROXY_ERROR = obj({"detail": {"anyOf": [STRING, array(VALIDATION_ITEM)]}, "error": STRING,
                   "message": NSTRING})
# A 422 as m3u-proxy (FastAPI) answers it: the failed fields; ``error``/``message`` are ours.
VALIDATION_ERROR = obj({"detail": {"anyOf": [array(VALIDATION_ITEM), STRING]}, "error": STRING,
                        "message": NSTRING})
