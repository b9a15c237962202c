"""Fixtures of the media relay tests: test media made once by ffmpeg, origin processes."""
from __future__ import annotations

import shutil

import pytest

from tests.media.origin import make_media
from tests.media.support import OriginProcess

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
