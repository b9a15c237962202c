"""The node's Hysteria 2 server: its I/O (``server``), the sans-I/O session of one
connection, authentication backends, masquerade, speed test, the UDP pump, and the
worker service that wires it to the node (``service``).
"""
