"""Credential checks the proxy handshakes can be given (``check_credentials``)."""
from __future__ import annotations

import hmac


def fixed_credentials(username: str, password: str | None):
    """``check_credentials`` for one configured username and password."""
    want_user, want_password = username.encode(), (password or "").encode()

    async def check(user: bytes, password: bytes):
        ok = hmac.compare_digest(user, want_user) & hmac.compare_digest(password, want_password)
        return username if ok else None
    return check
