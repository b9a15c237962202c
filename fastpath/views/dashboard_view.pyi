"""Type stub of the compiled module fastpath.views.dashboard_view (fastpath/views/dashboard_view.pyx).

The names here are the module's public names (tests/test_stubs.py checks them).
"""
from typing import Any

def node_tick(table) -> Any: ...
