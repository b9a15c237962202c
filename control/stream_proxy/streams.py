"""``/streams``, ``/streams/{id}``, ``/streams/{id}/failover``, ``/streams/by-metadata`` and
``/transcode``: registering upstream streams and steering them."""
from __future__ import annotations

import json

import falcon

from control.stream_proxy import bodies as b
from control.stream_proxy import stream_json
from control.stream_proxy.auth import protected
from control.stream_proxy.errors import bad_request, not_found
from control.stream_proxy.face import Face, result_sum, wants_msgpack
from control.stream_proxy.kinds import TYPE_NAMES, create_type, kind_of, viewer_urls
from control.stream_proxy.views import client_view, current_index, stream_view
from fastpath.media import transcode
from fastpath.store.media_store import (
    MediaStream,
    delete_stream,
    get_stream,
    put_stream,
    record_failover,
)

# Fields of an existing stream that a new POST with the same URL replaces (when given).
UPDATABLE = {"failover_urls": "failover_urls", "user_agent": "user_agent", "headers": "headers",
             "strict_live_ts": "strict_live_ts", "use_sticky_session": "sticky",
             "metadata": "metadata"}

TRANSCODE_UPDATABLE = ("failover_urls", "user_agent", "headers", "metadata")


def parse_stream_body(body: dict, policy=None) -> tuple[MediaStream, set[str]]:
    """The stream a create body describes, and the stored fields it names; ``policy`` (the
    outbound rule) refuses URLs the relay would not connect to."""
    if "url" not in body:
        raise bad_request("field 'url' is required")
    url = b.target_url(body["url"], "url", policy)
    stream = MediaStream(
        id="", url=url, kind=kind_of(url),
        failover_urls=b.url_list(body, "failover_urls", policy),
        user_agent=b.optional_text(body, "user_agent"),
        headers=b.headers(body),
        strict_live_ts=b.flag(body, "strict_live_ts"),
        sticky=b.flag(body, "use_sticky_session"),
        metadata=b.metadata(body),
    )
    given = {attr for key, attr in UPDATABLE.items() if body.get(key) is not None}
    return stream, given


@protected()
class Streams:
    def __init__(self, face: Face):
        self.face = face

    def on_get(self, req, resp):
        view = self.face.live(clients_of=False)
        if not wants_msgpack(req):
            templates = self.face.stream_templates()
            array = stream_json.streams_array(templates, view)[0]
            resp.content_type = falcon.MEDIA_JSON
            resp.data = f'{{"streams": {array}, "total": {len(templates)}}}'.encode()
            return
        agent = self.face.default_user_agent
        streams = [stream_view(s, view, agent) for s in self.face.streams()]
        resp.media = {"streams": streams, "total": len(streams)}

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
        self.face.tell_workers("media_streams_changed")
        resp.media = {"message": f"Stream {stream_id} deleted"}


@protected()
class StreamFailover:
    def __init__(self, face: Face):
        self.face = face

    def on_post(self, req, resp, stream_id):
        stream = _stream_or_404(self.face, stream_id)
        if not stream.failover_urls:
            raise bad_request("Stream has no failover URLs configured")
        live = self.face.live(clients_of=False).streams.get(stream.id)
        index = (current_index(stream, live) + 1) % len(stream.urls)
        stored = record_failover(self.face.store, stream.id, index)
        if stored is None:  # deleted meanwhile
            raise not_found("Stream not found")
        results = self.face.tell_workers("media_failover", {"stream_id": stream.id, "index": index})
        resp.media = {
            "message": "Failover successful",
            "new_url": stored.urls[index],
            "failover_index": index,
            "failover_attempts": stored.failover_attempts,
            "active_clients": result_sum(results, "active_clients"),
            "stream_type": TYPE_NAMES.get(stored.kind, stored.kind),
        }


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


def transcode_dedup_key(url: str, profile: str, variables: dict[str, str]) -> str:
    """One FFmpeg per (url, profile, variables): that triple is the stream's identity."""
    return "transcode\n" + json.dumps([url, profile, sorted(variables.items())])


@protected()
class Transcode:
    def __init__(self, face: Face):
        self.face = face

    def on_post(self, req, resp):
        body = b.json_body(req)
        if "url" not in body:
            raise bad_request("field 'url' is required")
        url = b.target_url(body["url"], "url", self.face.outbound)
        profile = body.get("profile") or "default"
        extra = getattr(self.face.media, "transcode_profiles", None) or {}
        if not isinstance(profile, str):
            raise bad_request("profile must be a profile name")
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
            args = transcode.render(template, variables)
        except ValueError as exc:
            raise bad_request(str(exc)) from None
        stream = MediaStream(
            id="", url=url, kind="transcode",
            dedup_key=transcode_dedup_key(url, profile, variables),
            failover_urls=b.url_list(body, "failover_urls", self.face.outbound),
            user_agent=b.optional_text(body, "user_agent"),
            headers=b.headers(body),
            metadata=b.metadata(body),
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
            "format": fmt,
            "content_type": transcode.content_type(args),
            "profile": profile,
            "profile_variables": dict(stored.profile_variables),
            "ffmpeg_args": args,
            "message": f"Transcoded stream created successfully (direct {fmt.upper()} pipe)",
            "metadata": dict(stored.metadata),
        }
