"""``GET /`` on the control port, shared by two faces that each answer it in their product.

The Traffic Stats API serves its index page at ``/``; m3u-proxy answers ``/`` with a JSON status
that IPTV managers read (version, uptime, counts).  Both faces live on the control port, and a
route template can be bound to one rule only, so ``/`` is one resource here that picks a face
per request, and applies *that* face's rule (the route guard calls :attr:`SharedRoot.rule`):

* a face may claim requests outright (``wants``): Traffic Stats claims its dedicated listener
  (``trafficStats.listen``), where its reference serves the index;
* otherwise the first face whose ``wants`` accepts the request; the stream face accepts API
  clients (an ``X-API-Token``/``?api_token=``, or an ``Accept`` that does not prefer HTML);
* otherwise the fallback face (a browser on the control port gets the Traffic Stats page).

Faces claim through :func:`claim` in their ``register``; ``create_app`` adds the route once the
faces are in and binds it to :attr:`SharedRoot.rule`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import falcon

from fastpath.control.route_guard import Rule


@dataclass
class Claim:
    name: str
    resource: object
    rule: Rule
    wants: Callable[[falcon.Request], bool] | None
    fallback: bool


class SharedRoot:
    def __init__(self):
        self.claims: list[Claim] = []
        self.rule = Rule("shared-root", self._check)

    def pick(self, req: falcon.Request) -> Claim:
        for c in self.claims:
            if c.wants is not None and c.wants(req):
                return c
        for c in self.claims:
            if c.fallback:
                return c
        return self.claims[0]

    def _check(self, req: falcon.Request, resource) -> None:
        c = self.pick(req)
        c.rule.check(req, c.resource)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.pick(req).resource.on_get(req, resp)


def claim(node, name: str, resource, rule: Rule, *, wants=None, fallback: bool = False) -> bool:
    """Offer ``resource`` for ``GET /``; False when the app being built shares no root (a face
    registered on its own), and the caller then adds nothing."""
    root = node.shared_root
    if root is None:
        return False
    root.claims.append(Claim(name, resource, rule, wants, fallback))
    return True
