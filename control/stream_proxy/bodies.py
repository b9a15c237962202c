"""Checks of the stream proxy's request bodies.

A body is checked completely before anything is stored, so a bad request changes nothing.
Fields m3u-proxy does not know are ignored, as its pydantic models do (tools written for it
send extra fields); every known field is checked strictly.
"""
from __future__ import annotations

import math
import re
from urllib.parse import urlsplit

import falcon

from fastpath.control import validation
from fastpath.control.stream_proxy.errors import invalid, invalid_body

MAX_URL = 4096
MAX_FAILOVER_URLS = 32
MAX_METADATA = 64
MAX_HEADERS = 64
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z\-]{1,128}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# m3u-proxy's events, its default when a hook names none; ``stream_error`` is accepted too
# (our earlier name of ``stream_failed``) but not subscribed to by default.
DEFAULT_EVENTS = ("stream_started", "stream_stopped", "stream_failed", "client_connected",
                  "client_disconnected", "failover_triggered")
EVENTS = (*DEFAULT_EVENTS, "stream_error")


def json_body(req: falcon.Request) -> dict:
    try:
        body = validation.request_body(req)
    except falcon.HTTPError as exc:
        raise invalid_body(exc.description or "JSON decode error", "json_invalid") from None
    if not isinstance(body, dict):
        raise invalid_body("the body must be a JSON object", "model_attributes_type", body,
                           "Input should be a valid dictionary or object to extract fields from")
    return body


def required(body: dict, name: str):
    """The value of a required field (a 422 ``missing`` without it)."""
    if body.get(name) is None:
        raise invalid(name, f"field '{name}' is required")
    return body[name]


def http_url(value, name: str) -> str:
    """An absolute http(s) URL with a host; the node fetches nothing else."""
    if not isinstance(value, str) or not value.strip():
        raise invalid(name, f"{name} must be a non-empty string", value)
    value = value.strip()
    if len(value) > MAX_URL:
        raise invalid(name, f"{name} is longer than {MAX_URL} characters", value)
    if _CONTROL.search(value) or " " in value:
        raise invalid(name, f"{name} has spaces or control characters", value)
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise invalid(name, f"{name} is not a valid URL", value) from None
    if parts.scheme.lower() not in ("http", "https"):
        raise invalid(name, f"{name} must use the http or https scheme", value)
    if not parts.hostname:
        raise invalid(name, f"{name} must name a host", value)
    del port
    return value


def target_url(value, name: str, policy) -> str:
    """An http(s) URL whose host the outbound rule allows (``fastpath.media.outbound``):
    refused here with a clear 400, rather than registered and failing at every connect (where
    the workers check it again, on every connection and redirect)."""
    url = http_url(value, name)
    why = policy.refusal_for_url(url) if policy is not None else None
    if why is not None:
        raise invalid(name, f"{name}: {why}", url)
    return url


def url_list(body: dict, name: str, policy=None) -> list[str]:
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid(name, f"{name} must be a list of URLs", value)
    if len(value) > MAX_FAILOVER_URLS:
        raise invalid(name, f"{name} has more than {MAX_FAILOVER_URLS} URLs", value)
    return [target_url(u, f"{name}[{i}]", policy) for i, u in enumerate(value)]


def optional_text(body: dict, name: str, max_len: int = 512) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(name, f"{name} must be a string", value)
    if len(value) > max_len:
        raise invalid(name, f"{name} is longer than {max_len} characters", value)
    if _CONTROL.search(value):
        raise invalid(name, f"{name} has control characters", value)
    return value or None


def flag(body: dict, name: str, default: bool = False) -> bool:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise invalid(name, f"{name} must be true or false", value)
    return value


def metadata(body: dict, name: str = "metadata") -> dict[str, str]:
    """Key/value pairs, values stored as strings (m3u-proxy's rule: str, number or bool)."""
    value = body.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid(name, f"{name} must be an object", value)
    if len(value) > MAX_METADATA:
        raise invalid(name, f"{name} has more than {MAX_METADATA} keys", value)
    out = {}
    for key, item in value.items():
        if not key or len(key) > 128:
            raise invalid(name, f"{name} keys must be 1 to 128 characters", value)
        if isinstance(item, bool):
            text = "True" if item else "False"  # Python's str(), as the reference stores it
        elif isinstance(item, (str, int)) or isinstance(item, float) and math.isfinite(item):
            text = str(item)
        else:
            raise invalid(name, f"{name} value for {key!r} must be a string, number or boolean", value)
        if len(text) > 1024:
            raise invalid(name, f"{name} value for {key!r} is longer than 1024 characters", value)
        out[key] = text
    return out


def headers(body: dict, name: str = "headers") -> dict[str, str]:
    value = body.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid(name, f"{name} must be an object of header names to values", value)
    if len(value) > MAX_HEADERS:
        raise invalid(name, f"{name} has more than {MAX_HEADERS} entries", value)
    out = {}
    for key, item in value.items():
        if not _HEADER_NAME.match(key):
            raise invalid(name, f"{name}: {key!r} is not a valid header name", value)
        if not isinstance(item, str) or _CONTROL.search(item) or len(item) > 4096:
            raise invalid(name, f"{name}: the value of {key} must be a string without control characters", value)
        out[key] = item
    return out


def events(body: dict) -> list[str]:
    value = body.get("events")
    if value is None:
        return list(DEFAULT_EVENTS)
    if not isinstance(value, list) or not all(isinstance(e, str) for e in value):
        raise invalid("events", "events must be a list of event names", value)
    unknown = [e for e in value if e not in EVENTS]
    if unknown:
        raise invalid("events", f"unknown event {unknown[0]!r}; known events: {', '.join(EVENTS)}", value)
    out = []
    for e in value:
        if e not in out:
            out.append(e)
    return out or list(DEFAULT_EVENTS)


def number(body: dict, name: str, default: float, minimum: float, maximum: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not minimum <= value <= maximum:
        raise invalid(name, f"{name} must be a number from {minimum:g} to {maximum:g}", value)
    return float(value)


def integer(body: dict, name: str, default: int, minimum: int, maximum: int) -> int:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise invalid(name, f"{name} must be an integer from {minimum} to {maximum}", value)
    return value


def query_bool(req: falcon.Request, name: str, default: bool) -> bool:
    raw = req.get_param(name)
    if raw is None or raw == "":
        return default
    low = raw.lower()
    if low in ("true", "1", "yes", "on"):
        return True
    if low in ("false", "0", "no", "off"):
        return False
    raise invalid(name, f"{name} must be true or false", raw, where="query")


def query_required(req: falcon.Request, name: str) -> str:
    raw = req.get_param(name)
    if raw is None or raw == "":
        raise invalid(name, f"query parameter {name} is required", where="query")
    return raw
