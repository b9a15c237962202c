"""Fixtures shared across test folders."""
from __future__ import annotations

import pytest

from tests.hy2.targets import standard_targets


@pytest.fixture(scope="session")
def targets():
    """Local TCP echo, source and hash sink, and a UDP echo (stateless: one set serves every
    test that proxies to them)."""
    t = standard_targets()
    yield t
    t.close()
