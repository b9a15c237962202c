"""Routing rules (HY2 SCALE ``/api/rules``): which exit a target's traffic takes, by address.

A rule is ``{id, name, type: "ip"|"domain", targets, exit_via, exit_paths, exit_mode, enabled,
priority}``.  ``ip`` targets are addresses, CIDRs or ``a-b`` ranges; ``domain`` targets are
names matched as suffixes on label boundaries (``example.com`` matches ``example.com`` and
``www.example.com``, not ``badexample.com``; a leading ``*.`` or ``.`` is the same suffix).
The reference resolves domain rules to addresses and matches those; a proxy request carries
the name itself, so matching the name is exact where resolving is a guess.

``RuleTable`` is compiled once per rules change and answers per stream:

- IP: per family, the rules' ranges flattened into sorted, non-overlapping segments, each
  holding the rule that wins there (highest ``priority``, then the earlier rule), so a lookup
  is one ``bisect`` over integers.  Hand-written because the standard ``ipaddress`` module
  has no range table and a lookup must not walk every rule.
- Domain: a trie over reversed labels; the deepest rule on the way wins (the most specific
  suffix), ties by priority then order.

Measured (bench/RESULTS.md, mesh section): about 6 us per lookup with 10 000 targets, 2.3x one
``ipaddress`` parse of the host, against a dial of a millisecond or more, so it stays in Python
(no Cython: it does not show next to the dial).
"""
from __future__ import annotations

import bisect
import ipaddress
from dataclasses import dataclass

MAX_RULES = 1000
MAX_TARGETS = 10000           # per rule
RULE_TYPES = ("ip", "domain")


class RuleError(ValueError):
    pass


@dataclass(frozen=True)
class Rule:
    id: str
    paths: tuple[str, ...]
    mode: str
    priority: int
    order: int


def parse_ip_target(text: str) -> tuple[int, int, int]:
    """(family 4|6, first, last) of an address, CIDR or ``a-b`` range; ``RuleError``."""
    t = text.strip()
    try:
        if "/" in t:
            net = ipaddress.ip_network(t, strict=False)
            return net.version, int(net.network_address), int(net.broadcast_address)
        if "-" in t:
            a, _, b = t.partition("-")
            lo, hi = ipaddress.ip_address(a.strip()), ipaddress.ip_address(b.strip())
            if lo.version != hi.version or int(lo) > int(hi):
                raise RuleError(f"range {text!r} is empty or mixes IPv4 and IPv6")
            return lo.version, int(lo), int(hi)
        ip = ipaddress.ip_address(t)
        return ip.version, int(ip), int(ip)
    except ValueError as exc:
        if isinstance(exc, RuleError):
            raise
        raise RuleError(f"ip target {text!r} is not an address, CIDR or range") from None


def domain_labels(text: str) -> tuple[str, ...]:
    t = text.strip().lower().rstrip(".")
    if t.startswith("*."):
        t = t[2:]
    elif t.startswith("."):
        t = t[1:]
    labels = tuple(t.split("."))
    if not t or len(t) > 253 or any(not lab or len(lab) > 63 for lab in labels) or \
            not all(c.isalnum() or c in "-_" for lab in labels for c in lab):
        raise RuleError(f"domain target {text!r} is not a domain name")
    return labels


def _wins(a: Rule, b: Rule | None) -> bool:
    return b is None or (a.priority, -a.order) > (b.priority, -b.order)


class _IpTable:
    def __init__(self) -> None:
        self.ranges: list[tuple[int, int, Rule]] = []
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.rules: list[Rule] = []

    def add(self, lo: int, hi: int, rule: Rule) -> None:
        self.ranges.append((lo, hi, rule))

    def compile(self) -> None:
        """Sweep the range boundaries; each elementary segment keeps its winning rule and
        neighbours with the same winner merge."""
        points = sorted({lo for lo, _, _ in self.ranges} | {hi + 1 for _, hi, _ in self.ranges})
        segs: list[tuple[int, int, Rule]] = []
        # Few rules overlap in practice; an interval list per segment keeps this simple:
        # ranges sorted by start, the active set pruned as the sweep passes their end.
        by_start = sorted(self.ranges, key=lambda r: r[0])
        active: list[tuple[int, int, Rule]] = []
        i = 0
        for k, p in enumerate(points[:-1]):
            while i < len(by_start) and by_start[i][0] <= p:
                active.append(by_start[i])
                i += 1
            active = [r for r in active if r[1] >= p]
            best = None
            for _lo, _hi, rule in active:
                if _wins(rule, best):
                    best = rule
            if best is None:
                continue
            end = points[k + 1] - 1
            if segs and segs[-1][2] is best and segs[-1][1] + 1 == p:
                segs[-1] = (segs[-1][0], end, best)
            else:
                segs.append((p, end, best))
        self.starts = [s[0] for s in segs]
        self.ends = [s[1] for s in segs]
        self.rules = [s[2] for s in segs]
        self.ranges = []

    def lookup(self, value: int) -> Rule | None:
        i = bisect.bisect_right(self.starts, value) - 1
        if i >= 0 and value <= self.ends[i]:
            return self.rules[i]
        return None


class RuleTable:
    """The enabled rules, compiled; ``lookup(host)`` -> ``Rule`` or None."""

    def __init__(self, rules=()) -> None:
        self.v4, self.v6 = _IpTable(), _IpTable()
        self.trie: dict = {}
        self.count = 0
        for order, raw in enumerate(rules):
            if not isinstance(raw, dict) or not raw.get("enabled", True):
                continue
            self._add(raw, order)
        self.v4.compile()
        self.v6.compile()

    def _add(self, raw: dict, order: int) -> None:
        paths = [p for p in (raw.get("exit_paths") or []) if isinstance(p, str) and p]
        if not paths and isinstance(raw.get("exit_via"), str) and raw["exit_via"]:
            paths = [raw["exit_via"]]
        if not paths:
            return
        mode = raw.get("exit_mode") if raw.get("exit_mode") in ("quality", "aggregate") else ""
        prio = raw.get("priority") if isinstance(raw.get("priority"), int) else 0
        rule = Rule(str(raw.get("id", "")), tuple(paths), mode, prio, order)
        self.count += 1
        for target in raw.get("targets") or ():
            try:
                if raw.get("type") == "ip":
                    fam, lo, hi = parse_ip_target(target)
                    (self.v4 if fam == 4 else self.v6).add(lo, hi, rule)
                elif raw.get("type") == "domain":
                    node = self.trie
                    for lab in reversed(domain_labels(target)):
                        node = node.setdefault(lab, {})
                    if _wins(rule, node.get("")):
                        node[""] = rule
            except RuleError:
                continue                # checked when written; a bad stored one is skipped

    def lookup(self, host: str) -> Rule | None:
        if not host or self.count == 0:
            return None
        h = host[1:-1] if host.startswith("[") else host
        try:
            ip = ipaddress.ip_address(h)
        except ValueError:
            return self._lookup_name(h)
        if ip.version == 6 and ip.ipv4_mapped is not None:
            return self.v4.lookup(int(ip.ipv4_mapped))
        return (self.v4 if ip.version == 4 else self.v6).lookup(int(ip))

    def _lookup_name(self, host: str) -> Rule | None:
        node = self.trie
        best = None
        for lab in reversed(host.lower().rstrip(".").split(".")):
            node = node.get(lab)
            if node is None:
                break
            found = node.get("")
            if found is not None:
                best = found           # deeper = more specific: it wins
        return best


def check_rule(body: dict) -> dict:
    """The stored form of a rule body (paths are checked by the caller, who knows the
    clients); ``RuleError`` with the 400 message."""
    if body.get("type") not in RULE_TYPES:
        raise RuleError("type must be 'ip' or 'domain'")
    targets = body.get("targets")
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
        raise RuleError("targets must be a non-empty list of strings")
    if len(targets) > MAX_TARGETS:
        raise RuleError(f"at most {MAX_TARGETS} targets per rule")
    clean = []
    for t in targets:
        if not t.strip():
            continue
        if body["type"] == "ip":
            parse_ip_target(t)
        else:
            domain_labels(t)
        clean.append(t.strip())
    if not clean:
        raise RuleError("targets must name at least one address or domain")
    return {**body, "targets": clean}
