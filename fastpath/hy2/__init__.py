"""Hysteria 2: the protocol, the QUIC path it runs on, and the server and client built on them.

``wire/`` is the protocol without I/O (frames, varints, Salamander, the HTTP/3 auth
exchange, session events); ``quic/`` the compiled QUIC path under aioquic and the UDP
socket; ``server/`` the node's server; ``client/`` the client, its program and the node's
exit peers.  ``config.py`` (the reference's YAML keys) and nothing else is shared by
server and client at this level: an import goes from ``server``/``client`` down to
``quic`` and ``wire``, never up or across.
"""
