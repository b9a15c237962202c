"""The node's configuration: one YAML file, or built-in defaults when there is none.

The top level accepts the Hysteria 2 server's own keys unchanged (``listen``, ``tls``, ``auth``,
``trafficStats`` ...), so a reference config migrates as is; fastpath's own sections sit beside
them (``node``, ``control``, ``counters``, ``media``, ``pasarguard``, ``scale``,
``inbounds``).  Each section
is parsed by the module that owns it; any unknown key is refused with one line naming it.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastpath.config.yaml_text import YamlProblem, load_yaml

from fastpath.config.fields import ConfigError, Section, parse_listen

# Keys of the reference Hysteria 2 server config, handed to fastpath.hy2.config as one mapping.
HYSTERIA_KEYS = ("listen", "tls", "obfs", "quic", "bandwidth", "ignoreClientBandwidth",
                 "udpIdleTimeout", "disableUDP", "auth", "masquerade", "speedTest")

# Sections parsed by the module that owns the face: "module:function(raw dict) -> settings".
SECTION_PARSERS = {
    "hysteria": "fastpath.hy2.config:parse_server_config",
    "media": "fastpath.media.config:parse_media_config",
    "pasarguard": "fastpath.control.pasarguard.config:parse_pasarguard_config",
    "scale": "fastpath.control.hy2scale.config:parse_scale_config",
    "inbounds": "fastpath.inbounds.config:parse_inbounds_config",
}

DEFAULT_CONTROL_LISTEN = "127.0.0.1:9480"


@dataclass
class ControlSettings:
    host: str = "127.0.0.1"
    port: int = 9480
    token: str | None = None
    workers: int = 1
    threads: int = 8

    @property
    def on_loopback(self) -> bool:
        return self.host in ("127.0.0.1", "localhost", "::1") or self.host.startswith("127.")


@dataclass
class TrafficStatsSettings:
    listen: tuple[str, int] | None = None
    secret: str | None = None
    list_all_users: bool = False


@dataclass
class NodeConfig:
    data_dir: Path
    name: str = "fastpath"
    workers: int = 1
    slots_per_shard: int = 65536
    control: ControlSettings = field(default_factory=ControlSettings)
    traffic_stats: TrafficStatsSettings = field(default_factory=TrafficStatsSettings)
    sections: dict[str, Any] = field(default_factory=dict)
    source: str | None = None
    raw: dict = field(default_factory=dict)

    @property
    def counter_segment_path(self) -> str:
        """The segment's name in /dev/shm is derived from the data dir, so one node's restart
        finds the segment its crashed predecessor left."""
        import hashlib
        digest = hashlib.sha256(str(self.data_dir.resolve()).encode()).hexdigest()[:16]
        shm = "/dev/shm" if os.path.isdir("/dev/shm") else str(self.data_dir)
        return f"{shm}/fastpath-{digest}.counters"

    @property
    def command_socket(self) -> Path:
        return self.data_dir / "control.sock"

    @property
    def store_path(self) -> Path:
        return self.data_dir / "state.db"


def load_config(path: str | os.PathLike | None, data_dir: str | os.PathLike | None = None) -> NodeConfig:
    """Read and validate a config file (or the defaults when ``path`` is None)."""
    raw: dict = {}
    if path is not None:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError("", f"cannot read config {path}: {exc.strerror}") from None
        try:
            raw = load_yaml(text) or {}
        except YamlProblem as exc:
            raise ConfigError("", f"{path}: not valid YAML {exc}") from None
    return parse_config(raw, source=str(path) if path else None, data_dir=data_dir)


def parse_config(raw: Any, *, source: str | None = None, data_dir=None) -> NodeConfig:
    top = Section(raw)
    node = top.section("node")
    cfg = NodeConfig(data_dir=Path(data_dir or node.str("dataDir", "./fastpath-data")),
                     source=source, raw=dict(top.raw))
    cfg.name = node.str("name", "fastpath")
    workers = node.raw.get("workers", 1)
    if workers == "auto":
        node.str("workers")
        cfg.workers = os.cpu_count() or 1
    else:
        cfg.workers = node.int("workers", 1, minimum=1, maximum=256)
    node.finish()

    counters = top.section("counters")
    cfg.slots_per_shard = counters.int("slotsPerShard", 65536, minimum=64, maximum=4_000_000)
    counters.finish()

    control = top.section("control")
    host, port = control.listen("listen", DEFAULT_CONTROL_LISTEN)
    cfg.control = ControlSettings(host=host, port=port, token=control.str("token"),
                                  workers=control.int("workers", 1, minimum=1, maximum=64),
                                  threads=control.int("threads", 8, minimum=1, maximum=256))
    control.finish()

    ts = top.section("trafficStats")
    cfg.traffic_stats = TrafficStatsSettings(listen=ts.listen("listen"), secret=ts.str("secret"),
                                             list_all_users=ts.bool("listAllUsers", False))
    ts.finish()

    hysteria = {k: top._get(k) for k in HYSTERIA_KEYS if k in top.raw}
    sections = {"hysteria": hysteria}
    for name in ("media", "pasarguard", "scale"):
        sections[name] = top.mapping(name) if name in top.raw else None
    sections["inbounds"] = top._get("inbounds")        # a list, checked by its parser
    top.finish()
    for name, raw_section in sections.items():
        cfg.sections[name] = _parse_section(name, raw_section)
    return cfg


def _parse_section(name: str, raw_section):
    module_name, func_name = SECTION_PARSERS[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name) and raw_section:
            raise ConfigError(name, "this build of fastpath has no such face") from None
        if exc.name and module_name.startswith(exc.name):
            return None
        raise
    return getattr(module, func_name)(raw_section)


__all__ = ["ConfigError", "NodeConfig", "ControlSettings", "TrafficStatsSettings",
           "load_config", "parse_config", "parse_listen"]
