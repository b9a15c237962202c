"""What every child of the supervisor does first."""
from __future__ import annotations

import signal


def die_with_parent() -> None:
    """Ask the kernel to SIGTERM this process when the supervisor dies (Linux
    ``PR_SET_PDEATHSIG``), so no orphan keeps serving with nobody counting or supervising."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        pass
