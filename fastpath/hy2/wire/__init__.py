"""The Hysteria 2 wire format, without sockets or QUIC state: varints, the TCP request and
response and the UDP message (``frames``), Salamander obfuscation, the HTTP/3 auth
exchange (``auth_protocol``, ``h3_compat``), the events a session core reports, UDP
session reassembly, and address text: fed bytes (and a clock), never a socket.
"""
