"""Stream order through an exit: the entry node (A) queues the TCP response before any byte
that comes back from the exit (B), as on a direct dial.  sing-box is A's client: it sends
data with the request, and the banner target speaks first, so either would overtake a
response written after the exit stream opened."""
from __future__ import annotations

import pytest

from tests.hy2.singbox import (SingBox, client_config, needs_sing_box, stream_failures, tcp_forward,
                               wait_stream, wait_tcp)
from tests.hy2scale.test_exits import make_user, pair  # noqa: F401  (the two-node fixture)
from tests.support.node import free_tcp_port

pytestmark = [pytest.mark.integration, needs_sing_box]


def test_banner_and_early_data_through_the_exit(pair, targets, tmp_path):  # noqa: F811
    a, _b = pair
    make_user(a.scale, "carol", exit_via="b")
    banner, echo = free_tcp_port(), free_tcp_port()
    port = int(a.hy2.rsplit(":", 1)[1])
    config = client_config(port, "carol:pw-carol", [tcp_forward(banner, targets.banner, "banner"),
                                                   tcp_forward(echo, targets.echo, "echo")])
    with SingBox(tmp_path, config) as sb:
        wait_tcp(echo, sb.alive)
        wait_stream(echo, sb.alive)
        banner_failures = stream_failures(banner, banner=True)
        echo_failures = stream_failures(echo, banner=False)
        assert (len(banner_failures), len(echo_failures)) == (0, 0), (
            banner_failures[:3], echo_failures[:3], sb.log[-3000:])
