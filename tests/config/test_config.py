"""Config parsing: defaults, the reference's shape, one-line errors naming the key."""
import pytest

from fastpath.config import ConfigError, load_config, parse_config
from fastpath.config.fields import parse_bandwidth, parse_duration, parse_listen


def test_defaults_need_no_file(tmp_path):
    cfg = load_config(None, data_dir=tmp_path)
    assert (cfg.control.host, cfg.control.port, cfg.workers) == ("127.0.0.1", 9480, 1)
    assert cfg.control.on_loopback
    assert cfg.counter_segment_path.startswith("/dev/shm/fastpath-")


@pytest.mark.parametrize("raw, message", [
    ({"node": {"workers": 0}}, "node.workers: must be at least 1; got 0"),
    ({"nodee": {}}, "nodee: unknown key"),
    ({"control": {"listen": "nowhere"}}, "control.listen: expected host:port, got 'nowhere'"),
    ({"control": {"listen": "127.0.0.1:9480", "tokn": "x"}}, "control.tokn: unknown key"),
    ({"trafficStats": {"listen": ":9999", "secret": ["x"]}}, "trafficStats.secret: expected a string, got list"),
    ({"counters": {"slotsPerShard": "many"}}, "counters.slotsPerShard: expected an integer, got 'many'"),
    ([1, 2], "config: expected a mapping, got list"),
])
def test_broken_config_is_one_line_naming_the_key(raw, message):
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    assert str(err.value) == message
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("text, problem", [
    ("node:\n  workers: [1\n", "at line 3, column 1: expected ',' or ']', but got '<stream end>' "
                                "(while parsing a flow sequence)"),
    ('node:\n  dataDir: "x\n', "at line 3, column 1: found unexpected end of stream "
                                "(while scanning a quoted scalar)"),
    ("node:\n\tworkers: 2\n", "at line 2, column 1: found character '\\t' that cannot start any token "
                                "(while scanning for the next token)"),
])
def test_yaml_syntax_error_names_the_line_and_the_problem(tmp_path, text, problem):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == f"{path}: not valid YAML {problem}"


@pytest.mark.parametrize("text, line, key, first", [
    ("listen: ':443'\nlisten: ':444'\n", 2, "listen", 1),
    ("control:\n  listen: 127.0.0.1:1\n  token: a\n  token: b\n", 4, "token", 3),
    ("auth:\n  type: userpass\n  userpass:\n    alice: x\n    alice: y\n", 5, "alice", 4),
])
def test_a_key_written_twice_is_refused(tmp_path, text, line, key, first):
    """PyYAML keeps the last of two equal keys silently; the node says so and stops."""
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).endswith(f"line {line}, column {text.splitlines()[line - 1].index(key) + 1}: "
                                   f"key {key!r} appears twice (first at line {first})")


def test_merge_keys_and_equal_keys_in_other_mappings_still_load():
    from fastpath.config.yaml_text import load_yaml
    doc = load_yaml("base: &b\n  a: 1\n  b: 2\nx:\n  <<: *b\n  a: 3\ny:\n  a: 4\n")
    assert doc["x"] == {"a": 3, "b": 2} and doc["y"] == {"a": 4}


def test_an_accepted_empty_choice_is_said_in_words():
    with pytest.raises(ConfigError) as err:
        parse_config({"obfs": {"type": "foo"}})
    assert str(err.value) == "obfs.type: must be one of salamander, plain (or empty); got 'foo'"


def test_serve_with_a_broken_config_prints_one_line_and_fails(tmp_path):
    import subprocess
    import sys
    path = tmp_path / "dup.yaml"
    path.write_text("listen: ':8443'\nlisten: ':8444'\n")
    done = subprocess.run([sys.executable, "-m", "fastpath", "serve", "-c", str(path),
                           "--data-dir", str(tmp_path / "data")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        f"fastpath: config error: {path}: not valid YAML at line 2, column 1: "
        "key 'listen' appears twice (first at line 1)"]


def test_value_parsers():
    assert parse_bandwidth("100 mbps") == 12_500_000
    assert parse_bandwidth("1g") == 125_000_000
    with pytest.raises(ValueError):
        parse_bandwidth("100")
    with pytest.raises(ValueError):
        parse_bandwidth(100)
    assert parse_duration("1m30s") == 90
    assert parse_duration("500ms") == 0.5
    with pytest.raises(ValueError):
        parse_duration("10 parsecs")
    assert parse_listen(":443") == ("0.0.0.0", 443)
    assert parse_listen("[::1]:8443") == ("::1", 8443)
