"""The faces' compiled read side of the counter segment (``fastpath/shm/``): one C scan of
the shards per request and response bodies written straight into bytes, for the
Traffic Stats API (``traffic_scan`` keeps the ids and sums their slots, ``traffic_view``
renders the bodies, ``traffic_scan.pxd`` between), the stream API (``media_scan`` folds the media
slots, ``media_view`` renders them, ``media_scan.pxd`` between) and the dashboard tick
(``dashboard_view``), with their one output writer (``out_buffer.pxd``).
They read the table through ``fastpath/shm/counter_table.pxd`` and never write it.
"""
