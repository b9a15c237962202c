"""The control API process: gunicorn, started from Python, serving the Falcon app.

Threaded workers so long-lived responses (SSE, log streams) do not block other requests; the
worker class (control/http_worker.py) collects each request on its poller with a deadline before
a thread sees it, so slow or idle clients cannot hold the threads.  Binds the control listener, plus ``trafficStats.listen`` when configured (the same
app; the Traffic Stats face tells the listeners apart by the local address of the socket).
"""
from __future__ import annotations

import argparse
import os
import sys

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger as GunicornLogger

from fastpath.config import ConfigError, load_config
from fastpath.node_log import log_to_node_file, setup_process_logging
from fastpath.supervisor.child_process import (describe_startup_error, die_with_parent,
                                               report_failure, report_ready)


class NodeLogger(GunicornLogger):
    """gunicorn's error log through this process's root logger, so its lines have the node's
    one format and land in node.log too (gunicorn otherwise writes its own format to stderr)."""

    def setup(self, cfg):
        super().setup(cfg)
        for handler in list(self.error_log.handlers):
            if getattr(handler, "_gunicorn", False):
                self.error_log.removeHandler(handler)
        self.error_log.propagate = True


def _worker_ready(_worker) -> None:
    """gunicorn's post_worker_init: the app is loaded and the worker about to serve."""
    report_ready()


def _bind(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ControlApiServer(BaseApplication):
    def __init__(self, config_path: str | None, data_dir: str | None):
        self.config_path = config_path
        self.data_dir = data_dir
        self.node_config = load_config(config_path, data_dir)
        super().__init__()

    def load_config(self):
        cfg = self.node_config
        binds = [_bind(cfg.control.host, cfg.control.port)]
        if cfg.traffic_stats.listen:
            binds.append(_bind(*cfg.traffic_stats.listen))
        settings = {
            "bind": binds,
            "workers": cfg.control.workers,
            "threads": cfg.control.threads,
            "worker_class": "fastpath.control.http_worker.HeadDeadlineWorker",
            "worker_connections": 4096,
            "graceful_timeout": 2,
            "timeout": 60,
            "keepalive": 5,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": os.environ.get("FASTPATH_LOG_LEVEL", "info").lower(),
            "proc_name": "fastpath-control",
            "logger_class": NodeLogger,
            "post_worker_init": _worker_ready,
        }
        if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 25.1
            settings["control_socket_disable"] = True
        for key, value in settings.items():
            self.cfg.set(key, value)

    def load(self):
        from fastpath.control.app import create_app
        from fastpath.control.node_model import NodeModel
        try:
            return create_app(NodeModel(load_config(self.config_path, self.data_dir)))
        except Exception as exc:
            report_failure(describe_startup_error(exc))   # gunicorn then halts (exit 3)
            raise


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="fastpath-control")
    parser.add_argument("--config")
    parser.add_argument("--data-dir")
    args = parser.parse_args(argv)
    die_with_parent()
    setup_process_logging(None, "control")
    try:
        server = ControlApiServer(args.config, args.data_dir)
    except ConfigError as exc:
        report_failure(f"config error: {exc}")
        return 2
    log_to_node_file(server.node_config.data_dir, "control")
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
