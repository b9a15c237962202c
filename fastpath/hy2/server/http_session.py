"""The aiohttp session of an outbound HTTP backend (the HTTP auth backend, the proxy masquerade),
made on first use: most nodes never call one, so aiohttp is imported only then."""
from __future__ import annotations

import ssl


def new_session(total_timeout: float, insecure: bool = False, **kwargs):
    """An ``aiohttp.ClientSession`` with a total timeout per request; ``insecure`` skips
    certificate and host name checks (the reference's ``insecure: true``)."""
    import aiohttp
    connector = None
    if insecure:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        connector = aiohttp.TCPConnector(ssl=ctx)
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=total_timeout),
                                 connector=connector, **kwargs)
