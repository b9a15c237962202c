"""Type stub of the compiled module fastpath.views.media_view (fastpath/views/media_view.pyx).

The names here are the module's public names (tests/test_stubs.py checks them).
"""
from typing import Any

def render_clients(table) -> Any: ...
