"""Transcoding profiles: what a stream's ``profile`` and ``profile_variables`` may be, and the
FFmpeg arguments they stand for.  A model module (no I/O): the stream face checks and shows
profiles with it, the relay builds its FFmpeg command from it (``fastpath.media.transcode``).

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

# -- the allow-list ----------------------------------------------------------------------------
# FFmpeg has hundreds of options and every release adds ways to read or write files (preset
# files, ``-/opt`` values loaded from a file, encoder stats files, filter options loaded from
# files), so a block-list is always one spelling behind.  A profile may only use the options
# below, each with the shape of value it takes; filters come from a short list of filters that
# have no file, command or device arguments.  Written by hand because no library describes
# FFmpeg's options as data.

# Shapes of option values.
_SHAPES: dict[str, re.Pattern] = {
    "codec": re.compile(r"^[A-Za-z0-9_\-]{1,32}$"),
    "bitrate": re.compile(r"^\d{1,9}(?:\.\d{1,3})?[kKmMgG]?$"),
    "int": re.compile(r"^-?\d{1,9}$"),
    "number": re.compile(r"^-?\d{1,9}(?:\.\d{1,6})?$"),
    "rate": re.compile(r"^(?:\d{1,6}(?:\.\d{1,6})?(?:/\d{1,6})?|ntsc|pal|film|ntsc-film|qntsc|qpal)$"),
    "size": re.compile(r"^(?:\d{1,5}x\d{1,5}|[a-z0-9]{2,8})$"),
    "word": re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,31}$"),
    "aspect": re.compile(r"^\d{1,5}(?:[:/]\d{1,5}|\.\d{1,6})?$"),
    "duration": re.compile(r"^(?:\d{1,9}(?:\.\d{1,6})?(?:ms|us|s)?|\d{1,3}:\d{2}:\d{2}(?:\.\d{1,6})?)$"),
    "flags": re.compile(r"^[+\-]?[a-z0-9_]{1,24}(?:[+\-][a-z0-9_]{1,24}){0,8}$"),
    "map": re.compile(r"^-?0(?::[vasdt](?::\d{1,3})?)?\??$"),
    "map_metadata": re.compile(r"^(?:-1|0)$"),
    "metadata": re.compile(r"^[A-Za-z0-9_]{1,32}=[A-Za-z0-9_.\-]{0,64}$"),
    "strict": re.compile(r"^(?:-?[0-2]|experimental|unofficial|normal|strict|very)$"),
    "keyframes": re.compile(r"^(?:expr:[A-Za-z0-9_.+\-*/(),<>=]{1,120}|\d{1,6}(?:\.\d{1,3})?"
                            r"(?:,\d{1,6}(?:\.\d{1,3})?){0,63})$"),
}
_SHAPE_WORDS = {"codec": "a codec name", "bitrate": "a bit rate such as 800k or 2M",
                "int": "an integer", "number": "a number", "rate": "a frame rate such as 25 or 30000/1001",
                "size": "a size such as 1280x720", "word": "a name such as veryfast or yuv420p",
                "aspect": "an aspect such as 16:9", "duration": "a duration in seconds or hh:mm:ss",
                "flags": "flags such as +cgop", "map": "a stream of the input such as 0:v:0 or 0:a?",
                "map_metadata": "-1 or 0", "metadata": "key=value (letters, digits, _ . -)",
                "strict": "a strictness such as -2 or experimental",
                "keyframes": "expr:<expression> or a list of times",
                "filters": "a filter chain", "format": "an output format"}

# Options that may carry a stream specifier (``-c:v``, ``-b:a:0``, ``-filter:v``).
_PER_STREAM: dict[str, str] = {
    "c": "codec", "codec": "codec", "b": "bitrate", "maxrate": "bitrate", "minrate": "bitrate",
    "bufsize": "bitrate", "q": "number", "qscale": "number", "crf": "number", "qp": "int",
    "g": "int", "bf": "int", "r": "rate", "s": "size", "aspect": "aspect", "ar": "int",
    "ac": "int", "pix_fmt": "word", "preset": "word", "tune": "word", "profile": "word",
    "level": "word", "tag": "word", "frames": "int", "force_key_frames": "keyframes",
    "filter": "filters", "vf": "filters", "af": "filters", "sample_fmt": "word",
    "channel_layout": "word", "cq": "number", "rc": "word", "compression_level": "int",
    "disposition": "word",
}
# Options without a stream specifier.
_GLOBAL: dict[str, str] = {
    "vcodec": "codec", "acodec": "codec", "scodec": "codec", "ab": "bitrate", "vb": "bitrate",
    "f": "format", "map": "map", "map_metadata": "map_metadata", "metadata": "metadata",
    "t": "duration", "to": "duration", "ss": "duration", "threads": "int", "keyint_min": "int",
    "sc_threshold": "int", "qmin": "int", "qmax": "int", "vsync": "word", "fps_mode": "word",
    "strict": "strict", "max_muxing_queue_size": "int", "muxdelay": "number",
    "muxpreload": "number", "flags": "flags", "cpu-used": "int", "deadline": "word",
    "row-mt": "int", "tile-columns": "int", "application": "word", "vbr": "word",
    "x264-params": None, "x265-params": None,  # refused below, with the reason
}
# Output formats a profile may pick: streamable to a pipe, no files of their own (hls, dash,
# segment, image2 and tee would write elsewhere).
OUTPUT_FORMATS = ("mpegts", "adts", "mp3", "flv", "matroska", "webm", "ogg")
# Options that take no value: after one of them the next argument must be an option again.
_FLAGS = {"-vn", "-an", "-sn", "-dn", "-shortest", "-copyts", "-start_at_zero", "-bitexact",
          "-nostats"}
# Filters a profile may use: none has a file, command, device or network argument.
ALLOWED_FILTERS = frozenset({
    "scale", "fps", "format", "pad", "crop", "setsar", "setdar", "yadif", "bwdif", "transpose",
    "hflip", "vflip", "null", "setpts", "hqdn3d", "unsharp", "deblock", "eq",
    "anull", "aresample", "aformat", "volume", "loudnorm", "atempo", "asetpts", "highpass",
    "lowpass", "dynaudnorm", "acompressor", "apad", "asetrate",
})

# Why the best-known dangerous options are refused, so the message says more than "unknown".
_REASONS: dict[str, str] = {}
for _name in ("i", "y", "n", "f_strict", "attach", "dump_attachment", "stdin", "filter_complex",
              "lavfi"):
    _REASONS[_name] = "the node sets input and output"
for _name in ("fpre", "vpre", "apre", "spre", "pre"):
    _REASONS[_name] = "it reads a preset file"
for _name in ("filter_script", "filter_complex_script", "x264opts", "x264-params", "x265-params",
              "svtav1-params", "passlogfile", "pass", "stats_file", "progress", "vstats",
              "vstats_file", "report", "sdp_file", "stats_enc_pre", "stats_enc_post",
              "stats_mux_pre", "stats_enc_pre_fmt", "stats_enc_post_fmt", "stats_mux_pre_fmt",
              "hls_segment_filename", "segment_list", "init_seg_name", "media_seg_name",
              "fontfile", "textfile", "psnr", "ssim", "benchmark_all", "dn_file"):
    _REASONS[_name] = "it reads or writes files"
for _name in ("protocol_whitelist", "protocol_blacklist", "headers", "user_agent", "user-agent",
              "referer", "cookies", "http_proxy", "method", "auth_type", "tls_verify", "ca_file",
              "cafile", "cert_file", "key_file", "listen", "multiple_requests", "reconnect",
              "reconnect_streamed", "reconnect_at_eof", "reconnect_delay_max", "rtsp_transport",
              "timeout", "rw_timeout", "seekable", "icy", "send_expect_100", "chunked_post",
              "content_type", "post_data", "location", "rtmp_app", "rtmp_playpath"):
    _REASONS[_name] = "it is a protocol option; the node sets those itself"
del _name

_STREAM_SPEC = re.compile(r"^(?:[vVasdt](?::\d{1,3})?|\d{1,3})$")
# Protocol prefixes ffmpeg would open (``file:x``, ``concat:a|b``); a profile names no resource.
_PROTOCOL_PREFIX = re.compile(
    r"(?i)(?<![A-Za-z0-9_])(file|pipe|concat|concatf|subfile|data|fd|unix|https?|httpproxy|tcp|"
    r"udp|udplite|tls|rtp|rtmp[a-z]*|rtsp|srtp|srt|s?ftp|gophers?|hls|crypto|async|cache|md5|"
    r"ipfs|ipns|smb|zmq|tee|prompeg|sctp|librist|bluray|mmsh|mmst|icecast|amqp|android_content):")
_FILTER_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,31}$")
_FILTER_VALUE = re.compile(r"^[A-Za-z0-9_.+\-*()|][A-Za-z0-9_.+\-*/()|]{0,63}$")
_FILTER_NAME_SHAPE = re.compile(r"^[A-Za-z0-9_]{1,32}$")
# Where a placeholder stands while a template is checked without its values.
_MARK = "\x00"


def _option(arg: str) -> bool:
    """An option name (``-c:v``); ``-2`` or ``-1.5`` are values."""
    return arg.startswith("-") and len(arg) > 1 and not arg[1].isdigit() and arg[1] != "."


def _shape_of(arg: str) -> str | None:
    """The value shape of option ``arg`` (None for a flag), or ValueError naming the option."""
    if arg in _FLAGS:
        return None
    if arg.startswith("-/"):
        raise ValueError(f"option {arg} loads its value from a file; not allowed in a profile")
    name, _, spec = arg[1:].partition(":")
    reason = _REASONS.get(name)
    if reason is None and name.startswith(("stats_", "vstats")):
        reason = "it reads or writes files"
    if reason is not None:
        raise ValueError(f"option {arg} is not allowed in a profile ({reason})")
    if name in _PER_STREAM:
        if spec and not _STREAM_SPEC.match(spec):
            raise ValueError(f"option {arg}: bad stream specifier {spec!r}")
        return _PER_STREAM[name]
    if name in _GLOBAL and not spec and _GLOBAL[name] is not None:
        return _GLOBAL[name]
    raise ValueError(f"option {arg} is not allowed in a profile (not in the allow-list of "
                     "codec, rate, size, preset, format and filter options)")


def _check_filters(option: str, graph: str) -> None:
    """A simple chain of allowed filters: ``name[=arg[:arg...]]`` joined by ``,``.  No graph
    labels or second chains (``;`` ``[ ]``), no quoting or escapes (so what is checked is what
    FFmpeg parses), no option loaded from a file (``/key=``)."""
    for ch in ";[]'\"\\@":
        if ch in graph:
            raise ValueError(f"{option} {graph}: {ch!r} is not allowed in a profile's filters "
                             "(a simple chain of filters only)")
    for part in graph.split(","):
        name, eq, args = part.partition("=")
        if _MARK in name:
            raise ValueError(f"{option}: a filter name may not be a variable")
        if not _FILTER_NAME_SHAPE.match(name):
            raise ValueError(f"{option} {graph}: bad filter {name!r}")
        if name.lower() not in ALLOWED_FILTERS:
            raise ValueError(f"filter {name} is not allowed in a profile (allowed: "
                             f"{', '.join(sorted(ALLOWED_FILTERS))})")
        if not eq:
            continue
        for item in args.split(":"):
            key, has_key, value = item.partition("=")
            if not has_key:
                key, value = "", item
            if key.startswith("/") or value.startswith("/"):
                raise ValueError(f"filter {name}: {item!r} loads a value from a file; not allowed")
            if has_key and not _FILTER_KEY.match(key.replace(_MARK, "x")):
                raise ValueError(f"filter {name}: bad option name {key!r}")
            if not _FILTER_VALUE.match(value.replace(_MARK, "1")):
                raise ValueError(f"filter {name}: bad value {value!r}")


def _check_value(option: str, shape: str, value: str, complete: bool) -> None:
    """ValueError unless ``value`` has the option's shape.  With ``complete`` False the value
    still holds placeholders without defaults (``_MARK``): only what no variable can change
    (filter names, the output format) is checked; ``render`` checks the filled value."""
    if _PROTOCOL_PREFIX.search(value):
        proto = _PROTOCOL_PREFIX.search(value).group(1)
        raise ValueError(f"{option} {value.replace(_MARK, '{…}')}: the {proto}: protocol is not "
                         "allowed in a profile (a profile may not name an input, output or file)")
    if shape == "filters":
        _check_filters(option, value)
        return
    if shape == "format":
        if _MARK in value or "{" in value:
            raise ValueError("the output format may not be a variable")
        if value not in OUTPUT_FORMATS:
            raise ValueError(f"output format {value} is not allowed (one of {', '.join(OUTPUT_FORMATS)})")
        return
    if not complete and _MARK in value:
        return
    if not _SHAPES[shape].match(value):
        hint = ("; a profile may not name an input or output file"
                if "/" in value or "." in value and shape in ("codec", "word") else "")
        raise ValueError(f"{option} {value}: expected {_SHAPE_WORDS[shape]}{hint}")


def _check_args(args: list[str], complete: bool) -> None:
    expect: tuple[str, str] | None = None
    for arg in args:
        if expect is None:
            if not _option(arg):
                raise ValueError(f"{arg!r} is not an option: a profile may not name an input or "
                                 "output file")
            if "{" in arg or _MARK in arg:
                raise ValueError(f"{arg}: an option name may not be a variable")
            shape = _shape_of(arg)
            if shape is not None:
                expect = (arg, shape)
            continue
        (option, shape), expect = expect, None
        _check_value(option, shape, arg, complete)
    if expect is not None:
        raise ValueError(f"{expect[0]} needs a value")


def check_template(template: str) -> list[str]:
    """The template's arguments, or ValueError saying what is wrong with it.

    A template is options between the node's input and output, each from the allow-list with
    a value of its shape; a bare word where no option expects a value would be an output file,
    so the arguments must pair up as options and their values.  Placeholders are checked with
    their defaults; one without a default is checked again, filled, by ``render``."""
    if not isinstance(template, str) or not template.strip():
        raise ValueError("a profile needs FFmpeg arguments")
    if len(template) > 2000:
        raise ValueError("a profile is at most 2000 characters")
    if _MARK in template:
        raise ValueError("a profile may not hold NUL characters")
    args = template.split()
    for arg in args:
        rest = _PLACEHOLDER.sub("", arg)
        if "{" in rest or "}" in rest:
            raise ValueError(f"bad placeholder in {arg!r} (use {{name}} or {{name|default}})")
    for i, arg in enumerate(args[:-1]):
        if arg.split(":", 1)[0] == "-f" and "{" in args[i + 1]:
            raise ValueError("the output format may not be a variable")
    complete = True
    filled = []
    for arg in args:
        if _option(arg) and _PLACEHOLDER.search(arg):
            raise ValueError(f"{arg}: an option name may not be a variable")

        def default(m):
            nonlocal complete
            if m.group(2) is None:
                complete = False
                return _MARK
            return m.group(2)
        filled.append(_PLACEHOLDER.sub(default, arg) if "{" in arg else arg)
    _check_args(filled, complete)
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


def profile_template(name: str, extra: dict[str, str] | None = None,
                     allow_custom: bool = False) -> str | None:
    """The template of a named profile, ``name`` itself when it is a custom template and the
    node allows those (``media.customTranscodeTemplates``; checked by ``check_template`` when
    rendered, like every profile), ValueError when it does not, None for an unknown name."""
    if is_custom(name):
        if not allow_custom:
            raise ValueError("custom transcode templates are off on this node (a named profile, "
                             "or media.customTranscodeTemplates: true in the node's config)")
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
    _check_args(out, True)
    return out


def output_format(args: list[str]) -> str:
    for i, arg in enumerate(args[:-1]):
        if arg == "-f":
            return args[i + 1]
    return "mpegts"


def content_type(args: list[str]) -> str:
    return CONTENT_TYPES.get(output_format(args), "application/octet-stream")
