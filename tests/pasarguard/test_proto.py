"""``service.proto``: the committed Python modules match it, and it matches the panel's client on
the wire (field numbers and types, enum values, RPC shapes)."""
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from tests.pasarguard.panel_client import REPO, VENV, PanelClientUnavailable, panel_python

PROTO = "control/pasarguard/service.proto"


def protoc(*args, cwd=REPO):
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", *args], cwd=cwd, check=True,
                   capture_output=True)


def test_generated_modules_are_current(tmp_path):
    """The committed modules were generated from this .proto (compared as descriptors, so a
    newer protoc that words its headers differently does not matter)."""
    from fastpath.control.pasarguard import service_pb2, service_pb2_grpc
    fresh = _descriptor(REPO, PROTO, tmp_path / "fresh.pb")
    committed = descriptor_pb2.FileDescriptorProto.FromString(service_pb2.DESCRIPTOR.serialized_pb)
    for d in (fresh, committed):        # protoc fills json_name in descriptor sets only
        for msg in d.message_type:
            for f in msg.field:
                f.ClearField("json_name")
            for nested in msg.nested_type:
                for f in nested.field:
                    f.ClearField("json_name")
    assert committed == fresh, "service_pb2.py is stale: regenerate (see control/pasarguard/__init__.py)"
    stub_methods = {m for m in dir(service_pb2_grpc.NodeServiceServicer) if not m.startswith("_")}
    assert stub_methods == {m.name for m in fresh.service[0].method}, "service_pb2_grpc.py is stale"


def _descriptor(proto_dir: Path, name: str, out: Path) -> descriptor_pb2.FileDescriptorProto:
    protoc(f"-I{proto_dir}", f"--descriptor_set_out={out}", name, cwd=proto_dir)
    fds = descriptor_pb2.FileDescriptorSet()
    fds.ParseFromString(out.read_bytes())
    return fds.file[0]


def test_wire_compatible_with_the_panel_client(tmp_path):
    try:
        python = panel_python()
    except PanelClientUnavailable as exc:
        pytest.skip(str(exc))
    where = "import PasarGuardNodeBridge as p, os; print(os.path.join(os.path.dirname(p.__file__), 'common'))"
    site = subprocess.run([python, "-c", where], capture_output=True, text=True, check=True).stdout.strip()
    theirs = _descriptor(Path(site), "service.proto", tmp_path / "theirs.pb")
    ours = _descriptor(REPO / "control" / "pasarguard", "service.proto", tmp_path / "ours.pb")
    assert ours.package == theirs.package == "service"

    their_messages = {m.name: m for m in theirs.message_type}
    for msg in ours.message_type:
        assert msg.name in their_messages, msg.name
        their_fields = {f.number: f for f in their_messages[msg.name].field}
        for f in msg.field:
            t = their_fields.get(f.number)
            assert t is not None, f"{msg.name}.{f.name}"
            assert (f.type, f.label, f.type_name, f.name) == (t.type, t.label, t.type_name, t.name), \
                f"{msg.name}.{f.name}"
    their_enums = {e.name: {v.name: v.number for v in e.value} for e in theirs.enum_type}
    for enum in ours.enum_type:
        assert {v.name: v.number for v in enum.value} == their_enums[enum.name]

    their_methods = {m.name: m for m in theirs.service[0].method}
    assert ours.service[0].name == theirs.service[0].name == "NodeService"
    for m in ours.service[0].method:
        t = their_methods[m.name]
        assert (m.input_type, m.output_type, m.client_streaming, m.server_streaming) == \
               (t.input_type, t.output_type, t.client_streaming, t.server_streaming), m.name
    # What the panel's client has and this node does not serve (answered UNIMPLEMENTED / 404).
    extra = set(their_methods) - {m.name for m in ours.service[0].method}
    assert extra <= {"ListRoutingRules", "GetBalancerInfo", "TestRoute", "AddRoutingRule",
                     "RemoveRoutingRule", "OverrideBalancerTarget"}
    assert VENV.exists()
