"""Hysteria 2 protocol: wire codecs (compiled), and the server and client built on them."""
