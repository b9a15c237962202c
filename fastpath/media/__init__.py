"""Live media relay: one upstream fetch fanned out to many viewers (HLS and continuous MPEG-TS).

The per-chunk and per-client work is compiled (``fanout_ring``, ``ts_packets``,
``segment_cache``); connection setup, HTTP routing, failover decisions and webhooks are Python.
"""
