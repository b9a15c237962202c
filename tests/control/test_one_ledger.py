"""One ledger under every face: users made by HY2 SCALE, by PasarGuard (its limit set with a
native write) and by the native API are driven to their limits at once, over Hysteria 2,
while all three faces keep writing other users.  Then the figure every face shows (native
``used``, HY2 SCALE's listing and item ``traffic_used``, the Traffic Stats API's ``/traffic``,
PasarGuard's ``UserStat``) and the moment of the cut (what the target received, the refusal
at auth) agree exactly: one rule (``fastpath.store.ledger.used``) for display and enforcement.

Real ``fastpath serve`` (one worker, so the pumps cut at the limit to the byte), our Hysteria 2
client, the PasarGuard REST face over TLS with protobuf bodies, loopback targets.
"""
from __future__ import annotations

import asyncio
import threading
import time

import pytest

from fastpath.control.pasarguard import service_pb2 as pb
from fastpath.worker.event_loop import run
from tests.hy2.test_limit_precision import (CountingSink, refused, upload_until_cut,  # noqa: F401
                                            wait_for)
from tests.hy2.targets import TargetThread
from tests.hy2scale.conftest import ScaleClient
from tests.pasarguard.panel_client import pasarguard_section, wait_tls_port
from tests.pasarguard.test_protocol import Rest, started, user
from tests.support.node import NodeProcess

pytestmark = pytest.mark.integration

LIMIT = 1024 * 1024 + 12345       # not a multiple of any chunk size


class Face:
    """What ``tests.pasarguard.test_protocol.Rest`` needs of the node."""

    def __init__(self, node, section):
        self.node = node
        self.api_key = section["apiKey"]
        self.rest_port = int(section["listen"].rsplit(":", 1)[1])
        self.ca_path = node.data_dir / "tls" / "node.crt"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    section = pasarguard_section(grpc=False)
    targets = TargetThread()
    sinks = {name: CountingSink() for name in ("sc", "pg", "nat")}
    ports = {name: targets.tcp(sink.handler) for name, sink in sinks.items()}
    with NodeProcess(tmp_path_factory.mktemp("ledger"), {"pasarguard": section}) as node:
        face = Face(node, section)
        wait_tls_port(face.rest_port, node=node)
        yield node, Rest(face), ScaleClient(node), sinks, ports
    targets.close()


def stat(rest, name: str) -> int:
    status, body = rest.request("GET", "/stats", pb.StatRequest(name=name, type=pb.UserStat).SerializeToString())
    assert status == 200, body
    return sum(s.value for s in pb.StatResponse.FromString(body).stats)


def figures(node, rest, scale, ids: dict) -> dict:
    """Every face's figure of each user, read one after the other."""
    listing = {u["id"]: u for u in scale.get("/users").json()}
    traffic = node.get("/traffic").json()
    out = {}
    for name, uid in ids.items():
        got = {"native": node.get(f"/api/v1/users/{uid}").json()["used"],
               "scale list": listing[uid]["traffic_used"],
               "scale item": scale.get(f"/users/{uid}").json()["traffic_used"],
               "traffic stats": traffic.get(uid, {"tx": 0, "rx": 0})["tx"] + traffic.get(uid, {"tx": 0, "rx": 0})["rx"]}
        if name == "pg":
            got["pasarguard"] = stat(rest, uid)
        out[name] = got
    return out


class Churn(threading.Thread):
    """Writes through all three faces at once: users made and removed on each."""

    def __init__(self, node, rest, scale):
        super().__init__(daemon=True)
        self.node, self.rest, self.scale = node, rest, scale
        self.stop = threading.Event()
        self.bad: list = []
        self.rounds = 0

    def check(self, what, status, body=b""):
        if not 200 <= status < 300:
            self.bad.append((what, status, body[:200]))

    def run(self):
        i = 0
        while not self.stop.is_set():
            i += 1
            r = self.scale("POST", "/users", {"username": f"churn{i}", "password": "x", "traffic_limit": 10 ** 9})
            self.check("scale create", r.status, r.body)
            if r.status == 201:
                r = self.scale("DELETE", f"/users/{r.json()['id']}")
                self.check("scale delete", r.status, r.body)
            r = self.node.post("/api/v1/users", {"id": f"churn-n{i}", "auth_secret": f"cn{i}", "traffic_limit": 10 ** 9})
            self.check("native create", r.status, r.body)
            r = self.node.request("DELETE", f"/api/v1/users/churn-n{i}")
            self.check("native delete", r.status, r.body)
            for inbounds in (("hysteria2",), ()):
                status, body = self.rest.request("PUT", "/user/sync",
                                                 user(f"churn-p{i}", f"cp{i}", inbounds).SerializeToString())
                self.check("pasarguard sync", status, body)
            self.rounds = i


def test_every_face_shows_the_figure_enforcement_cuts_at(setup):
    node, rest, scale, sinks, ports = setup
    # PasarGuard makes its user; a native write gives it a limit (the panel has no limits).
    started(rest, [user("pg-lim", "pg-secret")])
    r = node.request("PATCH", "/api/v1/users/pg-lim", {"traffic_limit": LIMIT})
    assert r.status == 200 and r.json()["source"] == "pasarguard", r.text
    r = scale("POST", "/users", {"username": "sclim", "password": "pw", "traffic_limit": LIMIT})
    assert r.status == 201, r.text
    sc_id = r.json()["id"]
    assert node.post("/api/v1/users", {"id": "nat-lim", "auth_secret": "nat-secret",
                                       "traffic_limit": LIMIT}).status == 201
    ids = {"sc": sc_id, "pg": "pg-lim", "nat": "nat-lim"}
    secrets = {"sc": "sclim:pw", "pg": "pg-secret", "nat": "nat-secret"}

    churn = Churn(node, rest, scale)
    churn.start()
    try:
        async def drive():
            await asyncio.gather(*(upload_until_cut(node, secrets[n], ports[n], 40 * LIMIT) for n in ids))
        run(drive())
        for name, sink in sinks.items():
            wait_for(lambda s=sink: s.received, 10, f"the {name} target saw its stream end")
    finally:
        churn.stop.set()
        churn.join(30)
    assert not churn.bad, churn.bad[:5]
    assert churn.rounds >= 1

    # The moment of the cut: each target got exactly the limit, and auth refuses each user.
    assert {name: sink.received for name, sink in sinks.items()} == {name: [LIMIT] for name in sinks}
    for name in ids:
        assert run(refused(node, secrets[name])), f"{name} still admitted past its limit"
    # The figure every face shows is that same number.
    shown = figures(node, rest, scale, ids)
    print("figures at the cut:", shown)
    for name, got in shown.items():
        assert set(got.values()) == {LIMIT}, (name, got)

    # A reset through each owner's face (HY2 SCALE's reset-traffic, native reset for the
    # other two) starts usage again everywhere usage is shown, and lets each user back in.
    assert scale("PUT", f"/users/{sc_id}/reset-traffic").status == 200
    for uid in ("pg-lim", "nat-lim"):
        assert node.post(f"/api/v1/users/{uid}/reset").status == 200
    after = figures(node, rest, scale, ids)
    for name, got in after.items():
        assert got["native"] == got["scale list"] == got["scale item"] == 0, (name, got)
        assert got["traffic stats"] == LIMIT, (name, got)      # its own clear, not taken
    assert after["pg"]["pasarguard"] == LIMIT                   # the panel's own reset scope
    for name in ids:
        assert not run(refused(node, secrets[name])), f"{name} refused after its reset"
    # Once more to the limit: cut again at exactly the limit (usage counts from the reset).
    for sink in sinks.values():
        sink.received.clear()

    async def again():
        await asyncio.gather(*(upload_until_cut(node, secrets[n], ports[n], 40 * LIMIT) for n in ids))
    run(again())
    for name, sink in sinks.items():
        wait_for(lambda s=sink: s.received, 10, f"the {name} target saw its second stream end")
    assert {name: sink.received for name, sink in sinks.items()} == {name: [LIMIT] for name in sinks}
    deadline = time.monotonic() + 5
    while True:
        shown = figures(node, rest, scale, ids)
        if all(g["native"] == LIMIT for g in shown.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for name, got in shown.items():
        assert got["native"] == got["scale list"] == got["scale item"] == LIMIT, (name, got)
        assert got["traffic stats"] == 2 * LIMIT, (name, got)
