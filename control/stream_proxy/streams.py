"""``/streams``, ``/streams/{id}``, ``/streams/{id}/failover``, ``/streams/by-metadata`` and
``/transcode``: registering upstream streams and steering them."""
from __future__ import annotations

import asyncio
import json
import time

import falcon

from fastpath.control.stream_proxy import bodies as b
from fastpath.control.stream_proxy import stream_json
from fastpath.control.stream_proxy.auth import protected
from fastpath.control.stream_proxy.errors import ProxyError, bad_request, invalid, not_found
from fastpath.control.stream_proxy.face import Face, result_sum, wants_msgpack
from fastpath.control.stream_proxy.kinds import TYPE_NAMES, create_type, kind_of, viewer_urls
from fastpath.control.stream_proxy.views import client_view, current_index, stream_view
from fastpath.media import failover_resolver
from fastpath.store import media_profiles as transcode
from fastpath.store.media_store import (
    MediaStream,
    delete_stream,
    get_stream,
    put_stream,
    record_failover,
    switch_to_resolved,
)

# Fields of an existing stream that a new POST with the same URL replaces (when given).
UPDATABLE = {"failover_urls": "failover_urls", "user_agent": "user_agent", "headers": "headers",
             "strict_live_ts": "strict_live_ts", "use_sticky_session": "sticky",
             "metadata": "metadata", "failover_resolver_url": "failover_resolver_url"}

TRANSCODE_UPDATABLE = ("failover_urls", "user_agent", "headers", "metadata", "failover_resolver_url")


def resolver_url(body: dict, policy) -> str | None:
    """``failover_resolver_url``: the URL the workers ask for the next upstream when the
    current one fails (``fastpath.media.failover_resolver``); an http(s) URL the outbound
    rule allows, as upstreams and webhooks are."""
    value = body.get("failover_resolver_url")
    return None if value is None else b.target_url(value, "failover_resolver_url", policy)


def parse_stream_body(body: dict, policy=None) -> tuple[MediaStream, set[str]]:
    """The stream a create body describes, and the stored fields it names; ``policy`` (the
    outbound rule) refuses URLs the relay would not connect to."""
    url = b.target_url(b.required(body, "url"), "url", policy)
    stream = MediaStream(
        id="", url=url, kind=kind_of(url),
        failover_urls=b.url_list(body, "failover_urls", policy),
        failover_resolver_url=resolver_url(body, policy),
        user_agent=b.optional_text(body, "user_agent"),
        headers=b.headers(body),
        strict_live_ts=b.flag(body, "strict_live_ts"),
        sticky=b.flag(body, "use_sticky_session"),
        metadata=b.metadata(body),
    )
    given = {attr for key, attr in UPDATABLE.items() if body.get(key) is not None}
    return stream, given


def list_streams(face: Face, req, resp, total_key: str, total_first: bool) -> None:
    """Every stream with its live figures and their count under ``total_key`` (first or last,
    as the m3u-proxy route has it): the compiled JSON writer's array, or msgpack of the same
    stream objects when the client asks for it."""
    view = face.live(clients_of=False)
    if not wants_msgpack(req):
        templates = face.stream_templates()
        parts = [f'"streams": {stream_json.streams_array(templates, view)[0]}',
                 f'"{total_key}": {len(templates)}']
        resp.content_type = falcon.MEDIA_JSON
        resp.data = ("{" + ", ".join(parts[::-1] if total_first else parts) + "}").encode()
        return
    agent = face.default_user_agent
    streams = [stream_view(s, view, agent) for s in face.streams()]
    items = [("streams", streams), (total_key, len(streams))]
    resp.media = dict(items[::-1] if total_first else items)


@protected()
class Streams:
    def __init__(self, face: Face):
        self.face = face

    def on_get(self, req, resp):
        list_streams(self.face, req, resp, "total", total_first=False)

    def on_post(self, req, resp):
        stream, given = parse_stream_body(b.json_body(req), self.face.outbound)
        stored, created = put_stream(self.face.store, stream, update=given)
        if created or given:
            self.face.tell_workers("media_streams_changed")
        kind = create_type(stored.kind)
        resp.media = {
            "stream_id": stored.id,
            "primary_url": stored.url,
            "failover_urls": list(stored.failover_urls),
            "user_agent": stored.user_agent or self.face.default_user_agent,
            "stream_type": kind,
            **viewer_urls(self.face.media, stored.kind, stored.id),
            "message": f"Stream created successfully ({kind})",
            "metadata": dict(stored.metadata),
        }


def _stream_or_404(face: Face, stream_id: str) -> MediaStream:
    stream = get_stream(face.store, stream_id)
    if stream is None:
        raise not_found("Stream not found")
    return stream


@protected()
class StreamItem:
    def __init__(self, face: Face):
        self.face = face

    def on_get(self, req, resp, stream_id):
        stream = _stream_or_404(self.face, stream_id)
        view = self.face.live(clients_of=stream.id)
        clients = [client_view(c) for c in view.stream_clients(stream.id) if c.connected]
        resp.media = {"stream": stream_view(stream, view, self.face.default_user_agent), "clients": clients,
                      "client_count": len(clients)}

    def on_delete(self, req, resp, stream_id):
        if not delete_stream(self.face.store, stream_id):
            raise not_found("Stream not found")
        self.face.tell_workers("media_streams_changed", {"reasons": {stream_id: "manual_deletion"}})
        resp.media = {"message": f"Stream {stream_id} deleted"}


@protected()
class StreamFailover:
    def __init__(self, face: Face):
        self.face = face

    def on_post(self, req, resp, stream_id):
        stream = _stream_or_404(self.face, stream_id)
        if not stream.has_failover:
            raise bad_request("No failover mechanism configured for this stream (neither "
                              "failover_urls nor failover_resolver_url)")
        live = self.face.live(clients_of=False).streams.get(stream.id)
        current = current_index(stream, live)
        stored = self._resolved(stream, current) if stream.failover_resolver_url else None
        if stored is not None:
            index = stored.failover_index
            command = {"stream_id": stream.id, "index": index, "resolved_url": stored.resolved_url,
                       "resolved_count": stored.resolved_count}
        elif stream.failover_urls:
            # No resolver, or it gave no URL: the next URL of the list, as the workers walk it.
            index = (current + 1) % len(stream.urls)
            stored = record_failover(self.face.store, stream.id, index)
            command = {"stream_id": stream.id, "index": index}
        else:
            raise ProxyError(falcon.HTTP_502, "bad gateway", "Failover failed - the failover resolver "
                             "gave no URL and the stream has no failover_urls")
        if stored is None:  # deleted meanwhile
            raise not_found("Stream not found")
        results = self.face.tell_workers("media_failover", command)
        resp.media = {
            "message": "Failover triggered successfully - all clients will seamlessly reconnect",
            "new_url": stored.urls[index],
            "failover_index": stored.failover_position(index),
            "url_index": index,
            "failover_attempts": stored.failover_attempts,
            "active_clients": result_sum(results, "active_clients"),
            "stream_type": TYPE_NAMES.get(stored.kind, stored.kind),
        }

    def _resolved(self, stream: MediaStream, current: int) -> MediaStream | None:
        """Ask the stream's resolver (as the workers do on a failure, within its 10 s) and
        record its answer as the stream's URL; None when it gave none (logged)."""
        old_url = stream.urls[current]
        answer = asyncio.run(failover_resolver.resolve_once(
            self.face.outbound, stream.id, stream.failover_resolver_url,
            failover_resolver.request_body(old_url, stream.metadata, stream.failover_position(current))))
        if answer is None:
            return None
        # Recorded against the index the store holds (the live view's may run ahead of it).
        at = stream.failover_index if 0 <= stream.failover_index < len(stream.urls) else 0
        won, stored = switch_to_resolved(self.face.store, stream.id, at, stream.urls[at], answer)
        if stored is None:
            raise not_found("Stream not found")
        if not won:
            raise ProxyError(falcon.HTTP_409, "conflict", "The stream switched upstream meanwhile; "
                             "trigger the failover again")
        return stored


@protected()
class StreamsByMetadata:
    def __init__(self, face: Face):
        self.face = face

    def on_get(self, req, resp):
        field = b.query_required(req, "field")
        value = b.query_required(req, "value")
        active_only = b.query_bool(req, "active_only", True)
        view = self.face.live(clients_of=False)
        matching = []
        for s in self.face.streams():
            if s.metadata.get(field) != value:
                continue
            obj = stream_view(s, view)
            if active_only and not obj["client_count"]:
                continue
            matching.append({"stream_id": s.id, "client_count": obj["client_count"],
                             "metadata": obj["metadata"], "last_access": obj["last_access"],
                             "is_active": obj["is_active"], "url": obj["current_url"],
                             "stream_type": obj["stream_type"]})
        resp.media = {"filter": {"field": field, "value": value}, "active_only": active_only,
                      "matching_streams": matching, "total_matching": len(matching),
                      "total_clients": sum(m["client_count"] for m in matching)}

    def on_delete(self, req, resp):
        """Every stream whose metadata matches, except the channel the caller keeps."""
        field = b.query_required(req, "field")
        value = b.query_required(req, "value")
        hits, kept = _metadata_matches(self.face, field, value, req.get_param("exclude_channel_id"))
        deleted = _delete_all(self.face, hits, "metadata_filter_deletion")
        resp.media = {"message": f"Deleted {len(deleted)} stream(s) matching {field}={value}",
                      "deleted_streams": deleted,
                      "skipped_streams": [{"stream_id": s.id, "reason": "excluded_by_channel_id"}
                                          for s in kept],
                      "deleted_count": len(deleted)}


def _metadata_matches(face: Face, field: str, value: str, exclude: str | None):
    """The streams whose ``metadata[field]`` is ``value`` (m3u-proxy compares text), and those
    of them kept because their ``metadata["id"]`` is ``exclude_channel_id``."""
    hits, kept = [], []
    for s in face.streams():
        if field in s.metadata and str(s.metadata[field]) == str(value):
            (kept if exclude and str(s.metadata.get("id")) == str(exclude) else hits).append(s)
    return hits, kept


def _delete_all(face: Face, streams, reason: str) -> list[str]:
    """Delete ``streams`` from the store and tell the workers once; their viewers are cut and
    ``stream_stopped`` says ``reason``."""
    deleted = [s.id for s in streams if delete_stream(face.store, s.id)]
    if deleted:
        face.tell_workers("media_streams_changed", {"reasons": {sid: reason for sid in deleted}})
    return deleted


@protected()
class StreamsOldestByMetadata:
    """``DELETE /streams/oldest-by-metadata``: "latest wins" connection limits (an account at
    its limit drops its oldest stream to make room for the new channel)."""

    def __init__(self, face: Face):
        self.face = face

    def on_delete(self, req, resp):
        field = b.query_required(req, "field")
        value = b.query_required(req, "value")
        hits, _ = _metadata_matches(self.face, field, value, req.get_param("exclude_channel_id"))
        if not hits:
            resp.media = {"message": f"No streams found matching {field}={value}",
                          "deleted_stream": None, "deleted_count": 0}
            return
        oldest = min(hits, key=lambda s: s.created)
        deleted = _delete_all(self.face, [oldest], "oldest_stream_deletion")
        age = max(0.0, time.time() - oldest.created)
        resp.media = {"message": f"Deleted oldest stream matching {field}={value}",
                      "deleted_stream": deleted[0] if deleted else None,
                      "stream_age_seconds": age, "deleted_count": len(deleted)}


def transcode_dedup_key(url: str, profile: str, variables: dict[str, str]) -> str:
    """One FFmpeg per (url, profile, variables): that triple is the stream's identity."""
    return "transcode\n" + json.dumps([url, profile, sorted(variables.items())])


def transcode_metadata(profile: str, variables: dict[str, str], args: list[str]) -> dict[str, str]:
    """The metadata m3u-proxy stores with a transcoded stream (its UI labels them from it);
    the caller's own metadata wins on the same key, as there.  ``profile_variables`` is the
    text of a Python dict, as m3u-proxy stores it."""
    return {"transcoding": "true", "profile": profile, "profile_variables": repr(dict(variables)),
            "ffmpeg_args": " ".join(args)}


def variables_in_use(url: str, template: str, fmt: str, given: dict[str, str]) -> dict[str, str]:
    """The variables the profile was rendered with: the fixed ones m3u-proxy lists (input,
    output, format), each placeholder's default, then the caller's values."""
    defaults = {k: d for k, d in transcode.template_variables(template).items() if d is not None}
    return {"input_url": url, "output_args": "pipe:1", "format": fmt, **defaults, **given}


@protected()
class Transcode:
    def __init__(self, face: Face):
        self.face = face

    def on_post(self, req, resp):
        body = b.json_body(req)
        url = b.target_url(b.required(body, "url"), "url", self.face.outbound)
        resolver = resolver_url(body, self.face.outbound)
        profile = body.get("profile") or "default"
        extra = getattr(self.face.media, "transcode_profiles", None) or {}
        if not isinstance(profile, str):
            raise invalid("profile", "profile must be a profile name", profile)
        try:
            template = transcode.profile_template(
                profile, extra, getattr(self.face.media, "custom_transcode_templates", False))
        except ValueError as exc:
            raise bad_request(str(exc)) from None
        if template is None:
            raise bad_request(f"Profile '{profile}' not found. Available profiles: "
                              f"{', '.join(transcode.profile_names(extra))}")
        try:
            variables = transcode.check_variables(body.get("profile_variables"))
        except ValueError as exc:
            raise invalid("profile_variables", str(exc), body.get("profile_variables")) from None
        try:
            args = transcode.render(template, variables)
        except ValueError as exc:
            # A custom template is the ``profile`` field itself; a named one fails on a variable.
            name = "profile" if transcode.is_custom(profile) else "profile_variables"
            raise invalid(name, str(exc), body.get(name)) from None
        user_metadata = b.metadata(body)
        stream = MediaStream(
            id="", url=url, kind="transcode",
            dedup_key=transcode_dedup_key(url, profile, variables),
            failover_urls=b.url_list(body, "failover_urls", self.face.outbound),
            failover_resolver_url=resolver,
            user_agent=b.optional_text(body, "user_agent"),
            headers=b.headers(body),
            metadata={**transcode_metadata(profile, variables, args), **user_metadata},
            profile=profile, profile_variables=variables,
        )
        given = {attr for key, attr in UPDATABLE.items()
                 if key in TRANSCODE_UPDATABLE and body.get(key) is not None}
        stored, created = put_stream(self.face.store, stream, update=given)
        if created or given:
            self.face.tell_workers("media_streams_changed")
        fmt = transcode.output_format(args)
        urls = viewer_urls(self.face.media, "transcode", stored.id)
        resp.media = {
            "stream_id": stored.id,
            "primary_url": stored.url,
            "failover_urls": list(stored.failover_urls),
            "user_agent": stored.user_agent or self.face.default_user_agent,
            "stream_type": "transcoded",
            "stream_endpoint": urls["stream_endpoint"],
            "playlist_url": None,
            "direct_url": urls["direct_url"],
            "viewer_url": urls["viewer_url"],
            "format": fmt,
            "content_type": transcode.content_type(args),
            "profile": profile,
            "profile_variables": variables_in_use(url, template, fmt, stored.profile_variables),
            "ffmpeg_args": args,
            "message": f"Transcoded stream created successfully (direct {fmt.upper()} pipe)",
            "metadata": dict(stored.metadata),
        }
