"""The client's TLS checks against a real node (README, "Hysteria 2 client": ``tls`` with
``sni`` / ``ca`` / ``pinSHA256``; ``insecure: false`` refuses a certificate it cannot verify).
Settings come through the client config parser, as ``fastpath client -c`` reads them."""
from __future__ import annotations

import asyncio
import hashlib
import ssl

import pytest

from fastpath.hy2.client.client import Hy2Client
from fastpath.hy2.config import parse_client_config
from fastpath.supervisor.bootstrap import ensure_certificate
from fastpath.worker.event_loop import run
from tests.hy2.conftest import hy2_node

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with hy2_node(tmp_path_factory, "tls-node") as n:
        n.cert = n.data_dir / "tls" / "node.crt"
        yield n


def pin_of(cert_path) -> str:
    der = ssl.PEM_cert_to_DER_cert(cert_path.read_text())
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


async def outcome(node, tls: dict) -> str:
    # A listener is required by the parser; it is never opened here (only connect() runs).
    settings = parse_client_config({"server": node.config["listen"], "auth": node.secret,
                                    "tls": tls, "socks5": {"listen": "127.0.0.1:1"}})
    client = Hy2Client(settings)
    try:
        await asyncio.wait_for(client.connect(), 10)
        return "connected"
    except asyncio.TimeoutError:
        return "timeout"
    except Exception as exc:                 # the refusal's type is the client's business
        return f"refused: {type(exc).__name__}: {exc}"
    finally:
        await client.close()


def test_insecure_false_refuses_the_self_signed_certificate(node):
    result = run(outcome(node, {"insecure": False}))
    assert result.startswith("refused") and "certificate" in result, result


def test_ca_accepts_the_node_certificate(node):
    assert run(outcome(node, {"insecure": False, "ca": str(node.cert), "sni": "localhost"})) == "connected"


def test_ca_of_another_node_is_refused(node, tmp_path):
    other_cert, _ = ensure_certificate(tmp_path / "other")
    result = run(outcome(node, {"insecure": False, "ca": str(other_cert), "sni": "localhost"}))
    assert result.startswith("refused"), result


def test_pin_sha256_accepts_the_right_certificate_and_refuses_a_wrong_one(node):
    right = pin_of(node.cert)
    assert run(outcome(node, {"insecure": True, "pinSHA256": right})) == "connected"
    wrong = ("00:" * 32)[:-1]
    result = run(outcome(node, {"insecure": True, "pinSHA256": wrong}))
    assert result.startswith("refused"), result
