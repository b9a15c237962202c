"""Type stub of the compiled module fastpath.views.media_scan (fastpath/views/media_scan.pyx).

The names here are the module's public names (tests/test_stubs.py checks them).
"""
from typing import Any

def scan_media(table, clients_of = True) -> Any: ...
