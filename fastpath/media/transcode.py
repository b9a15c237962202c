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
# Options a profile may not use: they would name files or change where output goes.
_FORBIDDEN = {"-i", "-y", "-n", "-f_strict", "-filter_script", "-filter_complex_script",
              "-attach", "-dump_attachment", "-progress", "-vstats_file", "-report", "-passlogfile"}


def check_template(template: str) -> list[str]:
    """The template's arguments, or ValueError saying what is wrong with it."""
    if not isinstance(template, str) or not template.strip():
        raise ValueError("a profile needs FFmpeg arguments")
    args = template.split()
    for arg in args:
        rest = _PLACEHOLDER.sub("", arg)
        if "{" in rest or "}" in rest:
            raise ValueError(f"bad placeholder in {arg!r} (use {{name}} or {{name|default}})")
        if arg in _FORBIDDEN:
            raise ValueError(f"{arg} is not allowed in a profile (the node sets input and output)")
    if "pipe:" in template or "file:" in template:
        raise ValueError("a profile may not name an input or output")
    return args


def profile_names(extra: dict[str, str] | None = None) -> list[str]:
    return sorted({*PROFILES, *(extra or {})})


def profile_template(name: str, extra: dict[str, str] | None = None) -> str | None:
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


def ffmpeg_command(ffmpeg: str, url: str, profile_args: list[str], *, user_agent: str | None = None,
                   headers: dict[str, str] | None = None) -> list[str]:
    """The full command: input options, ``-i url``, the profile, ``pipe:1``."""
    cmd = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error",
           "-protocol_whitelist", "http,https,tcp,tls,crypto"]
    if user_agent:
        cmd += ["-user_agent", user_agent]
    if headers:
        cmd += ["-headers", "".join(f"{k}: {v}\r\n" for k, v in headers.items())]
    cmd += ["-i", url, *profile_args]
    if "-f" not in profile_args:
        cmd += ["-f", "mpegts"]
    cmd.append("pipe:1")
    return cmd
