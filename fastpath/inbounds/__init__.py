"""Proxy inbounds beside Hysteria 2: SOCKS5 and HTTP proxy listeners in every data-plane worker.

Their users are the node's users (the same table, limits, kick and counters as Hysteria 2): a
client logs in with the user's id and auth secret (or, for a secret of the ``name:password``
form that HY2 SCALE and the ``userpass`` backend use, with that name and password).  Each
connection is relayed from the node by a compiled TCP splice (``tcp_splice.pyx``) that counts
into the worker's shard as the Hysteria 2 relay pump does.
"""
