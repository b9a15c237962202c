"""Type stub of the compiled module fastpath.views.traffic_scan (fastpath/views/traffic_scan.pyx).

The names here are the module's public names (tests/test_stubs.py checks them).
"""
from typing import Any

class TrafficRegistry:
    def __len__(self) -> Any: ...
    def load(self, carried, baselines, listed = ...) -> Any: ...
    def set_baselines(self, rows) -> Any: ...
