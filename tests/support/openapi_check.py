"""Check real HTTP answers against the node's own OpenAPI document.

:class:`Conformance` finds the operation a request went to (the path matched against every
template of the document, literal segments preferred to parameters, as the router does), the
response the status names, and the media type the answer's ``Content-Type`` names, and
validates a JSON (or msgpack) body against that response's schema with ``jsonschema`` (Draft 2020-12, the
dialect of OpenAPI 3.1; ``$ref``s resolve into the document's ``components``).  It records
which operations were exercised, so a test can say how much of the document real answers
covered.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import msgpack
from jsonschema import Draft202012Validator


CREDENTIALS = {"api_token", "token"}


def _template_regex(template: str) -> re.Pattern:
    parts = re.split(r"(\{[^}]+\})", template)
    # A parameter of a HY2 SCALE peer path may hold "/" (``/peers/{path}/nested``).
    pattern = "".join("(.+)" if p == "{path}" else "([^/]+)" if p.startswith("{") else re.escape(p)
                      for p in parts)
    return re.compile(f"^{pattern}$")


@dataclass
class Answer:
    method: str
    template: str
    status: int
    media_type: str


@dataclass
class Conformance:
    doc: dict
    checked: list[Answer] = field(default_factory=list)

    def __post_init__(self):
        self._templates = [(t, _template_regex(t)) for t in self.doc["paths"]]
        self._validators: dict[int, Draft202012Validator] = {}

    def operation(self, method: str, path: str) -> tuple[str, dict]:
        path = path.split("?", 1)[0]
        hits = [t for t, rx in self._templates if rx.match(path)
                and method.lower() in self.doc["paths"][t]]
        assert hits, f"{method} {path}: no operation in the document"
        # The most literal template wins (/streams/by-metadata over /streams/{stream_id}).
        template = min(hits, key=lambda t: (t.count("{"), -len(t)))
        return template, self.doc["paths"][template][method.lower()]

    def validator(self, schema: dict) -> Draft202012Validator:
        key = id(schema)
        if key not in self._validators:
            root = {**schema, "components": self.doc["components"]}
            Draft202012Validator.check_schema(root)
            self._validators[key] = Draft202012Validator(root)
        return self._validators[key]

    def check(self, method: str, path: str, status: int, headers, body: bytes):
        """Validate one answer; returns its decoded JSON body (or None for other media)."""
        template, op = self.operation(method, path)
        where = f"{method} {path} -> {status}"
        self.check_query(path, op, where)
        response = op["responses"].get(str(status))
        assert response is not None, f"{where}: status not documented ({sorted(op['responses'])})"
        ctype = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
        content = response.get("content")
        if not content:
            assert not body, f"{where}: documented without a body, answered {body[:200]!r}"
            self.checked.append(Answer(method, template, status, ""))
            return None
        assert body or method == "HEAD", f"{where}: documented with a body, answered none"
        declared = {t.lower(): media for t, media in content.items()}
        media = declared.get(ctype) or declared.get(ctype.split("/")[0] + "/*") or declared.get("*/*")
        assert media is not None, f"{where}: Content-Type {ctype!r} not documented ({sorted(declared)})"
        self.checked.append(Answer(method, template, status, ctype))
        if ctype == "application/msgpack":
            value = msgpack.unpackb(body, raw=False)
        elif ctype == "application/json" or ctype.endswith("+json"):
            value = json.loads(body)
        else:
            return None
        errors = sorted(self.validator(media["schema"]).iter_errors(value), key=lambda e: list(e.path))
        assert not errors, f"{where}: the answer does not match its schema:\n" + "\n".join(
            f"  at {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:300]}" for e in errors[:10])
        return value

    def check_query(self, path: str, op: dict, where: str) -> None:
        """Every query parameter sent is one the operation documents (credentials aside: the
        security schemes describe ``?api_token=`` and the layout stream's ``?token=``)."""
        query = path.partition("?")[2]
        sent = {part.partition("=")[0] for part in query.split("&") if part} - CREDENTIALS
        declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
        assert sent <= declared, f"{where}: query parameters not documented: {sorted(sent - declared)}"

    def check_request(self, method: str, path: str, body) -> None:
        """A body the node accepted (the caller saw a 2xx) matches the documented request
        schema; an operation that documents none was sent none."""
        _template, op = self.operation(method, path)
        declared = op.get("requestBody")
        where = f"{method} {path} (request)"
        if body is None:
            assert not (declared and declared.get("required")), f"{where}: a body is required"
            return
        assert declared, f"{where}: sent a body the document does not describe"
        schema = declared["content"]["application/json"]["schema"]
        errors = list(self.validator(schema).iter_errors(body))
        assert not errors, f"{where}: an accepted body does not match its schema:\n" + "\n".join(
            f"  at {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:300]}" for e in errors[:10])

    def offers_msgpack(self, method: str, path: str, status: int) -> bool:
        _template, op = self.operation(method, path)
        return "application/msgpack" in (op["responses"].get(str(status), {}).get("content") or {})

    def operations(self) -> set[tuple[str, str]]:
        return {(a.method.upper(), a.template) for a in self.checked}
