"""The compiled QUIC path under aioquic: packet builder, receive path, loss recovery and
congestion control (``quic_*``, ``brutal``), the 1-RTT send loop and stream send buffers,
the relay pump between a QUIC stream and a TCP socket, and the batched UDP socket.
``aioquic_seam`` is the one module that reaches into aioquic's internals;
``quic_connection`` the connection class server and client share.
"""
