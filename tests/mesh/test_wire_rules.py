"""The mesh's pure parts: relay addresses and UDP frames (fuzzed), path checks, the compiled
rule table against a brute-force reference written from the rules' meaning."""
from __future__ import annotations

import ipaddress
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastpath.mesh import wire
from fastpath.mesh.paths import PathError, check_path, check_paths
from fastpath.mesh.rules import RuleError, RuleTable, check_rule, domain_labels, parse_ip_target

NAMES = st.from_regex(r"[a-z0-9][a-z0-9.-]{0,8}", fullmatch=True)
IDS = st.from_regex(r"[0-9a-f]{8}", fullmatch=True)
TARGETS = st.builds(lambda h, p: f"{h}:{p}", st.from_regex(r"[a-z0-9.]{1,20}", fullmatch=True),
                    st.integers(0, 65535))


@given(path=st.lists(NAMES, max_size=5, unique=True), target=TARGETS,
       visited=st.lists(IDS, max_size=5, unique=True))
def test_via_addresses_round_trip(path, target, visited):
    via = wire.parse(wire.encode_via(path, target, visited))
    assert via == wire.Via(tuple(path), target, tuple(visited))
    udp = wire.parse(wire.encode_udp_via(path, visited))
    assert udp == wire.Via(tuple(path), "", tuple(visited), udp=True)


@settings(max_examples=400)
@given(text=st.text(max_size=120) | st.builds(lambda t: "_relay_" + t, st.text(max_size=80)))
def test_parse_takes_any_text_and_only_refuses_with_relay_error(text):
    try:
        wire.parse(text)
    except wire.RelayError as exc:
        assert str(exc)


@given(node_id=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True),
       name=st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp", "Co", "Cn")),
                    min_size=1, max_size=64).filter(str.isprintable))
def test_identified_node_info_round_trips_any_printable_name(node_id, name):
    address = wire.encode_node_info(node_id, name)
    via = wire.parse(address)
    assert via.target == wire.NODE_INFO and via.asker == (node_id, name) and not via.path
    assert wire.is_control(address)            # node-to-node talk: no hop counts it


@settings(max_examples=300)
@given(tail=st.text(max_size=80))
def test_node_info_with_any_tail_is_parsed_or_refused_with_relay_error(tail):
    try:
        via = wire.parse("_relay_node_info_" + tail + ":0")
    except wire.RelayError as exc:
        assert str(exc)
        return
    assert via.target == wire.NODE_INFO
    assert via.asker is None or (wire.NODE_ID.match(via.asker[0]) and 0 < len(via.asker[1]) <= 64)


def test_node_info_refuses_bad_askers():
    for bad in ("_relay_node_info_abc:0", "_relay_node_info_/name:0", "_relay_node_info_abc/:0",
                "_relay_node_info_abc/x/y:0", "_relay_node_info_abc/%FF:0", "_relay_node_info_abc/%0A:0",
                "_relay_node_info_" + "a" * 65 + "/n:0", "_relay_node_info_abc/" + "n" * 65 + ":0"):
        with pytest.raises(wire.RelayError):
            wire.parse(bad)
    assert wire.parse(wire.NODE_INFO).asker is None


def test_parse_refuses_what_it_must():
    for bad in ("_relay_via_b_:0", "_relay_via_b/b_h:1:0", "_relay_via_b_h:1", "_relay_nope_:0",
                "_relay_via_b_h:1#fp-visited=" + ",".join(["x"] * 20) + ":0", "_relay_via_b//c_h:1:0"):
        with pytest.raises(wire.RelayError):
            wire.parse(bad)
    assert wire.parse("1.2.3.4:80") is None
    assert wire.is_control(wire.encode_via(["c"], wire.PING, ["a"])) and wire.is_control(wire.PING)
    assert not wire.is_control(wire.encode_via(["c"], "h:1", ["a"]))


@given(frames=st.lists(st.tuples(TARGETS, st.binary(max_size=3000)), max_size=8),
       cuts=st.lists(st.integers(0, 20000), max_size=10))
def test_frames_survive_any_split(frames, cuts):
    data = b"".join(wire.encode_frame(a, p) for a, p in frames)
    reader, got, pos = wire.FrameReader(), [], 0
    for cut in sorted(c % (len(data) + 1) for c in cuts) + [len(data)]:
        got += reader.feed(data[pos:cut])
        pos = cut
    assert got == frames


@settings(max_examples=300)
@given(data=st.binary(max_size=300))
def test_a_malformed_frame_is_a_relay_error_never_another(data):
    try:
        wire.FrameReader().feed(data)
    except wire.RelayError:
        pass


def test_path_checks():
    assert check_path("b/c/d", {"me"}, {"b"}) == ("b", "c", "d")
    for bad, words in (("b/b", "revisits"), ("b/me", "revisits this node"), ("x", "not a client"),
                       ("b//c", "empty hop"), ("b/c_d", "'_'"), ("/".join("b" + str(i) for i in range(9)), "hops")):
        with pytest.raises(PathError, match=words):
            check_path(bad, {"me"}, {"b", "b0"})
    assert check_paths(["b/c", "e/c"], "aggregate", (), {"b", "e"}) == (["b/c", "e/c"], "aggregate")
    with pytest.raises(PathError, match="same exit node"):
        check_paths(["b/c", "e/d"], "aggregate", (), {"b", "e"})
    with pytest.raises(PathError, match="quality"):
        check_paths(["b", "e"], "", (), {"b", "e"})


def brute(rules, host):
    """The meaning of the rules, one by one: the best (priority, then first) matching rule."""
    best = None
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    for order, r in enumerate(rules):
        if not r.get("enabled", True):
            continue
        depth = -1
        for t in r["targets"]:
            if r["type"] == "ip" and ip is not None:
                fam, lo, hi = parse_ip_target(t)
                if fam == ip.version and lo <= int(ip) <= hi:
                    depth = 0
            elif r["type"] == "domain" and ip is None:
                labels = domain_labels(t)
                h = tuple(host.lower().split("."))
                if h[len(h) - len(labels):] == labels and len(h) >= len(labels):
                    depth = max(depth, len(labels))
        if depth < 0:
            continue
        key = (depth, r.get("priority", 0), -order) if r["type"] == "domain" else (r.get("priority", 0), -order)
        if best is None or key > best[0]:
            best = (key, r["id"])
    return best[1] if best else None


def test_rule_table_agrees_with_the_brute_force_meaning():
    rng = random.Random(7)
    for _round in range(30):
        rules = []
        for i in range(rng.randint(1, 12)):
            if rng.random() < 0.6:
                targets = []
                for _ in range(rng.randint(1, 4)):
                    base = f"10.{rng.randint(0, 3)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}"
                    kind = rng.random()
                    if kind < 0.4:
                        targets.append(f"{base}/{rng.randint(8, 32)}")
                    elif kind < 0.7:
                        a = int(ipaddress.ip_address(base))
                        targets.append(f"{ipaddress.ip_address(a)}-{ipaddress.ip_address(a + rng.randint(0, 5000))}")
                    else:
                        targets.append(base)
                rules.append({"id": f"r{i}", "type": "ip", "targets": targets, "exit_via": "b",
                              "priority": rng.randint(0, 2), "enabled": rng.random() < 0.9})
            else:
                names = [rng.choice(["example.com", "a.example.com", "b.a.example.com", "org", "x.org"])
                         for _ in range(rng.randint(1, 3))]
                rules.append({"id": f"r{i}", "type": "domain", "targets": names, "exit_via": "b",
                              "priority": rng.randint(0, 2), "enabled": True})
        table = RuleTable(rules)
        hosts = [f"10.{rng.randint(0, 3)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}" for _ in range(300)]
        hosts += ["example.com", "www.example.com", "b.a.example.com", "c.b.a.example.com", "badexample.com",
                  "x.org", "y.x.org", "org", "nothing.net"]
        for h in hosts:
            got = table.lookup(h)
            assert (got.id if got else None) == brute(rules, h), (h, rules)


def test_rule_bodies_are_checked():
    assert check_rule({"type": "ip", "targets": [" 10.0.0.0/8 ", "::1", "1.1.1.1-1.1.1.9"]})["targets"] == \
        ["10.0.0.0/8", "::1", "1.1.1.1-1.1.1.9"]
    for body in ({"type": "tun", "targets": ["x"]}, {"type": "ip", "targets": []}, {"type": "ip", "targets": ["300.1.1.1"]},
                 {"type": "ip", "targets": ["1.1.1.9-1.1.1.1"]}, {"type": "domain", "targets": ["a..b"]},
                 {"type": "domain", "targets": [" "]}, {"type": "ip", "targets": "10.0.0.0/8"}):
        with pytest.raises(RuleError):
            check_rule(body)
    t = RuleTable([{"id": "m", "type": "ip", "targets": ["10.0.0.0/8"], "exit_via": "b"}])
    assert t.lookup("::ffff:10.1.2.3").id == "m" and t.lookup("[::ffff:10.1.2.3]").id == "m"
    assert t.lookup("11.0.0.1") is None
