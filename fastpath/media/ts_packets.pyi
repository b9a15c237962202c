"""Type stub of the compiled module fastpath.media.ts_packets (fastpath/media/ts_packets.pyx).

The names here are the module's public names (tests/test_stubs.py checks them).
"""
from typing import Any

DEFAULT_PAT_WAIT_LIMIT: int
DEFAULT_PROBE_LIMIT: int
FLAG_KEY: int
FLAG_PAT: int
FLAG_SWITCH: int
MODE_NAMES: tuple
MODE_PLAYLIST: int
MODE_PROBE: int
MODE_RAW: int
MODE_TS: int
PACKET_SIZE: int
class TsChunker:
    chunks: Any
    dropped: Any
    def feed(self, data) -> Any: ...
    def finish(self) -> Any: ...
    def flush(self) -> Any: ...
    def force_raw(self) -> Any: ...
    mode: Any
    packets: Any
    pending: Any
    probe_data: Any
    def reset(self, strict = False) -> Any: ...
    resyncs: Any

def find_sync(data, start = 0, confirm = 3) -> Any: ...
def looks_like_ts(data) -> Any: ...
def scan_packets(data) -> Any: ...
