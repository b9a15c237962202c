"""``GET /scale/api/topology`` at 50 peers (issue 16's benchmark), same run against ``/peers``
(the same workers' broadcast, a smaller answer) and ``/clients`` (no broadcast: the store row
only).  A real node with 2 workers; peer ``b`` is a real second node (connected), the other 49
clients point at loopback ports nobody serves (the workers keep failing to dial them, as a
mesh with dead peers does).  Rounds alternate the three routes with the same warm-up; the
figure is milliseconds per request and the ratio to ``/clients``.  The machine is shared and
noisy: several rounds are printed.
"""
import socket
import statistics
import time

import pytest

from tests.hy2scale.conftest import SCALE, ScaleClient
from tests.support.node import NodeProcess

pytestmark = pytest.mark.integration

PEERS = 50
ROUNDS = 4
PER_ROUND = 15


def dead_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_topology_at_50_peers(tmp_path_factory):
    with NodeProcess(tmp_path_factory.mktemp("topo-b"), {"scale": dict(SCALE)}) as b, \
            NodeProcess(tmp_path_factory.mktemp("topo-a"), {"scale": dict(SCALE)}, workers=2) as a:
        sb, sa = ScaleClient(b), ScaleClient(a)
        assert sb("POST", "/users", {"username": "peeruser", "password": "pw"}).status == 201
        assert sa("POST", "/clients", {"name": "b", "addr": b.config["listen"], "password": "peeruser:pw",
                                       "insecure": True, "max_tx": 100 * 125_000}).status == 201
        for i in range(PEERS - 1):
            assert sa("POST", "/clients", {"name": f"dead{i:02d}", "addr": f"127.0.0.1:{dead_port()}",
                                           "password": "x", "insecure": True}).status == 201
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            topo = sa.get("/topology").json()
            if next(p for p in topo if p["name"] == "b")["connected"]:
                break
            time.sleep(0.5)
        assert len(topo) == PEERS + 1

        def timed(path):
            t0 = time.perf_counter()
            for _ in range(PER_ROUND):
                r = sa.get(path)
                assert r.status == 200
            return (time.perf_counter() - t0) * 1000 / PER_ROUND
        for path in ("/topology", "/peers", "/clients"):
            timed(path)                                   # warm-up
        rows = {"/topology": [], "/peers": [], "/clients": []}
        for _ in range(ROUNDS):
            for path in rows:
                rows[path].append(timed(path))
        size = len(sa.get("/topology").body)
        print(f"\n/topology at {PEERS} peers ({size} bytes), ms per request per round:")
        for path, ms in rows.items():
            print(f"  {path:10s} " + " ".join(f"{m:6.1f}" for m in ms) + f"   median {statistics.median(ms):6.1f}")
        ratios = [t / c for t, c in zip(rows["/topology"], rows["/clients"])]
        print("  /topology / /clients per round: " + " ".join(f"{r:.2f}" for r in ratios))
        ratios = [t / p for t, p in zip(rows["/topology"], rows["/peers"])]
        print("  /topology / /peers per round:   " + " ".join(f"{r:.2f}" for r in ratios))
