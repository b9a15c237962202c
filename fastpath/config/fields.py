"""Typed getters for config sections that fail with one line naming the key and the problem.

Every section parser (node, hysteria, media, ...) reads its mapping through these, so a broken
config is always refused the same way: ``ConfigError("quic.maxIdleTimeout: expected ...")``.
"""
from __future__ import annotations

import re
from typing import Any, Mapping


class ConfigError(ValueError):
    """A config value is missing or wrong; ``str()`` is one line: ``key: problem``."""

    def __init__(self, key: str, problem: str):
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}" if key else problem)


class Section:
    """A config mapping at a dotted path, consumed key by key; ``finish()`` rejects the rest."""

    def __init__(self, raw: Any, path: str = ""):
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise ConfigError(path or "config", f"expected a mapping, got {type(raw).__name__}")
        self.raw = dict(raw)
        self.path = path
        self._seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def has(self, name: str) -> bool:
        return self.raw.get(name) is not None

    def _get(self, name: str):
        self._seen.add(name)
        return self.raw.get(name)

    def section(self, name: str) -> "Section":
        return Section(self._get(name), self.key(name))

    def str(self, name: str, default: str | None = None, *, required: bool = False,
            choices: tuple[str, ...] | None = None) -> str | None:
        value = self._get(name)
        if value is None:
            if required:
                raise ConfigError(self.key(name), "is required")
            return default
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ConfigError(self.key(name), f"expected a string, got {type(value).__name__}")
        value = str(value)
        if choices is not None and value not in choices:
            raise ConfigError(self.key(name), f"must be {_one_of(choices)}; got {value!r}")
        return value

    def int(self, name: str, default: int | None = None, *, minimum: int | None = None,
            maximum: int | None = None, required: bool = False) -> int | None:
        value = self._get(name)
        if value is None:
            if required:
                raise ConfigError(self.key(name), "is required")
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(self.key(name), f"expected an integer, got {value!r}")
        if minimum is not None and value < minimum:
            raise ConfigError(self.key(name), f"must be at least {minimum}; got {value}")
        if maximum is not None and value > maximum:
            raise ConfigError(self.key(name), f"must be at most {maximum}; got {value}")
        return value

    def float(self, name: str, default: float | None = None, *, minimum: float | None = None) -> float | None:
        value = self._get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(self.key(name), f"expected a number, got {value!r}")
        if minimum is not None and value < minimum:
            raise ConfigError(self.key(name), f"must be at least {minimum}; got {value}")
        return float(value)

    def bool(self, name: str, default: bool = False) -> bool:
        value = self._get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ConfigError(self.key(name), f"expected true or false, got {value!r}")
        return value

    def list(self, name: str, default: list | None = None) -> list:
        value = self._get(name)
        if value is None:
            return list(default or [])
        if not isinstance(value, list):
            raise ConfigError(self.key(name), f"expected a list, got {type(value).__name__}")
        return value

    def mapping(self, name: str) -> dict:
        value = self._get(name)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ConfigError(self.key(name), f"expected a mapping, got {type(value).__name__}")
        return dict(value)

    def duration(self, name: str, default: float | None = None) -> float | None:
        """Seconds, from a number or a Go-style duration string (``30s``, ``1m30s``, ``500ms``)."""
        value = self._get(name)
        if value is None:
            return default
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise ConfigError(self.key(name), str(exc)) from None

    def listen(self, name: str, default: str | None = None, *, required: bool = False) -> tuple[str, int] | None:
        value = self.str(name, default, required=required)
        if value is None:
            return None
        try:
            return parse_listen(value)
        except ValueError as exc:
            raise ConfigError(self.key(name), str(exc)) from None

    def finish(self) -> None:
        """Refuse keys nobody read: a typo must not be silently ignored."""
        unknown = sorted(set(self.raw) - self._seen)
        if unknown:
            raise ConfigError(self.key(unknown[0]), "unknown key")


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a duration such as 30s, got {value!r}")
    text = value.strip()
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if pos != len(text) or pos == 0:
        raise ValueError(f"expected a duration such as 30s or 1m30s, got {value!r}")
    return total


def parse_listen(value: str) -> tuple[str, int]:
    """``host:port``, ``:port`` (all interfaces) or ``[v6]:port`` → (host, port)."""
    text = str(value).strip()
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected host:port, got {value!r}")
    return host or "0.0.0.0", int(port)




def parse_bandwidth(value) -> int:
    """Bytes/s from the reference's strings: ``100 mbps``, ``1 g``, ``500kbps`` (decimal units
    of bits).  A bare number is an error there, and here too."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"expected a bandwidth such as '100 mbps', got {value!r}")
    m = re.match(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*$", value)
    if not m:
        raise ValueError(f"expected a bandwidth such as '100 mbps', got {value!r}")
    number, unit = float(m.group(1)), m.group(2).lower()
    scale = {"b": 1, "bps": 1, "k": 1e3, "kb": 1e3, "kbps": 1e3, "m": 1e6, "mb": 1e6,
             "mbps": 1e6, "g": 1e9, "gb": 1e9, "gbps": 1e9, "t": 1e12, "tb": 1e12,
             "tbps": 1e12}.get(unit)
    if scale is None:
        raise ValueError(f"unknown bandwidth unit {m.group(2)!r} in {value!r}")
    return int(number * scale / 8)


def _one_of(choices: tuple[str, ...]) -> str:
    """``one of a, b`` for an error message; an accepted empty value is said in words (a bare
    trailing ``, `` reads as a typo)."""
    named = ", ".join(c for c in choices if c != "")
    return f"one of {named}" + (" (or empty)" if "" in choices else "")
