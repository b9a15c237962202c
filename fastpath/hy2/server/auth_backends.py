"""Who may use the server: the node's user table first, then the configured ``auth`` backend.

Each backend returns the id that keys every traffic statistic, or None to refuse, following the
reference server's rules (``password``: id ``user``; ``userpass``: the lower-cased user name;
``http``: the ``id`` of a 200 ``{"ok": true}`` answer; ``command``: the program's trimmed stdout
when it exits 0).

The ``command`` backend differs from the reference in one way, on purpose: the program gets
``addr - tx`` as its arguments and the auth string as one line on stdin, because arguments are
readable by every local user and an auth string starting with ``-`` would reach the program as
an option.  ``auth.commandArgv: true`` passes ``addr auth tx`` as the reference does.
"""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
from typing import Protocol

from fastpath.hy2.config import AuthSettings
from fastpath.hy2.server.http_session import new_session

log = logging.getLogger("fastpath.hy2.auth")

# The default tag of the Hysteria 2 listener in a user's ``inbounds`` (the name panels use for it).
INBOUND_TAG = "hysteria2"

HTTP_TIMEOUT = 10.0
COMMAND_TIMEOUT = 10.0


class Authenticator(Protocol):
    async def authenticate(self, addr: str, auth: str, client_rx: int) -> str | None: ...

    async def close(self) -> None: ...


class _HoldsNothing:
    """An authenticator with nothing to release when the server stops."""

    async def close(self) -> None:
        return None


class PasswordAuth(_HoldsNothing):
    def __init__(self, password: str):
        self.password = password.encode()

    async def authenticate(self, addr, auth, client_rx):
        return "user" if hmac.compare_digest(auth.encode(), self.password) else None


class UserpassAuth(_HoldsNothing):
    def __init__(self, table: dict[str, str]):
        self.table = {user.lower(): password.encode() for user, password in table.items()}

    async def authenticate(self, addr, auth, client_rx):
        user, sep, password = auth.partition(":")
        if not sep:
            return None
        user = user.lower()
        expected = self.table.get(user)
        if expected is None or not hmac.compare_digest(password.encode(), expected):
            return None
        return user


class HttpAuth:
    def __init__(self, url: str, insecure: bool = False):
        self.url = url
        self.insecure = insecure
        self._session = None

    async def authenticate(self, addr, auth, client_rx):
        import aiohttp
        if self._session is None or self._session.closed:
            self._session = new_session(HTTP_TIMEOUT, self.insecure)
        body = {"addr": addr, "auth": auth, "tx": client_rx}
        try:
            async with self._session.post(self.url, json=body) as resp:
                if resp.status != 200:
                    return None
                answer = json.loads(await resp.read())
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            log.warning("http auth backend %s failed: %s", self.url, exc)
            return None
        if not isinstance(answer, dict) or answer.get("ok") is not True:
            return None
        user_id = answer.get("id")
        return str(user_id) if user_id is not None else ""

    async def close(self):
        if self._session is not None:
            await self._session.close()


class CommandAuth(_HoldsNothing):
    def __init__(self, command: str, argv: bool = False):
        self.command = command
        self.argv = argv

    async def authenticate(self, addr, auth, client_rx):
        if self.argv:
            args, stdin, data = (addr, auth, str(client_rx)), asyncio.subprocess.DEVNULL, None
        else:
            # "-" where the reference puts the auth string: positions stay those of the
            # reference, and "-" is the usual spelling of "read it from stdin".
            args, stdin = (addr, "-", str(client_rx)), asyncio.subprocess.PIPE
            data = auth.encode("utf-8", "surrogateescape") + b"\n"
        try:
            proc = await asyncio.create_subprocess_exec(
                self.command, *args, stdin=stdin, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL)
        except OSError as exc:
            log.warning("auth command %s cannot run: %s", self.command, exc)
            return None
        try:
            # communicate() ignores a program that exits without reading stdin (broken pipe).
            out, _ = await asyncio.wait_for(proc.communicate(data), COMMAND_TIMEOUT)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            return None
        if proc.returncode != 0:
            return None
        return out.decode("utf-8", "replace").strip()


def make_backend(settings: AuthSettings) -> Authenticator | None:
    if settings.type == "password":
        return PasswordAuth(settings.password or "")
    if settings.type == "userpass":
        return UserpassAuth(settings.userpass)
    if settings.type == "http":
        return HttpAuth(settings.http_url, settings.http_insecure)
    if settings.type == "command":
        return CommandAuth(settings.command, settings.command_argv)
    return None


class NodeAuthenticator:
    """The node's user table (``UserDirectory``), then the backend.

    A secret the table knows decides alone: a disabled, expired or over-limit user is refused
    even if the backend would accept.  An id a backend returns is still refused while the table
    says that user may not connect.
    """

    def __init__(self, users=None, backend: Authenticator | None = None,
                 inbound_tag: str = INBOUND_TAG):
        self.users = users
        self.backend = backend
        self.inbound_tag = inbound_tag

    async def authenticate(self, addr: str, auth: str, client_rx: int) -> str | None:
        if self.users is not None:
            user, reason = self.users.authenticate(auth, self.inbound_tag)
            if user is not None:
                if reason:
                    log.info("auth refused for %s from %s: %s", user.id, addr, reason)
                    return None
                return self._device_allowed(user.id, addr)
        if self.backend is None:
            return None
        user_id = await self.backend.authenticate(addr, auth, client_rx)
        if user_id is None:
            return None
        if self.users is not None and self.users.refused_reason(user_id):
            return None
        return self._device_allowed(user_id, addr)

    def refuse_over_limit(self, user_id: str) -> None:
        """A pump found ``user_id``'s cap reached: refuse it at auth from now on, before the
        supervisor's next scan says so too (its next over_limit list replaces the set, so a
        reset lets the user back in)."""
        if self.users is not None:
            self.users.over_limit = self.users.over_limit | {user_id}

    def on_device_cutoff(self, listener) -> None:
        """``listener(user_id, ip) -> closed`` closes a kicked device's live connections."""
        if self.users is not None:
            self.users.on_device_cutoff(listener)

    def _device_allowed(self, user_id: str, addr: str) -> str | None:
        """``user_id``, or None while this device (user, remote ip) is refused after a kick."""
        if self.users is not None and self.users.device_refused(user_id, addr):
            log.info("auth refused for %s from %s: device kicked recently", user_id, addr)
            return None
        return user_id

    async def close(self):
        if self.backend is not None:
            await self.backend.close()
