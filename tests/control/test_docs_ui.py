"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) served by a real node from the vendored files,
with no request leaving the node: the committed files are the pinned npm packages' own, and a
real browser renders every operation of ``/openapi.json`` with the network cut off."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.support.node import NodeProcess

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "control" / "docs_assets"
TOKEN = "docs-token"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _manifest() -> dict:
    return json.loads((ASSETS / "vendor.json").read_text())


def _pins() -> dict:
    sys.path.insert(0, str(ROOT / "dashboard"))
    try:
        import vendor_docs
    finally:
        sys.path.pop(0)
    return vendor_docs.PINS


def test_committed_files_are_what_the_manifest_records():
    manifest = _manifest()
    pins = _pins()
    assert set(manifest) == set(pins)
    for name, entry in manifest.items():
        version, integrity, files = pins[name]
        assert (entry["version"], entry["integrity"]) == (version, integrity), name
        assert {meta["from"]: dst for dst, meta in entry["files"].items()} == files
        for dst, meta in entry["files"].items():
            data = (ASSETS / dst).read_bytes()
            assert hashlib.sha256(data).hexdigest() == meta["sha256"], f"{dst} was edited"


@pytest.mark.integration
def test_committed_files_are_the_registry_packages_files(tmp_path):
    """Where npm is here: the pinned tarballs fetched again, checked against their integrity,
    and every vendored file compared byte for byte with the one inside."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed on this machine")
    for name, entry in _manifest().items():
        done = subprocess.run([npm, "pack", f"{name}@{entry['version']}", "--json", "--silent"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=300, check=True)
        info = json.loads(done.stdout)[0]
        assert info["integrity"] == entry["integrity"]
        with tarfile.open(tmp_path / info["filename"]) as tar:
            for dst, meta in entry["files"].items():
                inside = tar.extractfile("package/" + meta["from"]).read()
                assert inside == (ASSETS / dst).read_bytes(), f"{dst} differs from {name}'s {meta['from']}"


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with NodeProcess(tmp_path_factory.mktemp("docs"), {"control": {"token": TOKEN}}) as n:
        yield n


@pytest.mark.integration
def test_pages_and_assets_are_served_without_a_credential(node):
    local = re.compile(r"(?:src|href)='([^']+)'")
    for page, needs in (("/docs", {"/docs/assets/swagger-ui.css", "/docs/assets/swagger-ui-bundle.js"}),
                        ("/redoc", {"/docs/assets/redoc.standalone.js"})):
        r = node.get(page)
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/html"), page
        text = r.body.decode()
        assert "http://" not in text and "https://" not in text, "the page loads from elsewhere"
        assert set(local.findall(text)) == needs and "/openapi.json" in text
    manifest = _manifest()
    for entry in manifest.values():
        for dst, meta in entry["files"].items():
            if not dst.endswith((".js", ".css")):
                continue
            r = node.get(f"/docs/assets/{dst}")
            assert r.status == 200 and hashlib.sha256(r.body).hexdigest() == meta["sha256"]
            assert r.headers["Content-Type"].startswith("text/css" if dst.endswith(".css") else "text/javascript")
            etag = r.headers["ETag"]
            again = node.get(f"/docs/assets/{dst}", headers={"If-None-Match": etag})
            assert again.status == 304 and again.body == b""
    r = node.get("/docs/assets/LICENSE.redoc")
    assert r.status == 404
    r = node.get("/docs/assets/..%2Fvendor.json")
    assert r.status == 404


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extras)")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                    "--disable-background-networking", "--disable-component-update"])
        yield b
        b.close()


def _offline_page(browser, node):
    """A page that may reach only the node: any other request is aborted and recorded."""
    page = browser.new_page()
    base = f"http://127.0.0.1:{node.control_port}/"
    elsewhere: list[str] = []
    errors: list[str] = []

    def route(r):
        if r.request.url.startswith(base):
            r.continue_()
        else:
            elsewhere.append(r.request.url)
            r.abort()
    page.route("**/*", route)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda req: req.url.startswith(base) and errors.append(f"failed: {req.url}"))
    return page, base, elsewhere, errors


@pytest.mark.integration
@pytest.mark.slow
def test_a_browser_renders_every_operation_offline(browser, node):
    doc = node.get("/openapi.json").json()
    ops = [(m, p) for p, item in doc["paths"].items() for m, op in item.items()
           if isinstance(op, dict) and "responses" in op]
    assert len(ops) > 100

    page, base, elsewhere, errors = _offline_page(browser, node)
    page.goto(base + "docs")
    page.wait_for_selector(".opblock", timeout=60_000)
    # Swagger UI 5 renders operations as they scroll into view, so the count is its model's:
    # every operation, under its tag, and no error from parsing or resolving the document.
    shown = page.evaluate("window.ui.specSelectors.taggedOperations().valueSeq()"
                          ".map(t => t.get('operations').size).reduce((a, b) => a + b, 0)")
    assert shown == len(ops), (shown, len(ops))
    assert page.evaluate("window.ui.errSelectors.allErrors().size") == 0
    assert page.locator(".opblock").count() >= 5        # and the first ones are on screen
    assert page.locator(".swagger-ui .info .title").inner_text().startswith(doc["info"]["title"])
    page.close()

    page2, base, elsewhere2, errors2 = _offline_page(browser, node)
    page2.goto(base + "redoc")
    page2.wait_for_selector("[data-section-id^='tag/']", timeout=60_000)
    # ReDoc gives each operation a section "tag/<tag>/paths/<path>/<method>", rendered in
    # steps: wait for all of them.
    import time
    deadline = time.monotonic() + 60
    while True:
        sections = set(page2.eval_on_selector_all(
            "[data-section-id*='/paths/']", "els => els.map(e => e.getAttribute('data-section-id'))"))
        if len(sections) >= len(ops) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(sections) == len(ops), (len(sections), len(ops))
    assert not errors + errors2, errors + errors2
    # Only the Redocly logo image is tried elsewhere (it hides itself when it fails).
    assert all("redoc.ly" in u for u in elsewhere + elsewhere2), elsewhere + elsewhere2
    page2.close()
