"""Transcoding profiles and the FFmpeg command line built from them.

A profile is the FFmpeg arguments between the input and the output, with placeholders
``{name}`` or ``{name|default}`` filled from the stream's ``profile_variables``.  The template
is split into arguments *before* the values go in, and values are restricted to a short safe
alphabet, so a variable can never add an option, a second input or an output file.  The node
adds the input (``-i <url>``, http(s) only) and the output (``pipe:1``) itself.
"""
from __future__ import annotations

import re

# The reference's profile set (CPU encoders), in our own words.
PROFILES: dict[str, str] = {
    "default": "-c:v libx264 -preset veryfast -b:v {video_bitrate|2M} "
               "-c:a aac -b:a {audio_bitrate|128k} -f mpegts",
    "hq": "-c:v libx264 -preset medium -crf {crf|23} -c:a aac -b:a {audio_bitrate|192k} -f mpegts",
    "lowlatency": "-c:v libx264 -preset ultrafast -tune zerolatency -b:v {video_bitrate|1M} "
                  "-c:a aac -b:a {audio_bitrate|96k} -f mpegts",
    "720p": "-vf scale={width|1280}:{height|720} -c:v libx264 -preset veryfast "
            "-b:v {video_bitrate|2500k} -c:a aac -b:a {audio_bitrate|128k} -f mpegts",
    "1080p": "-vf scale={width|1920}:{height|1080} -c:v libx264 -preset veryfast "
             "-b:v {video_bitrate|5000k} -c:a aac -b:a {audio_bitrate|192k} -f mpegts",
    "hevc": "-c:v libx265 -preset veryfast -b:v {video_bitrate|2M} "
            "-c:a aac -b:a {audio_bitrate|128k} -f mpegts",
    "audio": "-vn -c:a aac -b:a {audio_bitrate|192k} -f adts",
}

CONTENT_TYPES = {"mpegts": "video/mp2t", "adts": "audio/aac", "mp3": "audio/mpeg",
                 "flv": "video/x-flv", "matroska": "video/x-matroska", "webm": "video/webm",
                 "ogg": "audio/ogg"}

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?:\|([^{}]*))?\}")
VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,39}$")
# No ',', ':', '=' or ';': inside a filter argument (``-vf scale={width}:...``) they would chain
# another filter (``movie=`` reads files); bit rates, sizes, CRFs and presets need none of them.
VARIABLE_VALUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+\-]{0,63}$")
# Options a profile may not use: they name files, add inputs or outputs, or reach the network.
_FORBIDDEN = {"-i", "-y", "-n", "-f_strict", "-filter_script", "-filter_complex_script",
              "-attach", "-dump_attachment", "-progress", "-vstats", "-vstats_file", "-report",
              "-passlogfile", "-pass", "-stats_file", "-sdp_file", "-filter_complex", "-lavfi",
              "-/filter", "-/vf", "-/af", "-x264opts", "-x264-params", "-x265-params",
              "-svtav1-params", "-hls_segment_filename", "-segment_list", "-init_seg_name",
              "-media_seg_name", "-fontfile", "-textfile", "-i_qfactor_file", "-psnr", "-ssim",
              "-stats_period", "-stdin", "-filter_threads_file", "-dn_file"}
# Protocol options (the node sets the input's protocols, user agent and headers itself).
_PROTOCOL = {"-protocol_whitelist", "-protocol_blacklist", "-headers", "-user_agent", "-user-agent",
             "-referer", "-cookies", "-http_proxy", "-method", "-auth_type", "-tls_verify",
             "-ca_file", "-cafile", "-cert_file", "-key_file", "-listen", "-multiple_requests",
             "-reconnect", "-reconnect_streamed", "-reconnect_at_eof", "-reconnect_delay_max",
             "-rtsp_transport", "-timeout", "-rw_timeout", "-seekable", "-icy", "-send_expect_100",
             "-chunked_post", "-content_type", "-post_data", "-location", "-ignore_chunk",
             "-rtmp_app", "-rtmp_playpath", "-rtmp_swfurl", "-srtp_out_params"}
# Filters that read files or take commands from outside.
_FILE_FILTERS = {"movie", "amovie", "subtitles", "ass", "sendcmd", "asendcmd", "zmq", "azmq",
                 "lut3d", "lut1d", "haldclut", "frei0r", "frei0r_src", "ladspa", "lv2",
                 "drawtext", "drawgraph", "coreimage", "coreimagesrc", "avisynth", "vidstabdetect",
                 "vidstabtransform", "libvmaf", "psnr", "ssim", "cover_rect", "find_rect",
                 "dnn_processing", "dnn_classify", "dnn_detect", "sr", "derain", "arnndn",
                 "afir", "sofalizer", "headphone", "signature", "photosensitivity", "select"}
_FILTER_OPTIONS = {"-vf", "-af", "-filter", "-filter:v", "-filter:a"}
# Output formats a profile may pick: streamable to a pipe, no files of their own (hls, dash,
# segment, image2 and tee would write elsewhere).
OUTPUT_FORMATS = ("mpegts", "adts", "mp3", "flv", "matroska", "webm", "ogg")
# Options that take no value: after one of them the next argument must be an option again.
_FLAGS = {"-vn", "-an", "-sn", "-dn", "-shortest", "-re", "-copyts", "-start_at_zero",
          "-accurate_seek", "-noaccurate_seek", "-autorotate", "-noautorotate", "-ignore_unknown",
          "-copyinkf", "-nostats", "-stats", "-hide_banner", "-nostdin", "-bitexact", "-xerror",
          "-apad", "-fix_sub_duration", "-reinit_filter", "-shortest_buf_duration"}
_FILTER_NAME = re.compile(r"(?:^|[,;\]])\s*([A-Za-z0-9_]+)")
_URLISH = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.\-]*:|/|~|\.\.?/)|://")


def _option(arg: str) -> bool:
    """An option name (``-c:v``); ``-2`` or ``-1.5`` are values."""
    return arg.startswith("-") and len(arg) > 1 and not arg[1].isdigit() and arg[1] != "."


def check_template(template: str) -> list[str]:
    """The template's arguments, or ValueError saying what is wrong with it.

    A template is options between the node's input and output.  A bare word where no option
    expects a value would be an output file, so the arguments must pair up as options and
    their values; a value may not look like a file or URL, filters may not read files, and
    the output format is one of ``OUTPUT_FORMATS``."""
    if not isinstance(template, str) or not template.strip():
        raise ValueError("a profile needs FFmpeg arguments")
    if len(template) > 2000:
        raise ValueError("a profile is at most 2000 characters")
    args = template.split()
    for arg in args:
        rest = _PLACEHOLDER.sub("", arg)
        if "{" in rest or "}" in rest:
            raise ValueError(f"bad placeholder in {arg!r} (use {{name}} or {{name|default}})")
    if "pipe:" in template or "file:" in template:
        raise ValueError("a profile may not name an input or output")
    expect_value = None
    for arg in args:
        if expect_value is None:
            if not _option(arg):
                raise ValueError(f"{arg!r} is not an option: a profile may not name an input or "
                                 "output file")
            name = arg.split(":", 1)[0] if not arg.startswith(("-filter:", "-/")) else arg
            if arg in _FORBIDDEN or name in _FORBIDDEN:
                raise ValueError(f"{arg} is not allowed in a profile (the node sets input and output)")
            if arg in _PROTOCOL or name in _PROTOCOL:
                raise ValueError(f"{arg} is a protocol option; the node sets those itself")
            if arg not in _FLAGS:
                expect_value = arg
            continue
        option, expect_value = expect_value, None
        value = _PLACEHOLDER.sub("x", arg)
        if _URLISH.search(value) and not (option in _FILTER_OPTIONS or option.startswith("-filter")):
            raise ValueError(f"{option} {arg}: a profile value may not be a file or URL")
        # Checked in every value, not only the filter options': a stream-specific spelling of
        # a filter option is still a filter graph, and no other value needs these names.
        for filt in _FILTER_NAME.findall(value):
            if filt.lower() in _FILE_FILTERS:
                raise ValueError(f"filter {filt} is not allowed in a profile (it reads files)")
        if option in _FILTER_OPTIONS or option.startswith("-filter:"):
            if "/" in value or "\\" in value:
                raise ValueError(f"{option} {arg}: a filter may not name a file")
        if option == "-f" and value not in OUTPUT_FORMATS and "{" not in arg:
            raise ValueError(f"output format {arg} is not allowed (one of {', '.join(OUTPUT_FORMATS)})")
        if option == "-f" and "{" in arg:
            raise ValueError("the output format may not be a variable")
    if expect_value is not None:
        raise ValueError(f"{expect_value} needs a value")
    return args


def is_custom(profile: str) -> bool:
    """A profile starting with ``-`` is an argument template given in the request itself."""
    return isinstance(profile, str) and profile.lstrip().startswith("-")


def template_variables(template: str) -> dict[str, str | None]:
    """Every variable a template uses, with its default (None when it has none), in order of
    first use; lets the control face refuse variables a profile does not know."""
    out: dict[str, str | None] = {}
    for m in _PLACEHOLDER.finditer(template or ""):
        name, default = m.group(1), m.group(2)
        if name not in out or out[name] is None:
            out[name] = default
    return out


def profile_names(extra: dict[str, str] | None = None) -> list[str]:
    return sorted({*PROFILES, *(extra or {})})


def profile_template(name: str, extra: dict[str, str] | None = None) -> str | None:
    """The template of a named profile, or ``name`` itself when it is a custom template (it is
    checked by ``check_template`` when rendered, like every profile)."""
    if is_custom(name):
        return name.strip()
    if extra and name in extra:
        return extra[name]
    return PROFILES.get(name)


def check_variables(variables) -> dict[str, str]:
    """Validated ``profile_variables`` (values as strings), or ValueError naming the bad one."""
    if variables is None:
        return {}
    if not isinstance(variables, dict):
        raise ValueError("profile_variables must be an object")
    out = {}
    for name, value in variables.items():
        if not isinstance(name, str) or not VARIABLE_NAME.match(name):
            raise ValueError(f"bad profile variable name {name!r}")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ValueError(f"profile variable {name} must be a string or a number")
        text = str(value)
        if not VARIABLE_VALUE.match(text):
            raise ValueError(f"profile variable {name} has characters that are not allowed: {text!r}")
        out[name] = text
    return out


def render(template: str, variables: dict[str, str]) -> list[str]:
    """The profile's arguments with every placeholder filled; ValueError when one has neither
    a value nor a default."""
    args = check_template(template)
    out = []
    for arg in args:
        def fill(m):
            name, default = m.group(1), m.group(2)
            if name in variables:
                return variables[name]
            if default is None:
                raise ValueError(f"profile variable {name} is required")
            return default
        out.append(_PLACEHOLDER.sub(fill, arg))
    return out


def output_format(args: list[str]) -> str:
    for i, arg in enumerate(args[:-1]):
        if arg == "-f":
            return args[i + 1]
    return "mpegts"


def content_type(args: list[str]) -> str:
    return CONTENT_TYPES.get(output_format(args), "application/octet-stream")


def ffmpeg_command(ffmpeg: str, profile_args: list[str]) -> list[str]:
    """The full command: FFmpeg reads the upstream body from stdin (the node fetches it, under
    the outbound rule) and writes the profile's output to stdout; no protocol but the pipe."""
    cmd = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error",
           "-protocol_whitelist", "pipe", "-i", "pipe:0", *profile_args]
    if "-f" not in profile_args:
        cmd += ["-f", "mpegts"]
    cmd.append("pipe:1")
    return cmd
