"""The stream relay is no SSRF proxy (issue 19, item 5).

A real node with the default outbound rule (or one that lets only 127.0.0.2 through, standing
in for a public origin, since tests reach nothing beyond loopback): stream, transcode, failover
and webhook URLs naming the node's own control API, metadata or other refused addresses are
422s (m3u-proxy's validation shape) with a clear message; what slips past registration (a URL stored directly, a redirect, a
name) is refused by the workers when they connect; ``/webhooks/test`` says delivered or not
and nothing else.
"""
from __future__ import annotations

import asyncio
import json
import shutil
import time

import aiohttp
import pytest
from aiohttp import web

from fastpath.media import outbound
from fastpath.store import StateStore, media_store
from tests.media.origin import make_media
from tests.media.support import LiveReader, OriginProcess, WebhookReceiver, media_get, media_node, register

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")]

# The stand-in for a public origin: the only address these nodes may fetch from.
ORIGIN_HOST = "127.0.0.2"
ONLY_ORIGIN = {"allowUpstreamNetworks": [f"{ORIGIN_HOST}/32"]}


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory):
    return make_media(tmp_path_factory.mktemp("media"), seconds=6)


@pytest.fixture(scope="module")
def default_node(tmp_path_factory):
    """A node on the default rule (no opt-in at all)."""
    with media_node(tmp_path_factory.mktemp("sec-default"), {"allowUpstreamNetworks": []}) as n:
        yield n


def wait_until(check, timeout: float, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return False


def control_json(node) -> bytes:
    """The beginning of what the control API answers for ``/api/v1/node``: what an SSRF
    through the relay would hand to a viewer."""
    body = node.get("/api/v1/node").body
    assert body.startswith(b"{"), body[:80]
    return body[:24]


def test_a_stream_url_naming_the_control_api_is_refused_with_a_clear_4xx(default_node):
    node = default_node
    port = node.control_port
    before = node.get("/streams").json()["total"]
    for url, why in ((f"http://127.0.0.1:{port}//api/v1/node", "loopback"),
                     (f"http://localhost:{port}/api/v1/node", "loopback"),
                     (f"http://[::ffff:127.0.0.1]:{port}/api/v1/node", "loopback"),
                     (f"http://[::1]:{port}/api/v1/node", "loopback"),
                     (f"http://0.0.0.0:{port}/", "unspecified"),
                     (f"http://2130706433:{port}/", "not a valid address"),
                     (f"http://127.1:{port}/", "not a valid address"),
                     ("http://169.254.169.254/latest/meta-data/", "metadata"),
                     ("http://[fd00:ec2::254]/latest/meta-data/", "metadata"),
                     ("http://[fe80::1]/", "link-local"),
                     ("http://10.1.2.3/live.ts", "private"),
                     ("http://192.168.1.1/live.ts", "private"),
                     ("http://100.100.100.200/latest/meta-data/", "metadata")):
        r = node.post("/streams", {"url": url})
        assert r.status == 422, (url, r.status, r.body)
        # A validation error of the field, in m3u-proxy's (FastAPI's) 422 shape.
        assert why in r.text and "refused" in r.text, (url, r.text)
        assert r.json()["detail"][0]["loc"] == ["body", "url"]
        r = node.post("/streams", {"url": "http://example.invalid/a.ts", "failover_urls": [url]})
        assert r.status == 422 and "failover_urls[0]" in r.text and why in r.text, (url, r.text)
        r = node.post("/transcode", {"url": url, "profile": "default"})
        assert r.status == 422 and why in r.text, (url, r.text)
        r = node.post("/webhooks", {"url": url})
        assert r.status == 422 and why in r.text, (url, r.text)
    # Nothing was stored.
    assert node.get("/streams").json()["total"] == before
    assert node.get("/webhooks").json()["webhooks"] == []


def test_the_readable_answer_ssrf_of_the_issue_fails(default_node):
    """A stream that names the control API, stored behind the face's back (as a name that
    resolved elsewhere at registration would be): viewers get none of its answer."""
    node = default_node
    leak = control_json(node)
    url = f"http://localhost:{node.control_port}//api/v1/node"
    sid = register(node, url, kind="direct")
    viewer = LiveReader(node.media_port, f"/stream/{sid}")
    assert wait_until(lambda: "refused" in node.log() and "loopback" in node.log(), 10), node.log()[-2000:]
    time.sleep(1.0)
    viewer.close()
    # The viewer gets the node's own 503 (every URL refused), none of the control API's answer.
    assert viewer.head.startswith(b"HTTP/1.1 503"), viewer.head
    assert leak not in bytes(viewer.body) and b"every upstream URL failed" in viewer.body, \
        bytes(viewer.body[:200])
    # The HLS path (playlists are fetched whole and answered): a 502 that names the rule.
    hls = register(node, f"http://127.0.0.1:{node.control_port}/api/v1/node?x=.m3u8", kind="hls")
    r = media_get(node, f"/hls/{hls}/playlist.m3u8")
    assert r.status == 502 and "refused" in r.text and leak not in r.body, (r.status, r.body[:300])
    # VOD (one upstream request per viewer request).
    vod = register(node, f"http://127.0.0.1:{node.control_port}/api/v1/node", kind="vod")
    r = media_get(node, f"/stream/{vod}")
    assert r.status == 502 and leak not in r.body, (r.status, r.body[:300])


def test_a_redirect_from_an_allowed_origin_to_loopback_is_refused(tmp_path, media_dir):
    with OriginProcess(media_dir, host=ORIGIN_HOST) as origin, \
            media_node(tmp_path, ONLY_ORIGIN) as node:
        leak = control_json(node)
        # The origin's first answer redirects to the control API, later ones to its own stream.
        target = f"http://127.0.0.1:{node.control_port}//api/v1/node"
        r = node.post("/streams", {"url": f"{origin.base}/redirect/stream.ts?to={target}"})
        assert r.status == 200, r.body
        sid = r.json()["stream_id"]
        # The only URL's first answer is refused: the first viewer gets the node's 503 (every
        # URL failed), never the control API's answer; the relay retries and the next viewer
        # gets the origin's own stream.
        first = LiveReader(node.media_port, f"/stream/{sid}")
        assert wait_until(lambda: first.closed, 20), node.log()[-2000:]
        assert first.head.startswith(b"HTTP/1.1 503") and leak not in bytes(first.body)
        viewer = LiveReader(node.media_port, f"/stream/{sid}")
        assert wait_until(lambda: len(viewer.body) > 50_000, 20), node.log()[-2000:]
        viewer.close()
        assert leak not in bytes(viewer.body)
        assert "refused" in node.log() and "loopback" in node.log()
        assert origin.stats()["requests"]["/redirect/stream.ts"] >= 2   # refused, then retried


def test_a_transcode_input_is_fetched_by_the_node_under_the_rule(tmp_path, media_dir):
    """ffmpeg fetched transcode inputs itself (names, redirects, HLS segments: all out of the
    relay's reach); now the node fetches and pipes, so a refused input gives ffmpeg nothing."""
    with OriginProcess(media_dir) as loopback_origin, media_node(tmp_path, ONLY_ORIGIN) as node:
        sid = register(node, f"http://localhost:{loopback_origin.port}/live/stream.ts",
                       kind="transcode", profile="lowlatency", dedup_key="sec-transcode")
        viewer = LiveReader(node.media_port, f"/stream/{sid}")
        assert wait_until(lambda: "refused" in node.log(), 20), node.log()[-2000:]
        time.sleep(2.0)
        viewer.close()
        # The node's own 503 (its only URL refused), no byte of the refused input.
        assert viewer.head.startswith(b"HTTP/1.1 503") and b"every upstream URL failed" in viewer.body
        assert loopback_origin.stats()["live_connections"] == 0
        assert not loopback_origin.stats()["requests"].get("/live/stream.ts")


def test_webhooks_test_answers_reachable_or_not_and_nothing_more(tmp_path):
    with WebhookReceiver(status=503) as receiver, \
            media_node(tmp_path, {"allowUpstreamNetworks": ["127.0.0.1/32"]}) as node:
        assert node.post("/webhooks", {"url": receiver.url, "retry_attempts": 0}).status == 200
        r = node.post(f"/webhooks/test?webhook_url={receiver.url}")
        body = r.json()
        assert r.status == 200 and body["delivered"] is False, body
        assert set(body) == {"message", "event_id", "delivered", "attempts"}
        # Nothing of the receiver's answer (its status) comes back; the event id is a random
        # UUID, which may contain "503" by chance, so it is left out of the check.
        assert "503" not in json.dumps({k: v for k, v in body.items() if k != "event_id"})
        # A metadata target stored behind the face's back: refused before any connection,
        # and the answer looks the same as for any other unreachable target.
        store = StateStore(node.data_dir / "state.db")
        media_store.put_webhook(store, media_store.Webhook(
            url="http://169.254.169.254/latest/meta-data/", events=[], timeout=5, retry_attempts=2))
        started = time.monotonic()
        r = node.post("/webhooks/test?webhook_url=http://169.254.169.254/latest/meta-data/")
        assert time.monotonic() - started < 2.0     # no tries, no backoff
        body = r.json()
        assert r.status == 200 and body["delivered"] is False
        assert set(body) == {"message", "event_id", "delivered", "attempts"}, body
        assert "metadata" in node.log()


def test_the_connection_goes_to_the_address_that_was_checked():
    """DNS rebinding: a name whose lookup answers an allowed and a refused address.  The
    connector gets only the checked, allowed one; a server on the refused address (same port)
    never sees a connection, whatever order the answers come in."""
    async def main():
        hits = {"allowed": 0, "refused": 0}

        def app(name):
            async def handle(request):
                hits[name] += 1
                return web.Response(text=name)
            a = web.Application()
            a.router.add_get("/", handle)
            return a
        # The same port on both addresses: the port the kernel gave ORIGIN_HOST may be held
        # on 127.0.0.1 by another socket (a client's ephemeral port), so try a few.
        for attempt in range(20):
            allowed_runner = web.AppRunner(app("allowed"))
            await allowed_runner.setup()
            site = web.TCPSite(allowed_runner, ORIGIN_HOST, 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]
            refused_runner = web.AppRunner(app("refused"))
            await refused_runner.setup()
            try:
                await web.TCPSite(refused_runner, "127.0.0.1", port).start()
                break
            except OSError:
                await refused_runner.cleanup()
                await allowed_runner.cleanup()
        else:
            raise AssertionError("no port free on both loopback addresses in 20 tries")

        class Rebinding(aiohttp.abc.AbstractResolver):
            """Answers differ from lookup to lookup, the refused address first."""
            calls = 0

            async def resolve(self, host, port=0, family=0):
                Rebinding.calls += 1
                order = ["127.0.0.1", ORIGIN_HOST] if Rebinding.calls % 2 else [ORIGIN_HOST, "127.0.0.1"]
                return [{"hostname": host, "host": a, "port": port, "family": 2, "proto": 6,
                         "flags": 0} for a in order]

            async def close(self):
                pass

        policy = outbound.OutboundPolicy(allow_networks=[f"{ORIGIN_HOST}/32"])
        conn = aiohttp.TCPConnector(resolver=outbound.GuardedResolver(policy, Rebinding()),
                                    use_dns_cache=False, force_close=True)
        async with aiohttp.ClientSession(connector=conn) as session:
            for _ in range(6):
                async with session.get(f"http://rebind.test:{port}/") as resp:
                    assert await resp.text() == "allowed"
        await allowed_runner.cleanup()
        await refused_runner.cleanup()
        return hits
    hits = asyncio.run(main())
    assert hits == {"allowed": 6, "refused": 0}


def test_the_rule_on_addresses():
    strict = outbound.OutboundPolicy()
    private = outbound.OutboundPolicy(allow_private=True)
    for ip in ("127.0.0.1", "127.9.9.9", "::1", "0.0.0.0", "::", "169.254.169.254", "169.254.1.1",
               "fe80::1", "fd00:ec2::254", "::ffff:127.0.0.1", "::ffff:169.254.169.254",
               "64:ff9b::7f00:1", "2002:7f00:1::", "224.0.0.1", "ff02::1", "240.0.0.1",
               "255.255.255.255", "192.0.2.1", "198.18.0.1", "100.100.100.200", "192.0.0.192"):
        assert strict.refusal(ip) is not None, ip
        assert private.refusal(ip) is not None, ip
    for ip in ("10.0.0.1", "172.16.5.5", "192.168.0.10", "100.64.1.1", "fd12:3456::1",
               "::ffff:10.0.0.1"):
        assert "private" in strict.refusal(ip), ip
        assert private.refusal(ip) is None, ip
    for ip in ("93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"):
        assert strict.refusal(ip) is None, ip
    listed = outbound.OutboundPolicy(allow_networks=["127.0.0.0/8"])
    assert listed.refusal("127.0.0.1") is None
    assert listed.refusal("169.254.169.254") is not None and listed.refusal("::1") is not None
    assert outbound.OutboundPolicy(allow_networks=["169.254.0.0/16"]).refusal("169.254.169.254")


def test_the_rule_in_the_config(tmp_path):
    from fastpath.config.fields import ConfigError
    from fastpath.media.config import parse_media_config
    s = parse_media_config({})
    assert s.allow_private_upstreams is False and s.allow_upstream_networks == []
    s = parse_media_config({"allowPrivateUpstreams": True, "allowUpstreamNetworks": ["127.0.0.1"]})
    assert s.allow_private_upstreams and str(s.allow_upstream_networks[0]) == "127.0.0.1/32"
    with pytest.raises(ConfigError, match="allowUpstreamNetworks"):
        parse_media_config({"allowUpstreamNetworks": ["not-a-net"]})
