"""The ``x-api-key`` check, shared by REST (header) and gRPC (metadata).

Missing → 401 / UNAUTHENTICATED; not a UUID → 422 / INVALID_ARGUMENT; another UUID → 403 /
PERMISSION_DENIED.  Keys compare as UUIDs, so any spelling ``uuid.UUID`` reads (upper case,
braces, no dashes) of the configured key is accepted.
"""
from __future__ import annotations

import hmac
import uuid

from fastpath.control.pasarguard.errors import FaceError, Failure


def check_api_key(given: str | None, expected: uuid.UUID) -> None:
    if given is None or not given.strip():
        raise FaceError(Failure.UNAUTHENTICATED, "missing x-api-key header")
    try:
        key = uuid.UUID(given.strip())
    except ValueError:
        raise FaceError(Failure.BAD_KEY, "invalid api key format: must be a valid UUID") from None
    if not hmac.compare_digest(key.bytes, expected.bytes):
        raise FaceError(Failure.FORBIDDEN, "api key mismatch")
