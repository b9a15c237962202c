"""aioquic's H3Connection, tolerant of peers that enable H3_DATAGRAM without announcing
``max_datagram_frame_size`` (recent reference clients do not announce it; refusing them would
close the connection during auth)."""
from __future__ import annotations

from aioquic.h3.connection import H3Connection, SettingsError


class LenientH3Connection(H3Connection):
    def _validate_settings(self, settings: dict[int, int]) -> None:
        try:
            super()._validate_settings(settings)
        except SettingsError as exc:
            if "max_datagram_frame_size" not in str(exc):
                raise
