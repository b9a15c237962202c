"""``GET /metrics`` in the Prometheus text format, straight from the shared counters.

Counters are the monotonic totals (carried + live); the Traffic Stats API's "clear" is a
reader-side baseline and never affects them.  prometheus_client renders the text format; the
values come from one Cython scan per scrape.
"""
from __future__ import annotations

import time

import falcon
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from fastpath.shm import KIND_NAMES, count_kinds


class NodeCollector:
    def __init__(self, node):
        self.node = node

    def collect(self):
        node = self.node
        table = node.table
        live = node.live_users()
        totals = node.user_totals(live)
        tx = CounterMetricFamily("fastpath_user_tx_bytes", "Bytes sent to targets by a user (client upload)",
                                 labels=["user"])
        rx = CounterMetricFamily("fastpath_user_rx_bytes", "Bytes received from targets for a user (client download)",
                                 labels=["user"])
        online = GaugeMetricFamily("fastpath_user_online_connections", "Authenticated connections of a user",
                                   labels=["user"])
        for uid in sorted(totals):
            t, r = totals[uid]
            tx.add_metric([uid], t)
            rx.add_metric([uid], r)
            online.add_metric([uid], live[uid][2] if uid in live else 0)
        yield tx
        yield rx
        yield online
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


class Metrics:
    def __init__(self, node):
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(NodeCollector(node))

    def on_get(self, req, resp):
        resp.content_type = CONTENT_TYPE_LATEST
        resp.data = generate_latest(self.registry)


def register(app: falcon.App, node) -> None:
    app.add_route("/metrics", Metrics(node))
    node.openapi.add("GET", "/metrics", "Prometheus metrics from the shared counters", tag="metrics",
                     content_type="text/plain")
