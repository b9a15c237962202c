"""``GET /metrics`` in the Prometheus text format, straight from the shared counters.

Counters are the monotonic totals (carried + live); the Traffic Stats API's "clear" is a
reader-side baseline and never affects them.  The per-user families (three samples per user:
30k lines at 10k users) are written by the compiled traffic view in one pass over the
segment; prometheus_client renders the few node-wide families after them.
"""
from __future__ import annotations

import time

import falcon
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from fastpath.control.auth import bearer_rule
from fastpath.control.traffic_accounting import traffic_cache
from fastpath.shm import KIND_NAMES, count_kinds


class NodeCollector:
    def __init__(self, node):
        self.node = node

    def collect(self):
        node = self.node
        table = node.table
        slots = GaugeMetricFamily("fastpath_worker_slots", "Live counter slots of a worker by kind",
                                  labels=["shard", "kind"])
        for shard, counts in enumerate(count_kinds(table)):
            for kind, count in enumerate(counts):
                if kind in KIND_NAMES and kind != 0:
                    slots.add_metric([str(shard), KIND_NAMES[kind]], count)
        yield slots
        restarts = CounterMetricFamily("fastpath_worker_restarts", "Restarts of a worker on its shard",
                                       labels=["shard"])
        age = GaugeMetricFamily("fastpath_worker_heartbeat_age_seconds",
                                "Seconds since a worker last wrote its heartbeat", labels=["shard"])
        now_ns = time.time_ns()
        for shard in range(table.nshards):
            info = table.shard_info(shard)
            restarts.add_metric([str(shard)], info["restarts"])
            age.add_metric([str(shard)], max(0.0, (now_ns - info["heartbeat_ns"]) / 1e9))
        yield restarts
        yield age
        status = node.status()
        if status:
            yield GaugeMetricFamily("fastpath_uptime_seconds", "Seconds since the supervisor started",
                                    value=status["uptime"])
            alive = GaugeMetricFamily("fastpath_child_up", "1 if a child process is running",
                                      labels=["child"])
            for child in status["children"]:
                alive.add_metric([child["name"]], 1 if child["alive"] else 0)
            yield alive
            try:
                import psutil
                rss = GaugeMetricFamily("fastpath_process_resident_memory_bytes",
                                        "Resident memory of a node process", labels=["child"])
                cpu = CounterMetricFamily("fastpath_process_cpu_seconds", "CPU time of a node process",
                                          labels=["child"])
                procs = [("supervisor", status["pid"])] + [(c["name"], c["pid"]) for c in status["children"] if c["pid"]]
                for name, pid in procs:
                    try:
                        p = psutil.Process(pid)
                        rss.add_metric([name], p.memory_info().rss)
                        times = p.cpu_times()
                        cpu.add_metric([name], times.user + times.system)
                    except psutil.Error:
                        continue
                yield rss
                yield cpu
            except ImportError:
                pass


def _family(sample: str, kind: str, help_text: str) -> tuple[bytes, bytes]:
    """(``# HELP`` and ``# TYPE`` lines, sample name) as prometheus_client writes them."""
    return (f"# HELP {sample} {help_text}\n# TYPE {sample} {kind}\n".encode(), sample.encode())


USER_FAMILIES = [
    _family("fastpath_user_tx_bytes_total", "counter", "Bytes sent to targets by a user (client upload)"),
    _family("fastpath_user_rx_bytes_total", "counter",
            "Bytes received from targets for a user (client download)"),
    _family("fastpath_user_online_connections", "gauge", "Authenticated connections of a user"),
]


class Metrics:
    def __init__(self, node):
        self.node = node
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(NodeCollector(node))

    def on_get(self, req, resp):
        resp.content_type = CONTENT_TYPE_LATEST
        users = traffic_cache(self.node, "traffic_stats").user_metrics(USER_FAMILIES)
        resp.data = users + generate_latest(self.registry)


def register(app: falcon.App, node):
    app.add_route("/metrics", Metrics(node))
    node.openapi.add("GET", "/metrics", "Prometheus metrics from the shared counters", tag="metrics",
                     content_type=CONTENT_TYPE_LATEST.split(";")[0],
                     response={"type": "string", "description": "Prometheus text exposition format"},
                     errors={401: "no or wrong bearer token (when control.token is set)"})
    return bearer_rule(node)
