"""Transcoding through a real ffmpeg: one process per stream shared by its viewers, profiles and
variables that cannot smuggle options."""
from __future__ import annotations

import re
import subprocess

import pytest
from fastpath.media.ts_packets import scan_packets

from fastpath.media.transcode import ffmpeg_command
from fastpath.store import media_profiles as transcode
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
    cmd = ffmpeg_command("ffmpeg", args)
    # ffmpeg reads what the node fetched (stdin) and may open nothing else.
    assert cmd[-1] == "pipe:1" and cmd[cmd.index("-i") + 1] == "pipe:0"
    assert cmd[cmd.index("-protocol_whitelist") + 1] == "pipe"
    assert transcode.content_type(transcode.render(transcode.PROFILES["audio"], {})) == "audio/aac"


def test_missing_required_variable_is_an_error():
    with pytest.raises(ValueError, match="required"):
        transcode.render("-b:v {rate}", {})


def test_custom_template_through_the_api_is_checked_and_played(tmp_path, media_dir):
    with OriginProcess(media_dir) as origin, \
            media_node(tmp_path, {"customTranscodeTemplates": True}) as node:
        custom = "-c:v libx264 -preset ultrafast -b:v {video_bitrate|300k} -an -f mpegts"
        r = node.post("/transcode", {"url": origin.base + "/live/stream.ts", "profile": custom,
                                     "profile_variables": {"video_bitrate": "200k"}})
        assert r.status in (200, 201), r.body
        sid = r.json()["stream_id"]
        viewer = LiveReader(node.media_port, f"/stream/{sid}")
        wait_until(lambda: len(viewer.body) > 20_000, 30)
        viewer.close()
        assert scan_packets(bytes(viewer.body))[1] > 100
        for bad, why in (("-c:v libx264 /tmp/out.ts", "not an option"),
                         ("-vf movie=/etc/passwd -f mpegts", "movie"),
                         ("-vf:0 null,amovie=x -f mpegts", "amovie"),
                         ("-c:v movie=a -f mpegts", "movie"),
                         ("-i http://127.0.0.1:1/x -f mpegts", "-i"),
                         ("-headers X:1 -f mpegts", "protocol"),
                         ("-c:v libx264 -f hls", "hls"),
                         ("-filter_complex [0:v]split -f mpegts", "-filter_complex"),
                         # Issue 19's spellings: each names the option or filter refused.
                         ("-fpre tls/../../../../etc/passwd -f mpegts", "-fpre"),
                         ("-/filter:v x/../../etc/passwd -f mpegts", "-/filter:v"),
                         ("-/metadata x/../../etc/passwd -f mpegts", "-/metadata"),
                         ("-stats_enc_pre pwn.txt -f mpegts", "-stats_enc_pre"),
                         ("-vf curves=psfile=secrets.json -f mpegts", "curves"),
                         ("-vf sendcmd=f=cmds.txt -f mpegts", "sendcmd"),
                         ("-filter_script:v graph.txt -f mpegts", "-filter_script"),
                         ("-metadata title=file:x -f mpegts", "file:"),
                         ("-c:v concat:a.ts|b.ts -f mpegts", "concat:")):
            r = node.post("/transcode", {"url": origin.base + "/live/stream.ts", "profile": bad})
            # A validation error of the request, as m3u-proxy's FastAPI answers it: 422.
            assert r.status == 422, (bad, r.status, r.body)
            assert why in r.json()["message"], r.body


def test_custom_templates_are_off_unless_the_config_allows_them(tmp_path, media_dir):
    """Off by default on both sides: the control face answers 400 naming the setting, and a
    worker given such a stream anyway (written to the store directly) refuses to start
    ffmpeg for it (503 to the viewer) instead of running the template."""
    with OriginProcess(media_dir) as origin, media_node(tmp_path) as node:
        url = origin.base + "/live/stream.ts"
        r = node.post("/transcode", {"url": url, "profile": "-c:v libx264 -an -f mpegts"})
        assert r.status == 400, r.body
        assert "media.customTranscodeTemplates" in r.json()["message"], r.body
        assert node.post("/transcode", {"url": url, "profile": "lowlatency"}).status in (200, 201)
        sid = register(node, url, kind="transcode", profile="-c:v libx264 -an -f mpegts",
                       dedup_key="custom while off")
        from tests.media.support import media_get
        r = media_get(node, f"/stream/{sid}")
        assert r.status == 503 and b"customTranscodeTemplates" in r.body, (r.status, r.body)
        assert origin.stats()["live_connections"] == 0


def test_a_transcode_that_fails_to_start_reports_ffmpegs_last_line(tmp_path, media_dir):
    from tests.media.support import WebhookReceiver, add_webhook
    with OriginProcess(media_dir) as origin, WebhookReceiver() as hooks, \
            media_node(tmp_path, {"customTranscodeTemplates": True}) as node:
        add_webhook(node, hooks.url, ["stream_failed"])
        sid = register(node, origin.base + "/live/stream.ts", kind="transcode",
                       profile="-c:v nosuchencoder -f mpegts", dedup_key="bad encoder")
        viewer = LiveReader(node.media_port, f"/stream/{sid}")
        event = hooks.wait_for("stream_failed", 20)[0]
        viewer.close()
        assert event["stream_id"] == sid
        assert "nosuchencoder" in event["data"]["error"], event
        # ffmpeg's own words are in the node log, not discarded.
        wait_until(lambda: "ffmpeg: " in node.log() and "nosuchencoder" in node.log(), 5)


def test_ffmpeg_stderr_is_rate_limited_and_its_last_lines_kept():
    import asyncio
    import logging

    from fastpath.media.live import FfmpegLog

    async def main():
        reader = asyncio.StreamReader()
        for i in range(500):
            reader.feed_data(f"line {i}\n".encode())
        reader.feed_eof()
        records = []
        handler = logging.Handler()
        handler.emit = records.append
        logger = logging.getLogger("fastpath.media.live")
        logger.addHandler(handler)
        try:
            stderr = FfmpegLog("s1", reader, keep=5, burst=10, window=60)
            await stderr.finish(2)
        finally:
            logger.removeHandler(handler)
        return stderr, [r.getMessage() for r in records]
    stderr, messages = asyncio.run(main())
    assert list(stderr.lines) == [f"line {i}" for i in range(495, 500)] and stderr.last == "line 499"
    assert len(messages) == 11 and messages[-1].endswith("490 more lines not logged")


def test_template_variables_are_listed():
    assert transcode.template_variables(transcode.PROFILES["720p"]) == {
        "width": "1280", "height": "720", "video_bitrate": "2500k", "audio_bitrate": "128k"}
    assert transcode.template_variables("-b:v {rate} -maxrate {rate|2M}") == {"rate": "2M"}
    assert transcode.template_variables("-an -f adts") == {}
    assert transcode.profile_template("-an -f adts", allow_custom=True) == "-an -f adts"
    with pytest.raises(ValueError, match="customTranscodeTemplates"):
        transcode.profile_template("-an -f adts")
    assert transcode.profile_template("nosuch") is None


TOKENS = ["-c:v", "libx264", "-b:v", "2M", "-i", "x.ts", "/etc/passwd", "-vf", "scale=1:2",
          "movie=a", "-f", "mpegts", "hls", "-an", "{v}", "{v|1}", "http://h/", "pipe:1", "-y",
          "-headers", "-filter_complex", "file:x", "-g", "-1", "a,subtitles=x", "{", "-x264-params",
          # Issue 19: preset files, values loaded from files, stats files, file-reading filters,
          # filter scripts, command filters, protocols.
          "-fpre", "-vpre", "tls/../../../../etc/passwd", "-/filter:v", "-/vf", "-/metadata",
          "x/../../etc/passwd", "-stats_enc_pre", "-stats_mux_pre", "pwn.txt", "-filter_script",
          "-filter_script:v", "curves=psfile=secrets.json", "null,amovie=x", "sendcmd=f=c.txt",
          "scale=/w=x", "scale=w=iw/2:h=-2", "concat:a|b", "-metadata", "title=x", "title=file:x",
          "-af", "aresample=async=1", "-filter:v", "-c:a", "aac", "-map", "0:a?", "-s", "1280x720",
          "{v}=1", "fps=30000/1001"]
_PROTOCOL = re.compile(r"(?i)(?<![A-Za-z0-9_])(file|pipe|concat|https?|tcp|udp|data|subfile):")


def test_fuzz_custom_templates_only_ever_pass_options_and_their_values():
    """Whatever passes is allowed options with values of their shape: no option from outside
    the allow-list (``-fpre``, ``-/…``, ``-stats_…``, ``-filter_script``), no filter outside
    the allowed set (``curves``, ``movie``, ``sendcmd``), no protocol, no path."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=600, deadline=None)
    @given(st.lists(st.sampled_from(TOKENS) | st.text(max_size=12), min_size=1, max_size=8),
           st.dictionaries(st.just("v"), st.sampled_from(["1", "x", "movie", "2M", "a.b"]), max_size=1))
    def check(tokens, variables):
        template = " ".join(tokens)
        try:
            args = transcode.check_template(template)
            rendered = transcode.render(template, variables)
        except ValueError:
            return
        expect = None
        for arg in rendered:
            if expect is None:
                assert transcode._option(arg) and not arg.startswith("-/")
                base, _, spec = arg[1:].partition(":")
                assert arg in transcode._FLAGS or base in transcode._PER_STREAM or (
                    not spec and transcode._GLOBAL.get(base)), arg
                expect = None if arg in transcode._FLAGS else base
            else:
                if expect in ("vf", "af", "filter"):
                    for part in arg.split(","):
                        assert part.split("=", 1)[0] in transcode.ALLOWED_FILTERS, arg
                        assert "=/" not in part and ":/" not in part, arg
                expect = None
                assert "movie=" not in arg and "subtitles" not in arg and "://" not in arg
                assert not arg.startswith(("/", ".")), arg
        assert expect is None
        assert not _PROTOCOL.search(" ".join(rendered)), rendered
        assert len(args) == len(rendered)
        fmt = transcode.output_format(rendered)
        assert fmt in transcode.OUTPUT_FORMATS
    check()


@pytest.mark.integration
@pytest.mark.parametrize("profile, expect", [
    ("720p", {"video": ("h264", 1280, 720), "audio": "aac"}),
    ("1080p", {"video": ("h264", 1920, 1080), "audio": "aac"}),
    ("hevc", {"video": ("hevc", None, None), "audio": "aac"}),
    ("audio", {"video": None, "audio": "aac"}),
])
def test_each_built_in_profile_plays_with_its_codec_and_size(tmp_path, media_dir, profile, expect):
    """README: the built-in profiles ``hevc``, ``1080p``, ``720p``, ``audio`` (and the rest).
    Each one through a real node and ffmpeg, read back by ffprobe from the node's viewer URL."""
    with OriginProcess(media_dir) as origin, media_node(tmp_path) as node:
        sid = register(node, origin.base + "/live/stream.ts", kind="transcode", profile=profile,
                       profile_variables={"video_bitrate": "400k", "audio_bitrate": "64k"},
                       dedup_key=f"transcode:{profile}:" + origin.base)
        out = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                              "stream=codec_type,codec_name,width,height", "-of", "csv=p=0",
                              f"{node.media_base}/stream/{sid}"],
                             capture_output=True, text=True, timeout=90, check=False)
        assert out.returncode == 0, out.stderr + node.log()[-2000:]
        rows = [line.split(",") for line in out.stdout.split()]
        video = [r for r in rows if "video" in r]
        audio = [r for r in rows if "audio" in r]
        assert audio and audio[0][0] == expect["audio"], rows
        if expect["video"] is None:
            assert not video, rows
        else:
            codec, width, height = expect["video"]
            assert video and video[0][0] == codec, rows
            if width:
                assert video[0][2:4] == [str(width), str(height)], rows
