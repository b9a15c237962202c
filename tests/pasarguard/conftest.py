"""One real node with the PasarGuard face (REST and gRPC) and one panel client for the package."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.pasarguard.panel_client import (PanelClientUnavailable, PanelDriver, pasarguard_section,
                                           wait_tls_port)
from tests.support.node import NodeProcess


@dataclass
class FaceNode:
    node: NodeProcess
    api_key: str
    rest_port: int
    grpc_port: int

    @property
    def ca(self) -> str:
        return (self.node.data_dir / "tls" / "node.crt").read_text()

    @property
    def ca_path(self) -> Path:
        return self.node.data_dir / "tls" / "node.crt"

    @property
    def hy2_port(self) -> int:
        return int(self.node.config["listen"].rsplit(":", 1)[1])

    def port(self, mode: str) -> int:
        return self.rest_port if mode == "rest" else self.grpc_port

    def store(self):
        from fastpath.store import StateStore
        return StateStore(self.node.data_dir / "state.db")


@pytest.fixture(scope="package")
def face_node(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pasarguard-node")
    section = pasarguard_section()
    node = NodeProcess(tmp, {"pasarguard": section}).start()
    try:
        face = FaceNode(node, section["apiKey"], int(section["listen"].rsplit(":", 1)[1]),
                        int(section["grpcListen"].rsplit(":", 1)[1]))
        wait_tls_port(face.rest_port, node=node)
        wait_tls_port(face.grpc_port, node=node)
        yield face
    finally:
        node.stop()


@pytest.fixture(scope="package")
def panel(face_node, tmp_path_factory):
    """The panel's client, connected to the node over REST (``node="rest"``) and gRPC
    (``node="grpc"``)."""
    log = tmp_path_factory.mktemp("panel") / "driver.log"
    try:
        driver = PanelDriver(log)
    except PanelClientUnavailable as exc:
        pytest.skip(str(exc))
    with driver:
        for mode in ("rest", "grpc"):
            driver.call("connect", node=mode, mode=mode, port=face_node.port(mode), ca=face_node.ca,
                        key=face_node.api_key)
        yield driver
