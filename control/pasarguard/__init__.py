"""The PasarGuard node face: a fastpath node driven by a PasarGuard panel, unchanged.

Modules: ``config`` (the ``pasarguard`` section), ``face`` (what the panel can ask, independent
of transport), ``rest`` and ``grpc_service`` (the two transports), ``users`` (panel users →
the node's user table), ``accounting`` (traffic since the panel's last reset), ``node_log``
(the node's log lines for the log stream), ``system_stats``, ``tls``, ``server`` (the process).

``service.proto`` is written from spec/pasarguard-node.md.  Its Python modules are generated
and committed next to it, so an install needs neither protoc nor grpcio-tools (those stay in
the ``test`` extra); ``tests/pasarguard/test_proto.py`` compiles the .proto again and fails when
the committed descriptor differs, and checks it against the panel client's own .proto.
Regenerate from the repository root with::

    python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. \\
        control/pasarguard/service.proto

The generated code checks the protobuf runtime (>= the version of grpcio-tools' protoc) and
grpcio (>= the grpcio-tools version) at import.
"""
