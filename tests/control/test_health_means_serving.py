"""/api/v1/health says healthy only when every worker has reported ready: a worker that runs
but is still starting (first start, or a restart in progress) is alive, not serving, and a
probe that trusted it would send traffic to a port nobody listens on yet."""
from __future__ import annotations

import falcon
import falcon.testing

from fastpath.control.native import Health


class _Node:
    def __init__(self, children):
        self.children = children

    def status(self):
        return {"uptime": 1.0, "children": self.children}


def _health(children):
    app = falcon.App()
    app.add_route("/h", Health(_Node(children)))
    return falcon.testing.TestClient(app).simulate_get("/h")


def _worker(shard, alive, ready):
    return {"name": f"worker[{shard}]", "shard": shard, "pid": 10 + shard, "alive": alive,
            "ready": ready, "restarts": 0}


def test_a_running_worker_that_is_not_ready_makes_the_node_degraded():
    r = _health([_worker(0, True, True), _worker(1, True, False)])
    assert r.status_code == 503
    assert r.json["status"] == "degraded"
    assert (r.json["workers_alive"], r.json["workers_ready"]) == (2, 1)


def test_every_worker_ready_is_healthy():
    r = _health([_worker(0, True, True), _worker(1, True, True),
                 {"name": "control-api", "shard": None, "pid": 3, "alive": True, "ready": True,
                  "restarts": 0}])
    assert r.status_code == 200
    assert (r.json["workers"], r.json["workers_ready"]) == (2, 2)


def test_no_status_is_degraded():
    app = falcon.App()
    app.add_route("/h", Health(type("N", (), {"status": lambda self: None})()))
    assert falcon.testing.TestClient(app).simulate_get("/h").status_code == 503
