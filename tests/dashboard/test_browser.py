"""The dashboard in a real browser (Debian's chromium through Playwright) against a real node,
with our Hysteria 2 client moving real traffic as a user created in the page.

No browser download: Playwright drives ``/usr/bin/chromium`` (``executable_path``).  Every page
must load with no console error and no failed request; a screenshot of each page is saved in
the test's tmp dir (its path is printed)."""
from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time

import pytest

from fastpath.hy2.client.client import simple_client
from fastpath.worker.event_loop import run
from tests.support.node import NodeProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TOKEN = "browser-test-token"
MOVE = 5_000_000
# The control API's start (create_app) takes 5-15 s on the shared 2-core machine under load.
STARTUP = 60


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extras)")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    n = NodeProcess(tmp_path_factory.mktemp("dashnode"), {"control": {"token": TOKEN}})
    n.start(timeout=STARTUP)
    try:
        yield n
    finally:
        n.stop()


class Watched:
    """A page whose console errors, page errors and failed requests are all recorded."""

    def __init__(self, page, shots):
        self.page = page
        self.shots = shots
        self.problems: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.problems.append(f"console: {m.text}"))
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.on("requestfailed", self._failed)
        page.on("response", lambda r: r.status >= 400 and self.problems.append(f"{r.status} {r.url}"))

    def _failed(self, req):
        # Leaving the overview, the logs or the peers aborts its live stream on purpose (the
        # page's own AbortController).
        if req.failure == "net::ERR_ABORTED" and ("/api/v1/dashboard/live" in req.url
                                                  or "/api/v1/dashboard/log?" in req.url
                                                  or "/scale/api/graph-layout/stream" in req.url):
            return
        self.problems.append(f"failed: {req.url} {req.failure}")

    def shot(self, name):
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        print("screenshot:", path)

    def check(self):
        assert self.problems == [], self.problems


class Hy2User(threading.Thread):
    """Our Hysteria 2 client as one user: connect, move MOVE bytes each way through the echo
    target, then hold the connection until the node closes it (the kick)."""

    def __init__(self, addr, secret, echo_port):
        super().__init__(daemon=True)
        self.addr, self.secret, self.echo_port = addr, secret, echo_port
        self.moved = threading.Event()
        self.closed = threading.Event()
        self.close_code = None
        self.error = None

    def run(self):
        try:
            run(self.main())
        except BaseException as exc:     # reported by the test, not lost in the thread
            self.error = exc
            self.moved.set()
            self.closed.set()

    async def main(self):
        client = simple_client(self.addr, self.secret)
        await asyncio.wait_for(client.ensure_connected(), 15)
        reader, writer = await client.open_tcp(f"127.0.0.1:{self.echo_port}")
        chunk = os.urandom(50_000)
        sent = 0
        # Paced over ~3 s, so the once-a-second chart sees several ticks of traffic.
        while sent < MOVE:
            writer.write(chunk)
            assert await asyncio.wait_for(reader.readexactly(len(chunk)), 10) == chunk
            sent += len(chunk)
            await asyncio.sleep(0.03)
        self.moved.set()
        await asyncio.wait_for(client.conn.terminated.wait(), 120)
        self.close_code = client.conn.close_reason.error_code
        self.closed.set()


def wait_for(predicate, timeout=15, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_user_traffic_and_kick_in_the_page(browser, node, targets, tmp_path):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    w = Watched(ctx.new_page(), tmp_path)
    page = w.page
    try:
        page.goto(node.base_url + "/dashboard/")
        page.get_by_label("Control token").fill(TOKEN)
        w.shot("login")
        page.get_by_role("button", name="Log in").click()
        page.get_by_role("heading", name="Overview").wait_for()
        page.locator("[data-ticks]").wait_for()
        wait_for(lambda: int(page.locator("[data-ticks]").get_attribute("data-ticks")) >= 2, what="two ticks")

        # Create the user in the page.
        page.get_by_role("link", name="Users").click()
        page.get_by_role("button", name="New user").click()
        page.get_by_label("User id").fill("dash-user")
        page.get_by_label("Password (auth secret)").fill("dash-secret")
        page.get_by_label("Traffic limit in GB").fill("1")
        page.get_by_role("button", name="Create user").click()
        row = page.locator('tr[data-user="dash-user"]')
        row.wait_for()
        assert node.get("/api/v1/users/dash-user", headers={"Authorization": f"Bearer {TOKEN}"}).json()["traffic_limit"] == 1_000_000_000
        w.shot("users-created")

        # Traffic as that user, watched on the overview.
        page.get_by_role("link", name="Overview").click()
        chart = page.locator("figure.chart").first
        chart.wait_for()
        user = Hy2User(node.config["listen"], "dash-secret", targets.echo)
        user.start()
        assert user.moved.wait(60) and user.error is None, user.error
        peak = wait_for(lambda: float(chart.get_attribute("data-peak")) > 200_000 and float(chart.get_attribute("data-peak")),
                        what="the overview chart to show the traffic")
        wait_for(lambda: page.locator('[data-figure="users-online"]').inner_text() == "1", what="one user online")
        w.shot("overview-traffic")
        print(f"chart peak {peak:.0f} B/s")

        # Its usage on the users page, then the kick.
        page.get_by_role("link", name="Users").click()
        usage = page.locator('tr[data-user="dash-user"] [data-usage]')
        wait_for(lambda: usage.count() and int(usage.get_attribute("data-usage")) >= 2 * MOVE,
                 what="the user's usage to show the 2 x 5 MB")
        assert page.locator('tr[data-user="dash-user"] [data-online]').get_attribute("data-online") == "1"
        w.shot("users-usage")
        # The live connection on the sessions page, with its bytes.
        page.get_by_role("link", name="Sessions").click()
        page.locator('tr[data-connection-user="dash-user"]').wait_for()
        assert page.locator('tr[data-device-user="dash-user"]').get_attribute("data-device-ip") == "127.0.0.1"
        w.shot("sessions")
        page.get_by_role("link", name="Users").click()
        page.get_by_role("button", name="Kick dash-user").click()
        assert user.closed.wait(5), "the client's connection was not closed by the kick"
        assert user.error is None, user.error
        assert user.close_code == 0x107
        page.get_by_role("status").filter(has_text="Kick: done (1 closed)").wait_for()
        wait_for(lambda: page.locator('tr[data-user="dash-user"] [data-online]').get_attribute("data-online") == "0",
                 what="the user to show offline")
        w.check()
    finally:
        ctx.close()


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_every_page_loads_clean_at_phone_width(browser, node, tmp_path, theme):
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, color_scheme=theme)
    w = Watched(ctx.new_page(), tmp_path)
    page = w.page
    try:
        page.goto(node.base_url + "/")          # a browser at / gets the dashboard
        # Keyboard only: the token field, then Enter.
        field = page.get_by_label("Control token")
        field.wait_for()
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "token"
        page.keyboard.type(TOKEN)
        page.keyboard.press("Enter")
        for name in ("Overview", "Users", "Streams", "Sessions", "Peers", "Logs", "Settings"):
            page.get_by_role("link", name=name).click()
            page.get_by_role("heading", name=name, level=1).wait_for()
            if name == "Overview":
                page.locator("[data-figure]").first.wait_for()
            elif name == "Logs":       # the node's own start lines, live
                page.locator("[data-level]").first.wait_for()
            else:
                page.wait_for_load_state("networkidle")
            assert page.evaluate("document.documentElement.dataset.theme") == theme
            # Nothing wider than the phone: no sideways scrolling of the whole page.
            assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1, name
            w.shot(f"{name.lower()}-{theme}-phone")
        w.check()
    finally:
        ctx.close()


@pytest.fixture(scope="module")
def origin(tmp_path_factory):
    if shutil.which("ffmpeg") is None:
        pytest.skip("no ffmpeg on this machine (apt-get install ffmpeg)")
    from tests.stream_proxy.origin import Origin, make_media
    o = Origin(make_media(tmp_path_factory.mktemp("dash-media")))
    yield o
    o.close()


@pytest.fixture(scope="module")
def media_node(tmp_path_factory):
    from tests.stream_proxy.conftest import media_node as make
    n = make(tmp_path_factory.mktemp("dash-media-node"))
    n.config["control"]["token"] = TOKEN
    n.start(timeout=STARTUP)
    try:
        yield n
    finally:
        n.stop()


def test_streams_create_viewers_and_failover_in_the_page(browser, media_node, origin, tmp_path):
    import subprocess
    node = media_node
    primary, backup = origin.base + "/dash-primary.ts", origin.base + "/dash-backup.ts"
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    w = Watched(ctx.new_page(), tmp_path)
    page = w.page
    ffmpeg = None
    try:
        page.goto(node.base_url + "/dashboard/#/streams")
        page.get_by_label("Control token").fill(TOKEN)
        page.get_by_role("button", name="Log in").click()
        page.get_by_role("heading", name="Streams", level=1).wait_for()
        page.get_by_label("Origin URL").fill(primary)
        page.get_by_label("Failover URLs").fill(backup)
        page.get_by_role("button", name="Create stream").click()
        row = page.locator("tr[data-stream]")
        row.wait_for()
        sid = row.get_attribute("data-stream")
        assert row.locator("[data-current-url]").get_attribute("data-current-url") == primary
        # The same URL again answers the existing stream (m3u-proxy's create is idempotent):
        # it names the viewer URL ffmpeg reads.
        created = node.post("/streams", {"url": primary}, headers={"X-API-Token": TOKEN}).json()
        assert created["stream_id"] == sid
        ffmpeg = subprocess.Popen(["ffmpeg", "-hide_banner", "-loglevel", "error", "-i", created["viewer_url"],
                                   "-t", "60", "-c", "copy", "-f", "null", "-"],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        viewers = row.locator("[data-viewers]")
        wait_for(lambda: viewers.get_attribute("data-viewers") == "1", timeout=20, what="one viewer in the page")
        w.shot("streams-viewer")
        page.get_by_role("button", name=f"Fail over {sid}").click()
        wait_for(lambda: row.locator("[data-current-url]").get_attribute("data-current-url") == backup,
                 what="the current URL to become the failover URL")
        page.get_by_role("status").filter(has_text="Failover: Failover triggered successfully").wait_for()
        assert ffmpeg.poll() is None, "the viewer was dropped by the failover"
        w.shot("streams-failover")
        # The viewer, listed and disconnected from the page.
        page.get_by_role("button", name=f"Viewers of {sid}").click()
        viewer = page.locator(f'[data-viewers-of="{sid}"] tr[data-viewer]')
        viewer.wait_for()
        assert viewer.count() == 1
        cid = viewer.get_attribute("data-viewer")
        page.get_by_role("button", name=f"Disconnect {cid}").click()
        page.get_by_role("status").filter(has_text=f"Disconnect {cid}: 1 closed").wait_for()
        wait_for(lambda: ffmpeg.poll() is not None, timeout=20, what="ffmpeg to see its connection closed")
        wait_for(lambda: viewers.get_attribute("data-viewers") == "0", timeout=20, what="no viewer in the row")
        w.check()
    finally:
        if ffmpeg is not None:
            ffmpeg.kill()
            ffmpeg.wait()
        ctx.close()


def test_edit_disable_reset_search_and_delete_a_user_in_the_page(browser, node, tmp_path):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert node.post("/api/v1/users", {"id": "edit-me", "auth_secret": "s1"}, headers=auth).status == 201
    assert node.post("/api/v1/users", {"id": "other-user", "auth_secret": "s2"}, headers=auth).status == 201
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    w = Watched(ctx.new_page(), tmp_path)
    page = w.page
    try:
        page.goto(node.base_url + "/dashboard/#/users")
        page.get_by_label("Control token").fill(TOKEN)
        page.get_by_role("button", name="Log in").click()
        row = page.locator('tr[data-user="edit-me"]')
        row.wait_for()
        page.get_by_label("Search users").fill("edit")
        page.locator('tr[data-user="other-user"]').wait_for(state="detached")
        assert page.locator("tbody tr").count() == 1

        page.get_by_role("button", name="Edit edit-me").click()
        page.get_by_label("Traffic limit in GB").fill("2.5")
        page.get_by_label("Expires on").fill("2031-05-04")
        page.get_by_role("button", name="Save").click()
        wait_for(lambda: node.get("/api/v1/users/edit-me", headers=auth).json()["traffic_limit"] == 2_500_000_000,
                 what="the edit to reach the node")
        assert node.get("/api/v1/users/edit-me", headers=auth).json()["expiry"].startswith("2031-05-04")
        wait_for(lambda: "2031-05-04" in row.inner_text(), what="the new expiry in the row")

        # A bad limit is refused in the form, nothing sent.
        page.get_by_role("button", name="Edit edit-me").click()
        page.get_by_label("Traffic limit in GB").fill("lots")
        page.get_by_role("button", name="Save").click()
        page.get_by_role("alert").filter(has_text="must be a number").wait_for()
        page.get_by_role("button", name="Cancel").click()
        assert node.get("/api/v1/users/edit-me", headers=auth).json()["traffic_limit"] == 2_500_000_000

        page.get_by_role("button", name="Disable edit-me").click()
        wait_for(lambda: node.get("/api/v1/users/edit-me", headers=auth).json()["enabled"] is False, what="disabled")
        page.get_by_role("button", name="Enable edit-me").wait_for()
        page.get_by_role("button", name="Reset traffic of edit-me").click()
        page.get_by_role("status").filter(has_text="Reset: done").wait_for()
        w.shot("users-edited")

        page.once("dialog", lambda d: d.accept())
        page.get_by_role("button", name="Delete edit-me").click()
        row.wait_for(state="detached")
        assert node.get("/api/v1/users/edit-me", headers=auth).status == 404
        w.check()
    finally:
        ctx.close()


def test_logs_page_follows_the_node_log_with_a_level_filter(browser, node, tmp_path):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    w = Watched(ctx.new_page(), tmp_path)
    page = w.page
    try:
        page.goto(node.base_url + "/dashboard/#/logs")
        page.get_by_label("Control token").fill(TOKEN)
        page.get_by_role("button", name="Log in").click()
        log = page.get_by_role("log", name="Node log")
        log.get_by_text("started control-api").first.wait_for()
        # A line appended to node.log now (as any of the node's processes appends) arrives live.
        marker = f"dash-log-{time.monotonic_ns()}"
        with open(node.data_dir / "node.log", "a") as f:
            f.write(f"2026-01-01 00:00:00,000 test WARNING tests.dashboard: {marker}\n")
        log.get_by_text(marker).wait_for()
        page.get_by_label("Lowest level shown").select_option("WARNING")
        # The filtered stream replaces the list once it answers: until then the INFO lines of
        # the unfiltered one are still shown (and so is the marker), so wait for them to go.
        from playwright.sync_api import expect
        expect(page.locator('[data-level="INFO"]')).to_have_count(0, timeout=15000)
        log.get_by_text(marker).wait_for()
        levels = set(page.locator("[data-level]").evaluate_all("els => els.map(e => e.dataset.level)"))
        assert levels <= {"WARNING", "ERROR", "CRITICAL"}, levels
        w.shot("logs-warning")
        w.check()
    finally:
        ctx.close()


def test_a_users_detail_shows_its_rate_devices_and_kicks(browser, node, targets, tmp_path):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert node.post("/api/v1/users", {"id": "detail-user", "auth_secret": "detail-secret"},
                     headers=auth).status == 201
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    w = Watched(ctx.new_page(), tmp_path)
    page = w.page
    user = None
    try:
        page.goto(node.base_url + "/dashboard/#/users")
        page.get_by_label("Control token").fill(TOKEN)
        page.get_by_role("button", name="Log in").click()
        page.get_by_role("button", name="Details of detail-user").click()
        panel = page.locator('[data-detail="detail-user"]')
        chart = panel.locator("figure.chart")
        chart.wait_for()
        user = Hy2User(node.config["listen"], "detail-secret", targets.echo)
        user.start()
        assert user.moved.wait(60) and user.error is None, user.error
        peak = wait_for(lambda: float(chart.get_attribute("data-peak")) > 200_000 and float(chart.get_attribute("data-peak")),
                        what="the user's own chart to show its traffic")
        wait_for(lambda: panel.locator("[data-devices]").get_attribute("data-devices") == "1", what="one device")
        assert panel.locator('[data-device="127.0.0.1"]').count() == 1
        w.shot("user-detail")
        print(f"user chart peak {peak:.0f} B/s")
        panel.get_by_role("button", name="Kick every connection of detail-user").click()
        assert user.closed.wait(5), "the client's connection was not closed by the kick"
        assert user.close_code == 0x107
        panel.get_by_role("status").filter(has_text="Kick: 1 closed").wait_for()
        wait_for(lambda: panel.locator("[data-devices]").get_attribute("data-devices") == "0", what="no device left")
        w.check()
    finally:
        ctx.close()


def test_hy2scale_admin_login_forces_the_password_change_and_shows_peers(browser, tmp_path):
    from playwright.sync_api import expect

    from tests.hy2scale.conftest import sha
    from tests.support.node import free_udp_port
    fresh = NodeProcess(tmp_path / "node", {})     # loopback, no control token, default admin
    (tmp_path / "node").mkdir()
    fresh.start(timeout=STARTUP)
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    w = Watched(ctx.new_page(), tmp_path)
    page = w.page
    try:
        page.goto(fresh.base_url + "/dashboard/")
        page.get_by_role("button", name="Use the HY2 SCALE admin account").click()
        page.get_by_label("Username").fill("admin")
        page.get_by_label("Password", exact=True).fill("admin")
        page.get_by_role("button", name="Log in").click()
        page.get_by_role("heading", name="Change the admin password").wait_for()
        w.shot("password-change")
        page.get_by_label("New password", exact=True).fill("short")
        page.get_by_label("New password again").fill("short")
        page.get_by_role("button", name="Change password").click()
        page.get_by_role("alert").filter(has_text="at least 8").wait_for()
        page.get_by_label("New password", exact=True).fill("dashboard-pass-1")
        page.get_by_label("New password again").fill("dashboard-pass-1")
        page.get_by_role("button", name="Change password").click()
        page.get_by_role("heading", name="Overview", level=1).wait_for()
        # The node took the new password (and the default one no longer logs in).
        assert fresh.post("/scale/api/login", {"username": "admin", "password": sha("dashboard-pass-1")}).status == 200
        assert fresh.post("/scale/api/login", {"username": "admin", "password": sha("admin")}).status == 401
        token = fresh.post("/scale/api/login", {"username": "admin", "password": sha("dashboard-pass-1")}).json()["token"]
        bearer = {"Authorization": f"Bearer {token}"}
        assert fresh.request("POST", "/scale/api/clients", {"name": "peer-b", "addr": f"127.0.0.1:{free_udp_port()}",
                                                             "password": "x", "insecure": True}, headers=bearer).status == 201

        page.get_by_role("link", name="Peers").click()
        page.get_by_role("heading", name="Peers", level=1).wait_for()
        peer = page.locator('[data-graph-node="peer-b"]')
        peer.wait_for()
        expect(page.locator('tr[data-peer="peer-b"] [data-connected]')).to_have_attribute("data-connected", "false")
        w.shot("peers")
        # Drag the peer: the shared layout (what HY2 SCALE's own UI reads) holds its new place.
        box = peer.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(box["x"] + 60, box["y"] + 40, steps=5)
        page.mouse.up()
        layout = wait_for(lambda: fresh.get("/scale/api/graph-layout", headers=bearer).json().get("positions", {}).get("peer-b"),
                          what="the dragged position in the shared layout")
        assert set(layout) == {"x", "y"}
        w.check()
    finally:
        ctx.close()
        fresh.stop()


def test_settings_shows_the_config_without_credentials_and_reloads_it(browser, node, tmp_path):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    w = Watched(ctx.new_page(), tmp_path)
    page = w.page
    good = node.config_path.read_text()
    try:
        page.goto(node.base_url + "/dashboard/#/settings")
        page.get_by_label("Control token").fill(TOKEN)
        page.get_by_role("button", name="Log in").click()
        shown = page.locator("[data-config]")
        shown.wait_for()
        assert TOKEN not in shown.inner_text() and '"token": "***"' in shown.inner_text()
        assert page.locator("[data-live] li").count() >= 1
        # A broken file is refused with the loader's message; the node keeps running.
        node.config_path.write_text(good + "\nbandwidth: {up: lots}\n")
        page.get_by_role("button", name="Reload the config file").click()
        page.get_by_role("alert").filter(has_text="Reload refused").filter(has_text="bandwidth").wait_for()
        # The refusal is an expected 400 (the browser logs it to the console too); only that.
        expected = [p for p in w.problems if ("400 " in p and "/api/v1/reload" in p)
                    or p == "console: Failed to load resource: the server responded with a status of 400 (Bad Request)"]
        assert len(expected) == 2, w.problems
        w.problems = [p for p in w.problems if p not in expected]
        node.config_path.write_text(good)
        page.get_by_role("button", name="Reload the config file").click()
        page.get_by_role("status").filter(has_text="Reloaded").wait_for()
        w.shot("settings-reloaded")
        # The control API restarted its workers on the reload; the node is whole.
        wait_for(lambda: node.get("/api/v1/health").status == 200, what="health after the reload")
        w.check()
    finally:
        node.config_path.write_text(good)
        ctx.close()
