"""Type stub of the compiled module fastpath.inbounds.vmess_chunks (fastpath/inbounds/vmess_chunks.pyx).

The names here are the module's public names (tests/test_stubs.py checks them).
"""
from typing import Any

class ChunkError:
    def __init__(self, *args, **kwargs) -> None: ...
    def add_note(self, *args, **kwargs) -> Any: ...
    args: Any
    def with_traceback(self, *args, **kwargs) -> Any: ...

OPTION_AUTHENTICATED_LENGTH: int
OPTION_CHUNK_MASKING: int
OPTION_CHUNK_STREAM: int
OPTION_GLOBAL_PADDING: int
SECURITY_AES_128_GCM: int
SECURITY_CHACHA20_POLY1305: int
SECURITY_NONE: int
class VmessChunks:
    def __init__(self, *args, **kwargs) -> None: ...
    ended: Any
    def feed(self, *args, **kwargs) -> Any: ...
    def seal(self, *args, **kwargs) -> Any: ...
