"""A real ``fastpath serve`` for the stream proxy face, on free loopback ports (control API and
media relay), with or without ``media.apiToken``."""
from __future__ import annotations

import json
import subprocess

import pytest

from tests.stream_proxy.origin import Origin, make_media
from tests.support.node import NodeProcess, free_tcp_port

TOKEN = "media-token-Xy7"


def media_node(tmp_path, *, token: str | None = None, media: dict | None = None, workers: int = 1,
               data_dir=None) -> NodeProcess:
    port = free_tcp_port()
    # The test origins are on loopback, which the default outbound rule refuses.
    section = {"listen": f"127.0.0.1:{port}", "allowUpstreamNetworks": ["127.0.0.0/8", "::1/128"],
               **(media or {})}
    if token:
        section["apiToken"] = token
    node = NodeProcess(tmp_path, {"media": section}, workers=workers, data_dir=data_dir)
    node.media_url = f"http://127.0.0.1:{port}"
    return node


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with media_node(tmp_path_factory.mktemp("sp")) as n:
        yield n


@pytest.fixture(scope="module")
def token_node(tmp_path_factory):
    with media_node(tmp_path_factory.mktemp("sp-token"), token=TOKEN) as n:
        yield n


def curl(method: str, url: str, body=None, headers: dict | None = None) -> tuple[int, dict | str]:
    """One request with curl: (status, decoded JSON or text)."""
    cmd = ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "-X", method, url]
    for k, v in (headers or {}).items():
        cmd += ["-H", f"{k}: {v}"]
    if body is not None:
        cmd += ["-H", "Content-Type: application/json",
                "--data-binary", body if isinstance(body, str) else json.dumps(body)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True).stdout
    text, _, code = out.rpartition("\n")
    try:
        return int(code), json.loads(text)
    except ValueError:
        return int(code), text


@pytest.fixture(scope="module")
def origin(tmp_path_factory):
    """A media origin (test media made by ffmpeg) for the streams of a module."""
    o = Origin(make_media(tmp_path_factory.mktemp("media")))
    yield o
    o.close()
