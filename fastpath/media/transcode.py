"""The FFmpeg command line of a transcoded stream, built from its profile's arguments.

What a profile may be (templates, variables, the arguments they render to) is the stream
model's, ``fastpath.store.media_profiles``; it is re-exported here for the relay.
"""
from __future__ import annotations

from fastpath.store.media_profiles import (  # noqa: F401  (the relay's names)
    PROFILES, check_template, check_variables, content_type, output_format, profile_template,
    render)


def ffmpeg_command(ffmpeg: str, profile_args: list[str]) -> list[str]:
    """The full command: FFmpeg reads the upstream body from stdin (the node fetches it, under
    the outbound rule) and writes the profile's output to stdout; no protocol but the pipe."""
    cmd = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error",
           "-protocol_whitelist", "pipe", "-i", "pipe:0", *profile_args]
    if "-f" not in profile_args:
        cmd += ["-f", "mpegts"]
    cmd.append("pipe:1")
    return cmd


__all__ = ["PROFILES", "check_template", "check_variables", "content_type", "ffmpeg_command",
           "output_format", "profile_template", "render"]
