"""The node mesh: multi-hop exit paths, path selection (exit_mode), routing rules and nested
discovery, on top of the single-hop outbound peers of ``fastpath.hy2.client.exit_peers``."""
