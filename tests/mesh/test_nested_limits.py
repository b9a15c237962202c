"""Nested discovery's walk and tree assembly (fastpath/mesh/nested.py) on crafted peer lists:
the depth, node-count and cache-size limits, cycles by name and by node id, and hostile
entries dropped."""
from __future__ import annotations

from fastpath.mesh.nested import NestedDiscovery, clamp, limits, walk


def chain(names, extra=None):
    """A list answer in which each node has the next as its only child."""
    node = None
    for name in reversed(names):
        node = {"name": name, "connected": True, "latency_ms": 1, "children": [node] if node else []}
    return [node] + list(extra or [])


class Store:
    def __init__(self, settings):
        self.settings = settings

    def get_setting(self, key, default=None):
        return self.settings.get(key, default)


def discovery(cache, nested, ui=None):
    d = NestedDiscovery(Store({"hy2scale.peers": {p: {"nested": True} for p in nested},
                               "hy2scale.ui": ui or {}}), None, lambda: "me", lambda: "my-name")
    d.reload()
    d.cache = cache
    return d


def test_depth_limit_and_cycles_by_name_and_id():
    lim = limits({"max_nested_depth": 3})
    cache = {}
    answer = chain(["c", "d", "e", "f", "g"], extra=[{"name": "me"}, {"name": "x", "node_id": "id-of-me"},
                                                      {"name": "b"}, {"bogus": 1}, "text", {"name": ""}])
    walk("b", answer, {"me", "my-name", "b", "id-of-me"}, 0, lim, cache)
    assert [c["name"] for c in cache["b"]] == ["c"]          # me, x (my id), b (the parent), junk: dropped
    assert sorted(cache) == ["b", "b/c", "b/c/d"]             # three levels, no more
    # A loop further down (c's child is b again) is cut where it loops.
    cache = {}
    walk("b", chain(["c", "b", "c"]), {"me", "b"}, 0, limits({}), cache)
    assert sorted(cache) == ["b"]


def test_limits_are_clamped_as_the_reference():
    assert clamp("max_nested_depth", 0) == 5 and clamp("max_nested_depth", 99) == 10
    assert clamp("max_fetch_fan_out", -1) == 8 and clamp("max_fetch_fan_out", 1000) == 64
    assert clamp("max_response_nodes", True) == 1024


def test_assembled_trees_obey_the_node_budget_and_the_nested_flags():
    cache = {"b": [{"name": f"n{i}", "connected": True, "latency_ms": 2, "exit_node": True,
                    "direction": "outbound", "max_rate": 0} for i in range(30)],
             "b/n0": [{"name": "deep", "connected": True, "latency_ms": 3, "exit_node": True,
                       "direction": "outbound", "max_rate": 0}]}
    d = discovery(cache, nested=["b"], ui={"max_response_nodes": 10})
    tree = d.children("b", 5)
    assert len(tree) == 10                                   # the budget counts every node
    assert tree[0]["latency_ms"] == 7 and tree[0]["via"] == "b"   # cumulative from this node
    assert tree[0]["children"] == []                          # b/n0 not marked nested here
    d = discovery(cache, nested=["b", "b/n0"])
    first = d.children("b", 5)[0]
    assert first["name"] == "n0" and [g["name"] for g in first["children"]] == ["deep"]
    assert first["children"][0]["latency_ms"] == 10
