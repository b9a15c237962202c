"""One authentication decision per request, taken on the route Falcon matched.

Why not on the path text: Falcon's router strips leading slashes, collapses nothing else, and
(with ``strip_url_path_trailing_slash``) drops a trailing slash before it routes, so a check
that compares ``req.path`` with a prefix or a set of paths and the router that picks the
resource can disagree (``//api/v1/node``, ``/traffic/``).  Here the decision is made in
``process_resource``, after routing, from the URI template of the matched route: whatever
spelling reached a resource, that resource's rule is applied.

Each face's ``register`` returns its :class:`Rule` (how a request of that face proves who it
is); ``create_app`` records which URI templates each face added and binds them to its rule.  A
resource opts out with ``auth_rule = PUBLIC`` (health probes, login, docs), or opts into a
narrower check by a rule of its own face (``Rule.check`` gets the resource).  A route with no
rule is refused (fail closed), so a route added without thought is never open.

Paths are normalised once, before routing: runs of slashes collapse to one and a trailing
slash goes (as ``strip_url_path_trailing_slash`` does for one slash), so the log, the route and
the rule all see the same path.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable

import falcon

PUBLIC = "public"
log = logging.getLogger("fastpath.control.auth")
_SLASHES = re.compile(r"//+")


class Rule:
    """A face's authentication: ``check(req, resource)`` raises an HTTP error to refuse."""

    def __init__(self, name: str, check: Callable[[falcon.Request, object], None]):
        self.name = name
        self.check = check

    def __repr__(self) -> str:
        return f"Rule({self.name!r})"


OPEN = Rule("open", lambda req, resource: None)


class RecordingApp:
    """The app as a face's ``register`` sees it: every ``add_route`` call's URI template is
    noted in ``added``, everything else goes to the app itself.

    Asking Falcon's inspect API for the whole table before and after each face cost seconds
    per node start (it inspects every resource's methods and source), so the templates are
    noted as they are added instead."""

    def __init__(self, app: falcon.App) -> None:
        self._app = app
        self.added: set[str] = set()

    def add_route(self, uri_template: str, resource, **kwargs):
        self.added.add(uri_template)
        return self._app.add_route(uri_template, resource, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._app, name)


class PathNormaliser:
    """Collapse runs of slashes, and drop a trailing one, before anything else looks at it."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if "//" in req.path:
            path = _SLASHES.sub("/", req.path)
            req.path = path.rstrip("/") or "/"


class RouteGuard:
    """The middleware that applies each matched route's rule."""

    def __init__(self):
        self.rules: dict[str, Rule] = {}

    def bind(self, templates: Iterable[str], rule: Rule) -> None:
        for template in templates:
            if template in self.rules and self.rules[template] is not rule:
                raise ValueError(f"route {template} is bound to {self.rules[template]} already")
            self.rules[template] = rule

    def rule_for(self, template: str | None, resource) -> Rule | None:
        if getattr(resource, "auth_rule", None) == PUBLIC:
            return OPEN
        return self.rules.get(template or "")

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource, params) -> None:
        if resource is None:       # no route: the 404 answer carries nothing to protect
            return
        rule = self.rule_for(req.uri_template, resource)
        if rule is None:
            log.error("route %s has no authentication rule; refused", req.uri_template)
            raise falcon.HTTPForbidden(title="forbidden",
                                       description="this route has no authentication rule")
        rule.check(req, resource)
