"""Every file in ``examples/`` is a config ``fastpath`` accepts, loaded by the node's own loader
(``fastpath.config.load_config``; client configs by ``parse_client_config``, as ``fastpath client``
reads them).  The one change made before loading: ``tls.cert``/``tls.key`` name the operator's
files, which the loader checks exist and so this test writes to a temp dir."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fastpath.config import load_config
from fastpath.hy2.config import parse_client_config

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))


def test_the_examples_are_there():
    names = {p.name for p in EXAMPLES}
    assert {"minimal-node.yaml", "hysteria2-server.yaml", "client.yaml", "pasarguard-node.yaml",
            "stream-relay.yaml"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_is_accepted(path, tmp_path):
    text = path.read_text()
    data = yaml.safe_load(text)
    if "server" in data:
        settings = parse_client_config(data)
        assert settings.server_host and settings.auth
        return
    tls = data.get("tls") or {}
    if tls.get("cert"):
        from fastpath.supervisor.bootstrap import make_self_signed
        cert, key = make_self_signed(["localhost"])
        (tmp_path / "c.pem").write_bytes(cert)
        (tmp_path / "k.pem").write_bytes(key)
        text = text.replace(tls["cert"], str(tmp_path / "c.pem")).replace(tls["key"], str(tmp_path / "k.pem"))
    node = tmp_path / "node.yaml"
    node.write_text(text)
    config = load_config(str(node), data_dir=str(tmp_path / "data"))
    assert config.control.port


def test_examples_say_what_they_configure():
    for path in EXAMPLES:
        assert path.read_text().startswith("#"), f"{path.name} should open with a comment"
