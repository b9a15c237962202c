"""Fixtures of the media relay tests: test media made once by ffmpeg, origin processes, a webhook
receiver."""
from __future__ import annotations

import shutil

import pytest

from tests.media.origin import make_media
from tests.media.support import OriginProcess, WebhookReceiver

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory):
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        pytest.skip("needs ffmpeg and ffprobe")
    return make_media(tmp_path_factory.mktemp("media"))


@pytest.fixture
def origin(media_dir):
    with OriginProcess(media_dir) as o:
        yield o


@pytest.fixture
def backup(media_dir):
    with OriginProcess(media_dir) as o:
        yield o


@pytest.fixture(scope="module")
def module_origin(media_dir):
    """One origin for a module's tests (each registers its own stream URLs on it)."""
    with OriginProcess(media_dir) as o:
        yield o


@pytest.fixture
def hooks():
    with WebhookReceiver() as w:
        yield w


@pytest.fixture(scope="module")
def module_hooks():
    with WebhookReceiver() as w:
        yield w
