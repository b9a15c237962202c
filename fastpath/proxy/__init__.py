"""The local proxy protocols (SOCKS5, HTTP proxy), apart from where their connections go.

Two places speak them: the Hysteria 2 client's local listeners (connections go through the
server, ``fastpath.hy2.client.socks5`` / ``fastpath.hy2.client.http_proxy``) and the node's own proxy
inbounds (connections leave from the node, counted for a user, ``fastpath.inbounds``).  The
handshakes, parsers and answers live here once; each side supplies how credentials are checked
and how a CONNECT is opened.
"""
