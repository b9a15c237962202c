"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) over the node's one OpenAPI document.

Both UIs are files vendored unchanged from their npm packages (control/docs_assets/, see
dashboard/vendor_docs.py), served here from the installed package under ``/docs/assets/``, so
the pages work on a node with no internet access.  Each page is a small HTML shell that loads
its UI and points it at ``/openapi.json``.
"""
from __future__ import annotations

import html
import json
from importlib import resources

import falcon

from fastpath.control.route_guard import PUBLIC

ASSETS_PREFIX = "/docs/assets"
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


def _title(builder) -> str:
    info = builder.doc["info"]
    return html.escape(f"{info['title']} {info['version']}")


class Assets:
    """The vendored files, read once from the package; ETag is the SHA-256 that vendor.json
    records (the file is the package's, so the hash names its content)."""

    def __init__(self):
        root = resources.files("fastpath.control.docs_assets")
        manifest = json.loads((root / "vendor.json").read_text())
        self.files: dict[str, tuple[bytes, str, str]] = {}
        for package in manifest.values():
            for name, meta in package["files"].items():
                suffix = name[name.rfind("."):]
                if suffix in _TYPES:
                    self.files[name] = ((root / name).read_bytes(), _TYPES[suffix], meta["sha256"])


class AssetResource:
    auth_rule = PUBLIC

    def __init__(self, assets: Assets):
        self.assets = assets

    def on_get(self, req, resp, name):
        found = self.assets.files.get(name)
        if found is None:
            raise falcon.HTTPNotFound(title="Not Found", description=f"no asset {name[:64]}")
        data, ctype, digest = found
        resp.etag = digest
        resp.cache_control = ["public", "max-age=86400"]
        if req.if_none_match and any(getattr(t, "value", t) == digest for t in req.if_none_match):
            resp.status = falcon.HTTP_304
            return
        resp.content_type = ctype
        resp.data = data


class _DocsPage:
    """An HTML page over ``/openapi.json``: ``head`` (after the title) and ``body`` are the
    viewer's own markup, served from the vendored assets."""
    auth_rule = PUBLIC
    name = head = body = ""

    def __init__(self, builder):
        self.builder = builder

    def on_get(self, req, resp):
        resp.content_type = falcon.MEDIA_HTML
        resp.text = (
            "<!doctype html><html><head><meta charset=utf-8>"
            "<meta name=viewport content='width=device-width, initial-scale=1'>"
            f"<title>{_title(self.builder)} - {self.name}</title>"
            f"{self.head}</head><body>{self.body}</body></html>")


class SwaggerResource(_DocsPage):
    name = "Swagger UI"
    head = f"<link rel=stylesheet href='{ASSETS_PREFIX}/swagger-ui.css'>"
    body = ("<div id=swagger-ui></div>"
            f"<script src='{ASSETS_PREFIX}/swagger-ui-bundle.js'></script>"
            "<script>window.ui = SwaggerUIBundle({url: '/openapi.json', dom_id: '#swagger-ui', "
            "deepLinking: true, persistAuthorization: true, validatorUrl: null, "
            "presets: [SwaggerUIBundle.presets.apis], layout: 'BaseLayout'});</script>")


class RedocResource(_DocsPage):
    name = "ReDoc"
    head = "<style>body{margin:0;padding:0}</style>"
    body = ("<div id=redoc></div>"
            f"<script src='{ASSETS_PREFIX}/redoc.standalone.js'></script>"
            "<script>Redoc.init('/openapi.json', {}, document.getElementById('redoc'));</script>")


def register(app, builder) -> set[str]:
    """Add the pages and their assets; returns the routes (public, like the document)."""
    assets = Assets()
    html = {"type": "string", "description": "an HTML page"}
    builder.add("GET", "/docs", "Swagger UI over /openapi.json (with try-it)", tag="docs",
                secured=False, response=html, content_type="text/html")
    builder.add("GET", "/redoc", "ReDoc over /openapi.json", tag="docs", secured=False,
                response=html, content_type="text/html")
    builder.add("GET", ASSETS_PREFIX + "/{name}", "A vendored file of Swagger UI or ReDoc "
                "(ETag: its SHA-256; If-None-Match answers 304)", tag="docs", secured=False,
                params=[{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                errors={304: "unchanged", 404: "no such file"},
                content={"text/javascript": {"type": "string"}, "text/css": {"type": "string"}})
    app.add_route("/docs", SwaggerResource(builder))
    app.add_route("/redoc", RedocResource(builder))
    app.add_route(ASSETS_PREFIX + "/{name}", AssetResource(assets))
    return {"/docs", "/redoc", ASSETS_PREFIX + "/{name}"}
