"""Answer bodies of the native API (``/api/v1``), as the handlers in ``native.py``,
``native_traffic.py`` and ``native_config.py`` build them: one place for the shapes the
OpenAPI document shows and the conformance test checks."""
from __future__ import annotations

from fastpath.control.openapi import (
    ANY_OBJECT, BOOLEAN, INTEGER, NUMBER, STRING, TIME, array, map_of, nullable, obj,
)

HEALTH = obj({"status": {"type": "string", "enum": ["healthy", "degraded"]}, "version": STRING,
              "uptime": nullable(NUMBER), "workers": INTEGER, "workers_alive": INTEGER,
              "workers_ready": {"type": "integer", "description": "workers that said ready "
                                                                  "and still run"},
              "restarts": {"type": "integer", "description": "crashes of running children the "
                                                             "supervisor restarted"}})
PONG = obj({"pong": {"const": True}})
CHILD = obj({"name": STRING, "shard": nullable(INTEGER), "pid": nullable(INTEGER), "alive": BOOLEAN,
             "ready": {"type": "boolean", "description": "running and past its start"},
             "restarts": INTEGER})
SHARD = obj({"writer_pid": INTEGER, "heartbeat_ns": INTEGER, "restarts": INTEGER,
             "high_water": INTEGER, "live_slots": INTEGER})
NODE = obj({
    "name": STRING, "version": STRING, "uptime": nullable(NUMBER), "data_dir": STRING,
    "listeners": array(obj({"name": STRING, "protocol": {"type": "string", "enum": ["tcp", "udp"]},
                            "listen": STRING})),
    "control": obj({"listen": STRING}),
    "traffic_stats": obj({"listen": nullable(STRING)}),
    "counters": obj({"segment_id": {"type": "string", "pattern": "^[0-9a-f]{16}$"}, "shards": INTEGER,
                     "slots_per_shard": INTEGER, "shards_info": array(SHARD)}),
    "children": array(CHILD),
})
USER_VIEW = obj({
    "id": STRING, "auth_secret": STRING, "enabled": BOOLEAN, "traffic_limit": INTEGER,
    "expiry": nullable(TIME), "inbounds": array(STRING),
    "source": {"type": "string", "description": "the face that created the user"},
    "created": nullable(TIME), "tx": INTEGER, "rx": INTEGER,
    "used": {"type": "integer", "description": "bytes counted toward traffic_limit"},
    "online": INTEGER,
    "refused": {"type": ["string", "null"], "enum": ["disabled", "expired", "traffic limit reached", None],
                "description": "why the user may not connect now; null when it may"},
})
KICKED = obj({"closed": {"type": "integer", "description": "connections closed"}})
RESET = obj({"id": STRING, "cleared": obj({"tx": INTEGER, "rx": INTEGER})})
TRAFFIC = obj({"users": map_of(obj({"tx": INTEGER, "rx": INTEGER, "online": INTEGER, "streams": INTEGER,
                                    "last_active": nullable(TIME)})),
               "total": INTEGER})
_PAGE = {"total": INTEGER, "offset": INTEGER, "limit": INTEGER}
CONNECTIONS = obj({**_PAGE, "connections": array(obj({
    "user": STRING, "remote": STRING, "connection": INTEGER, "worker": INTEGER, "since": TIME,
    "last_active": TIME, "tx": INTEGER, "rx": INTEGER}))})
STREAMS = obj({**_PAGE, "streams": array(obj({
    "user": STRING, "kind": STRING, "state": STRING, "connection": INTEGER, "stream": INTEGER,
    "request": STRING, "worker": INTEGER, "since": TIME, "last_active": TIME, "tx": INTEGER,
    "rx": INTEGER}))})
CONFIG = obj({"config": {**ANY_OBJECT, "description": "the config file as read, credentials as \"***\""},
              "live": array(STRING), "at_restart": array(STRING)})
RELOADED = obj({"reloaded": {"const": True}, "workers": INTEGER})
EVENTS = {"type": "string", "description": "text/event-stream: one `data: {json}` event at a time"}
