"""The ``scale`` section of the node config: the HY2 SCALE face's timings and limits.

```yaml
scale:
  enabled: true          # the face under /scale/api/ on the control port; default true
  tokenTtl: 12h          # a token expires after this long unused (sliding); default 12h
  loginAttempts: 10      # failed logins allowed per remote address and window; default 10
  loginWindow: 5m        # the window of loginAttempts; default 5m
  kickRefusal: 60s       # a kicked device (DELETE /sessions/{key}) is refused this long; default 60s
  layoutPing: 20s        # SSE comment ping of /graph-layout/stream; default 20s
  layoutPoll: 500ms      # how often a layout stream looks for a change in the store; default 0.5s
  caDir: /etc/fastpath/peer-ca   # where a client's ``ca`` may name a file; default none (PEM only)
```

Every key is optional; no section means the face is on with these defaults.  The token TTL
can also be changed at run time through ``PUT /scale/api/settings/ui {session_timeout}``.
"""
from __future__ import annotations

from dataclasses import dataclass

from fastpath.config.fields import ConfigError, Section


@dataclass
class ScaleSettings:
    enabled: bool = True
    token_ttl: float = 12 * 3600.0
    login_attempts: int = 10
    login_window: float = 300.0
    kick_refusal: float = 60.0
    layout_ping: float = 20.0
    layout_poll: float = 0.5
    # A client's ``ca`` is PEM text; a path only inside this directory (None: never a path), so
    # the API cannot probe which files exist on the node.
    ca_dir: str | None = None


def parse_scale_config(raw) -> ScaleSettings:
    if raw is None:
        return ScaleSettings()
    s = Section(raw, "scale")
    out = ScaleSettings(
        enabled=s.bool("enabled", True),
        token_ttl=s.duration("tokenTtl", 12 * 3600.0),
        login_attempts=s.int("loginAttempts", 10, minimum=1, maximum=100_000),
        login_window=s.duration("loginWindow", 300.0),
        kick_refusal=s.duration("kickRefusal", 60.0),
        layout_ping=s.duration("layoutPing", 20.0),
        layout_poll=s.duration("layoutPoll", 0.5),
        ca_dir=s.str("caDir", None),
    )
    s.finish()
    if out.ca_dir is not None:
        import os
        if not os.path.isabs(out.ca_dir) or not os.path.isdir(out.ca_dir):
            raise ConfigError("scale.caDir", f"expected an existing directory as an absolute path, "
                                             f"got {out.ca_dir!r}")
        out.ca_dir = os.path.realpath(out.ca_dir)
    for key, value, low in (("tokenTtl", out.token_ttl, 1.0), ("loginWindow", out.login_window, 1.0),
                            ("kickRefusal", out.kick_refusal, 0.0), ("layoutPing", out.layout_ping, 0.1),
                            ("layoutPoll", out.layout_poll, 0.01)):
        if value < low:
            raise ConfigError(f"scale.{key}", f"must be at least {low:g}s")
    return out
