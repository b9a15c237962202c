"""Transcoding through a real ffmpeg: one process per stream shared by its viewers, profiles and
variables that cannot smuggle options."""
from __future__ import annotations

import subprocess

import pytest
from fastpath.media.ts_packets import scan_packets

from fastpath.media import transcode
from tests.media.support import LiveReader, OriginProcess, media_node, register
from tests.media.test_live import wait_until


def test_transcoded_stream_is_shared_and_playable(tmp_path, media_dir):
    with OriginProcess(media_dir) as origin, media_node(tmp_path) as node:
        sid = register(node, origin.base + "/live/stream.ts", kind="transcode", profile="lowlatency",
                       profile_variables={"video_bitrate": "300k", "audio_bitrate": "64k"},
                       dedup_key="transcode:lowlatency:" + origin.base)
        viewers = [LiveReader(node.media_port, f"/stream/{sid}") for _ in range(3)]
        wait_until(lambda: all(len(v.body) > 40_000 for v in viewers), 30)
        out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name",
                              "-of", "csv=p=0", f"{node.media_base}/stream/{sid}"],
                             capture_output=True, text=True, timeout=40, check=False)
        for v in viewers:
            v.close()
        assert out.returncode == 0, out.stderr
        assert "h264" in out.stdout and "aac" in out.stdout
        # One ffmpeg, hence one upstream connection, for every viewer (and the probe).
        assert origin.stats()["live_connections"] == 1
        for v in viewers:
            assert scan_packets(bytes(v.body))[1] > 100


def test_variables_fill_placeholders_and_cannot_add_options():
    args = transcode.render(transcode.PROFILES["720p"], transcode.check_variables(
        {"width": 640, "height": "360", "video_bitrate": "800k"}))
    assert "scale=640:360" in args and "800k" in args
    for bad in ({"video_bitrate": "1M -i /etc/passwd"}, {"video_bitrate": "-y"},
                {"video_bitrate": "a;b"}, {"-x": "1"}, {"crf": True},
                {"width": "1280,movie=/etc/passwd"}, {"height": "720:flags=x"}):
        with pytest.raises(ValueError):
            transcode.check_variables(bad)
    with pytest.raises(ValueError):
        transcode.check_template("-c:v libx264 -i other.ts")
    cmd = transcode.ffmpeg_command("ffmpeg", "http://o/x.ts", args)
    assert cmd[-1] == "pipe:1" and cmd[cmd.index("-i") + 1] == "http://o/x.ts"
    assert transcode.content_type(transcode.render(transcode.PROFILES["audio"], {})) == "audio/aac"


def test_missing_required_variable_is_an_error():
    with pytest.raises(ValueError, match="required"):
        transcode.render("-b:v {rate}", {})
