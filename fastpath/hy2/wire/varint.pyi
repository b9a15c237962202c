"""Type stub of the compiled module fastpath.hy2.wire.varint (fastpath/hy2/wire/varint.pyx).

The names here are the module's public names (tests/test_stubs.py checks them).
"""
from typing import Any

MAX: int
def decode(data, offset = 0) -> Any: ...
def encode(v) -> Any: ...
def size(v) -> Any: ...
