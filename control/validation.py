"""Checks of JSON request bodies that answer 400 with a message naming the field.

A body is validated completely before anything is applied, so a bad request changes nothing.
"""
from __future__ import annotations

import datetime
import json
import re

import falcon
import falcon.media
import msgpack

from fastpath.control.errors import bad_request

MAX_BODY = 8 * 1024 * 1024
USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+\-]{0,62}$")


class BodyTooLarge(falcon.HTTPPayloadTooLarge):
    def __init__(self):
        super().__init__(title="body too large",
                         description=f"the body is larger than {MAX_BODY} bytes")


def read_capped(stream, content_length: int | None) -> bytes:
    """At most ``MAX_BODY`` bytes of a body, whatever its type; 413 past that (told by
    Content-Length before anything is read, or by reading one byte more than the cap)."""
    if content_length is not None and content_length > MAX_BODY:
        raise BodyTooLarge()
    raw = stream.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise BodyTooLarge()
    return raw


def decode_msgpack(raw: bytes):
    """msgpack with every length bounded by the body itself (``unpackb`` caps each string,
    array and map at the input's length), so a small body cannot declare a huge container."""
    try:
        return msgpack.unpackb(raw, raw=False, strict_map_key=True)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, TypeError):
        raise bad_request("the body is not valid msgpack") from None


class BoundedMessagePackHandler(falcon.media.MessagePackHandler):
    """Falcon's msgpack handler reads the whole body; this one reads at most the cap."""

    def deserialize(self, stream, content_type, content_length):
        return decode_msgpack(read_capped(stream, content_length))


def request_body(req):
    """The decoded body: msgpack when the request says so, otherwise JSON whatever the
    Content-Type (curl's -d sends a form type for what is a JSON body)."""
    raw = read_capped(req.bounded_stream, req.content_length)
    if req.content_type and "msgpack" in req.content_type:
        return decode_msgpack(raw)
    if not raw.strip():
        raise bad_request("a JSON body is required")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise bad_request("the body is not valid JSON") from None


def json_object(req, *, allowed: set[str] | None = None, required: set[str] = frozenset()) -> dict:
    body = request_body(req)
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object")
    if allowed is not None:
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise bad_request(f"unknown field {unknown[0]!r}")
    missing = sorted(required - set(body))
    if missing:
        raise bad_request(f"field {missing[0]!r} is required")
    return body


def string(body: dict, name: str, *, pattern: re.Pattern | None = None, max_len: int = 1024,
           allow_none: bool = False):
    value = body[name]
    if value is None and allow_none:
        return None
    if not isinstance(value, str) or not value:
        raise bad_request(f"{name} must be a non-empty string")
    if len(value) > max_len:
        raise bad_request(f"{name} is longer than {max_len} characters")
    if pattern is not None and not pattern.match(value):
        raise bad_request(f"{name} has characters that are not allowed")
    return value


def boolean(body: dict, name: str) -> bool:
    value = body[name]
    if not isinstance(value, bool):
        raise bad_request(f"{name} must be true or false")
    return value


def integer(body: dict, name: str, *, minimum: int = 0, maximum: int = 2**63 - 1) -> int:
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise bad_request(f"{name} must be an integer from {minimum} to {maximum}")
    return value


def string_list(body: dict, name: str, *, max_items: int = 1000) -> list[str]:
    value = body[name]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise bad_request(f"{name} must be a list of non-empty strings")
    if len(value) > max_items:
        raise bad_request(f"{name} has more than {max_items} items")
    return value


def timestamp(body: dict, name: str) -> float | None:
    """Unix seconds from a number or an ISO 8601 string; null means never."""
    value = body[name]
    if value is None:
        return None
    if isinstance(value, bool):
        raise bad_request(f"{name} must be an ISO 8601 time, unix seconds, or null")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            dt = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise bad_request(f"{name} is not an ISO 8601 time: {value!r}") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=datetime.timezone.utc)
        return dt.timestamp()
    raise bad_request(f"{name} must be an ISO 8601 time, unix seconds, or null")


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat().replace("+00:00", "Z")
