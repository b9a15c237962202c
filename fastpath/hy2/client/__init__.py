"""The Hysteria 2 client: its I/O and Python API (``client``), the sans-I/O session, the
``fastpath client`` program and its local listeners (SOCKS5, HTTP, forwards, UDP pump),
and the node's outbound exit peers built on it (``exit_peers``).
"""
